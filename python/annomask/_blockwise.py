"""What :mod:`annomask.dask` and :mod:`annomask.daisy` share: the ``compute`` job cut into blocks
(:class:`Job`), one opened object per process and arguments (:func:`shared`), and the run's
:class:`Summary`.

A :class:`Job` is the Rust ``_annomask.Job``: built with the library calls ``annomask compute``
makes, so the output's metadata and attributes are the CLI's, byte for byte. It pickles as its
arguments; unpickled in a worker it opens the source once per process (later unpickles of the
same arguments there reuse it), with the process-wide engine of its choice.
"""

import os
import pickle
import threading
from typing import NamedTuple

from . import MissingAnnotationsMask, _annomask, _as_roi, _background, _groupings, _PerProcess

# (class name, pickled arguments) -> the object opened in this process.
_SHARED = {}
_SHARED_LOCK = threading.Lock()


def _key(obj):
    return (type(obj).__qualname__, pickle.dumps(obj._args, protocol=4))


def _shared(cls, args):
    """The object of ``cls`` opened from ``args`` in this process: opened on first use, then
    reused (a forked child opens its own, as :class:`annomask._PerProcess` does)."""
    probe = cls.__new__(cls)
    probe._args = args
    key = _key(probe)
    with _SHARED_LOCK:
        obj = _SHARED.get(key)
        if obj is None or obj._pid != os.getpid():
            obj = cls.__new__(cls)
            obj._setup(args)
            _SHARED[key] = obj
        return obj


class Shared:
    """Carries a :class:`annomask._PerProcess` object (a mask, a job) into tasks: it pickles as
    the object's arguments, and unpickles as the one object of those arguments in the process
    (opened once there). Where a task runs in the process that made it, :attr:`obj` is the
    object itself."""

    __slots__ = ("obj",)

    def __init__(self, obj):
        self.obj = obj

    def __reduce__(self):
        return (_unpickle_shared, (type(self.obj), self.obj._args))


def _unpickle_shared(cls, args):
    return Shared(_shared(cls, args))


def resolve(obj):
    """The object a task was given: :class:`Shared`'s, or the object itself."""
    return obj.obj if isinstance(obj, Shared) else obj


class Job(_PerProcess):
    """The ``compute`` job of one source and output, block by block (see the module docs)."""

    def __init__(self, args):
        self._setup(args)

    def _open(self):
        a = dict(self._args)
        path, groupings, out = a.pop("path"), a.pop("groupings"), a.pop("out")
        return _annomask.Job(path, groupings.parsed, out, **a)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._inner, name)

    def __repr__(self):
        return f"<annomask job {self._args['path']!r} -> {self._args['out']!r}>"


def job(
    source,
    groupings,
    out,
    *,
    roi=None,
    chunks=None,
    zarr_format=None,
    compression="blosc-lz4",
    memory_budget=None,
    policy="whole-channel",
    sparse="missing",
    background=0,
    engine="auto",
    allow_missing_metadata=False,
    scale="s0",
    verify=False,
    anonymous=False,
):
    """A :class:`Job`, checked (a bad input raises here, with the one-line error)."""
    if isinstance(source, MissingAnnotationsMask):
        raise TypeError(
            "source: give the path or URL of the label array or crop group (and the options), "
            "not an opened mask"
        )
    roi_offset = roi_shape = None
    if roi is not None:
        r = _as_roi(roi)
        roi_offset, roi_shape = [float(v) for v in r.offset], [float(v) for v in r.shape]
    if chunks is not None:
        chunks = [int(c) for c in chunks]
    if memory_budget is not None:
        memory_budget = str(memory_budget)
    return Job(
        dict(
            path=os.fspath(source),
            groupings=_groupings(groupings),
            out=os.fspath(out),
            policy=policy,
            sparse=sparse,
            background=_background(background),
            engine=engine,
            allow_missing_metadata=allow_missing_metadata,
            scale=scale,
            verify=verify,
            anonymous=anonymous,
            roi_offset=roi_offset,
            roi_shape=roi_shape,
            chunks=chunks,
            zarr_format=zarr_format,
            compression=compression,
            memory_budget=memory_budget,
        )
    )


class Summary(NamedTuple):
    """What a run did (the numbers ``annomask compute`` prints).

    Attributes:
        channels: the channel names.
        trained: per channel, the voxels set to 1 in the blocks this run computed.
        voxels: spatial voxels this run computed.
        blocks_written: blocks computed and written.
        blocks_skipped: blocks skipped as complete (``resume``).
        temporaries_removed: stale temporary files of killed writers removed.
        elapsed: wall time, seconds.
        read_time, compute_time, write_time: busy seconds, summed over workers.
    """

    channels: list
    trained: list
    voxels: int
    blocks_written: int
    blocks_skipped: int
    temporaries_removed: int
    elapsed: float
    read_time: float
    compute_time: float
    write_time: float

    def trained_by_channel(self):
        """``{channel: trained voxels}``."""
        return dict(zip(self.channels, self.trained))


def write_blocks(job, numbers, resume):
    """A task: computes and writes blocks ``numbers`` of ``job`` (a :class:`Job` or
    :class:`Shared`); returns ``write_blocks``' tuple."""
    return resolve(job).write_blocks(list(numbers), bool(resume))


def summarise(job, results, removed, elapsed):
    """The :class:`Summary` of ``write_blocks`` results."""
    channels = list(job.channels)
    trained = [0] * len(channels)
    voxels = written = skipped = 0
    read = compute = write = 0.0
    for t, v, w, s, r, c, wr in results:
        trained = [a + b for a, b in zip(trained, t)]
        voxels += v
        written += w
        skipped += s
        read += r
        compute += c
        write += wr
    return Summary(channels, trained, voxels, written, skipped, removed, elapsed, read, compute, write)
