"""annomask: missing-annotation masks and training targets for volumetric EM label data.

A drop-in for DaCapo's ``MissingAnnotationsMask`` (and the binary targets of its
``BinarizeArray``), computed in Rust on the GPU (wgpu) or the CPU, bit for bit the same, plus a
training feeder that yields numpy batches of random ROIs::

    import annomask

    mask = annomask.open("crop.zarr/labels", [("mito", [3, 4, 5]), ("er", [16, 17])])
    mask.axes                  # ['c', 'z', 'y', 'x']
    m = mask[mask.roi]         # numpy uint8, shape (channels, z, y, x): 1 = train here
    m, t = mask.get_with_targets(mask.roi)

    for batch in annomask.Feeder(["a.zarr/labels", "b.zarr/labels"], (64, 64, 64),
                                 groupings=groupings, batch_size=4, batches=100):
        batch.targets, batch.mask  # numpy uint8, shape (4, channels, 64, 64, 64)

Label arrays (zarr v2/v3 integer ids with a ``labels`` annotation-metadata attribute) are
grouped by label id; CellMap crop groups (per-class arrays with absent/present/unknown codes)
are grouped by class name. The contract is the project's docs/contract.md.

Errors carry the Rust message, naming the thing at fault: ``ValueError`` for bad metadata,
groupings, geometry (ROIs), crop groups and options; ``FileNotFoundError`` / ``OSError`` for
storage; ``RuntimeError`` for the GPU.
"""

import json
import math
import numbers
import os
from collections.abc import Iterable
from typing import NamedTuple, Optional

import numpy as np

from . import _annomask, geometry
from .geometry import Coordinate, Roi

__version__ = _annomask.__version__

__all__ = [
    "Batch",
    "Coordinate",
    "Feeder",
    "MissingAnnotationsMask",
    "RawArray",
    "Roi",
    "demo_class_groupings",
    "demo_groupings",
    "open",
    "open_raw",
    "write_demo_crop",
    "write_demo_crop_group",
]


def _as_roi(roi):
    """A bounded :class:`geometry.AnnomaskRoi` from a ROI in any form, or an error naming it.

    Takes an annomask or funlib ``Roi`` (anything with ``offset`` and ``shape``) or an
    ``(offset, shape)`` pair of sequences. Unbounded and offset-less (empty) ROIs, offset and
    shape of different lengths, and non-numbers raise ``ValueError``; other objects
    ``TypeError``. Rust checks the number of axes against the mask, alignment and bounds.
    """
    if hasattr(roi, "offset") and hasattr(roi, "shape"):
        offset, shape = roi.offset, roi.shape
    elif (
        isinstance(roi, (tuple, list))
        and len(roi) == 2
        and all(isinstance(p, Iterable) and not isinstance(p, (str, bytes)) for p in roi)
    ):
        offset, shape = roi
    else:
        raise TypeError(
            "roi must be an annomask.Roi, a funlib.geometry.Roi or an (offset, shape) pair of "
            f"sequences, not {roi!r}"
        )
    try:
        bounded = geometry.AnnomaskRoi(offset, shape)
    except (TypeError, ValueError) as e:
        raise ValueError(f"roi {roi!r}: {e}") from None
    for axis, (o, s) in enumerate(zip(bounded.offset, bounded.shape)):
        if s is None:
            raise ValueError(
                f"roi {roi!r} is unbounded along axis {axis} (None in its shape): the mask "
                "needs a bounded ROI, such as mask.roi or roi.intersect(mask.roi)"
            )
        if o is None:
            raise ValueError(
                f"roi {roi!r} has no offset along axis {axis} (None; an empty ROI, such as "
                "the intersection of disjoint ROIs, has none)"
            )
    if not all(math.isfinite(v) for v in (*bounded.offset, *bounded.shape)):
        raise ValueError(f"roi {roi!r}: offset and shape must be finite numbers")
    return bounded


def _with_dtype(arrays, dtype):
    """``arrays`` (``uint8`` holding 0/1) as ``dtype``: ``numpy.uint8``, or ``bool`` (a view)."""
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        dtype = None
    if dtype == np.uint8:
        return arrays
    if dtype == np.bool_:
        return tuple(a.view(np.bool_) for a in arrays)
    raise ValueError(f"dtype: must be numpy.uint8 or bool, not {dtype!r}")


def _member(member):
    """A groupings member as JSON: a label id (int) or a class name (str); Rust validates it."""
    if isinstance(member, numbers.Integral) and not isinstance(member, bool):
        return int(member)  # numpy integers too
    return member


class _Groupings:
    """Parsed groupings with what they were parsed from (a pickle carries the latter)."""

    __slots__ = ("parsed", "spec")

    def __init__(self, parsed, spec):
        self.parsed = parsed
        self.spec = spec

    def __reduce__(self):
        return (_groupings, (self.spec,))


def _groupings(groupings):
    """:class:`_Groupings` from pairs, a dict, a file path, or already parsed groupings."""
    if isinstance(groupings, _Groupings):
        return groupings
    if isinstance(groupings, _annomask.Groupings):
        raise TypeError(
            "groupings: pass the pairs, dict or file path, not _annomask.Groupings (annomask "
            "keeps what the groupings were parsed from, so that masks pickle)"
        )
    if isinstance(groupings, (str, os.PathLike)):
        path = os.fspath(groupings)
        return _Groupings(_annomask.Groupings.from_file(path), path)
    if isinstance(groupings, dict):
        groupings = list(groupings.items())
    try:
        pairs = [
            [name, members if isinstance(members, str) else [_member(m) for m in members]]
            for name, members in groupings
        ]
        text = json.dumps(pairs)
    except (TypeError, ValueError) as e:
        raise ValueError(
            "groupings must be a list of (name, [label ids]) or (name, [class names]) pairs, "
            f"a dict name -> members, or a path to a JSON/TOML file: {e}"
        ) from None
    return _Groupings(_annomask.Groupings.from_json(text, "<groupings>"), pairs)


def _background(background):
    if not isinstance(background, numbers.Integral) or not 0 <= background < 2**64:
        raise ValueError(
            f"background: must be an integer in 0..2**64-1 (a label id), not {background!r}"
        )
    return int(background)


# Rust objects a forked child replaced by its own: kept, never dropped there (dropping one
# could wait on a thread or lock of the parent's that the fork did not copy).
_FORKED_LEFTOVERS = []


class _PerProcess:
    """A Rust object opened from picklable arguments, opened again in any other process.

    A fork copies memory but not threads: the parent's GPU device, prefetch threads, thread
    pools and locks are not the child's. So the object remembers the process that opened it
    and, used in another (a forked DataLoader worker), opens itself again from its arguments.
    A pickle carries the arguments (spawned workers, Dask), never the Rust object.
    """

    def _open(self):
        raise NotImplementedError

    def _setup(self, args):
        self._args = args
        self._pid = os.getpid()
        self._rust = self._open()

    @property
    def _inner(self):
        if self._pid != os.getpid():
            _FORKED_LEFTOVERS.append(self._rust)
            self._rust = self._open()
            self._pid = os.getpid()
        return self._rust

    def __reduce__(self):
        return (_reopen, (type(self), self._args))

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return _reopen(type(self), self._args)


def _reopen(cls, args):
    obj = cls.__new__(cls)
    obj._setup(args)
    return obj


class MissingAnnotationsMask(_PerProcess):
    """A read-only, computed-on-request ``uint8`` array of shape ``(channels, *spatial)``.

    1 where a channel may be trained, 0 where not. The attributes mirror DaCapo's
    ``MissingAnnotationsMask``; ``mask[roi]`` is its ``__getitem__``. Made by
    :func:`annomask.open`.

    It pickles as the arguments of :func:`annomask.open` (path or URL, groupings, options,
    engine choice) and opens again where it is unpickled; ``copy.deepcopy`` does the same. In a
    forked child it opens itself again on first use (with its own engine).
    """

    def __init__(self, args):
        self._setup(args)

    def _open(self):
        a = dict(self._args)
        path, groupings = a.pop("path"), a.pop("groupings")
        return _annomask.open(path, groupings.parsed, **a)

    @property
    def name(self):
        """``<label array or crop group name>_missing_annotations_mask``."""
        return self._inner.name

    @property
    def axes(self):
        """``['c']`` followed by the source's axis names, e.g. ``['c', 'z', 'y', 'x']``."""
        return self._inner.axes

    @property
    def dims(self):
        """Number of spatial dimensions."""
        return self._inner.dims

    @property
    def voxel_size(self):
        """Voxel size in world units, a :class:`Coordinate` (one value per spatial axis).

        ``funlib.geometry.Coordinate`` where funlib is installed and the voxel size, offset and
        shape are integral, else :class:`annomask.geometry.AnnomaskCoordinate` (keeps floats).
        """
        return self._world()[0]

    @property
    def roi(self):
        """The source's :class:`Roi` in world units (funlib's where :attr:`voxel_size` is)."""
        return self._world()[1]

    def _world(self):
        """``(voxel_size, roi)``, of one kind: :func:`annomask.geometry.world`."""
        return geometry.world(self._inner.voxel_size, *self._inner.roi)

    @property
    def shape(self):
        """Spatial shape in voxels."""
        return tuple(self._inner.shape)

    @property
    def writable(self):
        """Always ``False``: the mask is computed, not stored."""
        return False

    @property
    def dtype(self):
        """Always ``numpy.uint8``."""
        return np.uint8

    @property
    def num_channels(self):
        """Number of channels."""
        return self._inner.num_channels

    @property
    def channels(self):
        """Channel names, in order."""
        return self._inner.channels

    @property
    def attrs(self):
        """The source's attributes (the label array's, or the crop group's), a new dict."""
        return json.loads(self._inner.attrs_json)

    @property
    def data(self):
        """Raises ``ValueError``: there is no stored data; index with a ROI instead."""
        return self._inner.data()

    @property
    def plan(self):
        """Which ids/classes are missing and what each channel becomes (text, as ``inspect``)."""
        return self._inner.plan

    @property
    def engine(self):
        """Which engine computes (``cpu``/``gpu``), on what device, and why."""
        return self._inner.engine

    def __getitem__(self, roi):
        """The mask inside ``roi`` (voxel-aligned, inside :attr:`roi`).

        ``roi`` is a :class:`Roi` (annomask's or funlib's) or an ``(offset, shape)`` pair in
        world units; an unbounded one raises ``ValueError``. Returns a new, writable
        ``numpy.ndarray`` of ``uint8`` (DaCapo's is ``bool``: :meth:`get` with ``dtype=bool``),
        shape ``(channels, *roi.shape / voxel_size)``.
        """
        roi = _as_roi(roi)
        return self._inner.get(list(roi.offset), list(roi.shape))

    def get(self, roi, dtype=np.uint8):
        """``mask[roi]`` as ``dtype``: ``numpy.uint8`` (0/1) or ``bool`` (a view, no copy).

        DaCapo's ``MissingAnnotationsMask.__getitem__`` returns ``bool``; ``mask[roi]``
        returns ``uint8``, and ``mask.get(roi, dtype=bool)`` DaCapo's type.
        """
        return _with_dtype((self[roi],), dtype)[0]

    def get_with_targets(self, roi, dtype=np.uint8):
        """``(mask, targets)`` inside ``roi``, both ``(channels, *spatial)``, one pass.

        ``dtype``: ``numpy.uint8`` (0/1) or ``bool`` (views of the same arrays).
        Label arrays: ``targets[c]`` is ``numpy.isin(labels, ids_c)``, or ``labels != background``
        for a channel without ids (DaCapo's ``BinarizeArray``). Crop groups: 1 where some class
        of the channel is positive (``present`` code; any id of an instance class).
        """
        roi = _as_roi(roi)
        arrays = self._inner.get_with_targets(list(roi.offset), list(roi.shape))
        return _with_dtype(arrays, dtype)

    def compute_labels(self, labels, *, targets=False, dtype=np.uint8):
        """The mask of a block of source data already in memory, with this mask's plan and
        engine: what ``mask[roi]`` returns where ``labels`` is the source at ``roi``.

        ``labels``: a numpy array of the label array's dtype (e.g. a chunk of
        ``dask.array.from_zarr(labels)``), or for a crop group a dict class name -> array (every
        class the plan reads, each of the class array's dtype). Returns ``uint8``
        ``(channels, *labels.shape)``; with ``targets=True`` the pair ``(mask, targets)`` of one
        pass. ``dtype``: ``numpy.uint8`` or ``bool``.
        """
        m, t = _annomask.compute_labels(self._inner, labels)
        if targets:
            return _with_dtype((m, t), dtype)
        return _with_dtype((m,), dtype)[0]

    def __repr__(self):
        return (
            f"<annomask.MissingAnnotationsMask {self.name!r}: channels {self.channels}, "
            f"axes {self.axes}, {self.roi}, voxel size {self.voxel_size}>"
        )


def open(
    path,
    groupings,
    *,
    policy="whole-channel",
    sparse="missing",
    background=0,
    engine="auto",
    allow_missing_metadata=False,
    scale="s0",
    verify=False,
    anonymous=False,
):
    """Opens a label array or a CellMap crop group as a :class:`MissingAnnotationsMask`.

    Args:
        path: the zarr label array (a directory with ``.zarray`` or ``zarr.json``, or an N5
            array) or crop group; or an ``s3://``, ``gs://`` or ``https://`` URL of one
            (credentials and endpoints from the environment, as for the CLI: docs/remote.md).
        groupings: the channels: a list of ``(name, [label ids])`` pairs for a label array, of
            ``(name, [class names])`` for a crop group, a dict ``name -> members``, or the path of
            a JSON/TOML file holding such a list.
        policy: ``"whole-channel"`` (DaCapo: a channel with a missing id is 0 everywhere) or
            ``"per-voxel"`` (only voxels holding a missing id are 0).
        sparse: ``"missing"`` (sparsely annotated classes count as missing) or ``"annotated"``.
        background: the label id that means unlabelled; never trained.
        engine: ``"auto"`` (the CPU, or a hardware GPU where it measures faster on a trial block), ``"cpu"`` or ``"gpu"``
            (any adapter, software Vulkan included). Masks opened in one process share one
            engine per choice (one GPU device).
        allow_missing_metadata: treat a label array without a ``labels`` attribute as "nothing
            is missing" instead of an error.
        scale: the multiscale level a crop group is read at.
        verify: recompute every block on the CPU and raise on any difference.
        anonymous: read object-store URLs with unsigned requests (public buckets).

    Crop groups use only ``engine``, ``scale`` and ``verify`` (no background, no sparse states).
    The GIL is released while opening and computing.
    """
    return MissingAnnotationsMask(
        dict(
            path=os.fspath(path),
            groupings=_groupings(groupings),
            policy=policy,
            sparse=sparse,
            background=_background(background),
            engine=engine,
            allow_missing_metadata=allow_missing_metadata,
            scale=scale,
            verify=verify,
            anonymous=anonymous,
        )
    )


class RawArray(_PerProcess):
    """Raw data (EM intensities) at a mask's voxel size; made by :func:`open_raw`.

    ``raw[roi]`` is a numpy array of the raw dtype, zero outside the array. Pickles as the
    arguments of :func:`open_raw`; opens itself again in a forked child.
    """

    def __init__(self, args):
        self._setup(args)

    def _open(self):
        a = self._args
        return _annomask.Raw(a["path"], a["voxel_size"], anonymous=a["anonymous"])

    @property
    def name(self):
        """The chosen array (the level of a multiscale group)."""
        return self._inner.name

    @property
    def dtype(self):
        """The raw dtype (``numpy.dtype``)."""
        return np.dtype(self._inner.dtype)

    @property
    def voxel_size(self):
        """Voxel size in world units (a :class:`Coordinate`)."""
        return geometry.world(self._inner.voxel_size, *self._inner.roi)[0]

    @property
    def roi(self):
        """The raw array's :class:`Roi` in world units."""
        return geometry.world(self._inner.voxel_size, *self._inner.roi)[1]

    def __getitem__(self, roi):
        """The raw data inside ``roi`` (on the raw voxel grid), zero where outside the array."""
        roi = _as_roi(roi)
        return self._inner.get(list(roi.offset), list(roi.shape))

    def __repr__(self):
        return f"<annomask.RawArray {self.name!r}: {self.roi}, voxel size {self.voxel_size}>"


def open_raw(path, voxel_size, *, anonymous=False):
    """Opens raw data to read beside a mask: an array, or the level of an OME-NGFF multiscale
    group whose voxel size is ``voxel_size`` (e.g. ``mask.voxel_size``).

    annomask does not resample: without a level of that voxel size this raises ``ValueError``
    listing the levels there are. ``path`` may be a URL, as for :func:`open`.
    """
    return RawArray(
        dict(
            path=os.fspath(path),
            voxel_size=[float(v) for v in voxel_size],
            anonymous=anonymous,
        )
    )


class Batch(NamedTuple):
    """One feeder batch.

    Attributes:
        index: position in the sequence (0, 1, ...).
        targets: per-channel binary targets, ``(batch, channels, *roi_shape)``: ``uint8``, or
            ``float32`` with ``targets="float32"`` / ``"nan"`` (NaN where the mask is 0).
        mask: the missing-annotation mask, ``uint8``, same shape: 1 where the target may be
            trained (0 in the padding of a crop smaller than the ROI).
        crops: for each sample, the index of its crop in ``Feeder.crops``.
        rois: for each sample, its :class:`Roi` in world units (before augmentation).
        labels: with ``with_labels=True``, each sample's source data inside its crop (not
            augmented): a numpy array of the label array's dtype, or for a crop group a dict
            class name -> array; else ``None``.
        raw: with ``raw=``, the raw data, ``(batch, *roi_shape + 2 * context)`` in the raw
            dtype, augmented like targets and mask; else ``None``.
        augmentations: for each sample, ``(flips, order)``: the mirrored axes (before the
            permutation) and the axis order (output axis ``k`` is input axis ``order[k]``).
    """

    index: int
    targets: np.ndarray
    mask: np.ndarray
    crops: list
    rois: list
    labels: Optional[list]
    raw: Optional[np.ndarray] = None
    augmentations: Optional[list] = None


def _axes(value, names, what):
    """Spatial axis indices from ``True`` (all), names (``"z"``) or indices; ``None``: none."""
    if value is None or value is False:
        return []
    if value is True:
        return list(range(len(names)))
    axes = []
    for v in value:
        if isinstance(v, str):
            if v not in names:
                raise ValueError(f"{what}: axis {v!r} is not one of the spatial axes {names}")
            axes.append(names.index(v))
        elif isinstance(v, numbers.Integral) and 0 <= v < len(names):
            axes.append(int(v))
        else:
            raise ValueError(f"{what}: axis {v!r} is not one of the spatial axes {names}")
    return axes


def _per_axis(value, dims, what):
    if isinstance(value, numbers.Integral):
        value = [value] * dims
    value = [int(v) for v in value]
    if len(value) != dims or min(value, default=0) < 0:
        raise ValueError(f"{what}: {value} must be {dims} non-negative voxel counts (or one)")
    return value


_TARGETS = ("uint8", "float32", "nan")


class Feeder:
    """Training batches of random voxel-aligned ROIs over one or more crops, as numpy arrays.

    Each ROI's targets and mask are computed in one fused pass (on the GPU with a GPU engine),
    and its raw data read, by a background thread ``prefetch`` batches ahead. Batch ``b`` is a
    function of the seed and ``b`` alone: the same arguments give the same batches, ``shard=(i,
    n)`` yields batches ``i, i + n, ...`` (one shard per data-loader worker: together they are
    the one-process sequence), ``start`` begins at a later batch.

    Args:
        crops: a crop or a list of crops, each an opened :class:`MissingAnnotationsMask` or a
            path (opened with ``groupings`` and the options below). All need the same channels.
        roi_shape: the ROI shape in voxels, one per spatial axis. A crop smaller than the ROI
            along an axis is padded: targets and mask are 0 there.
        groupings: the groupings for crops given as paths.
        raw: raw data for each crop (a list with one entry per crop, or one for a single crop):
            a path or URL (an array, or an OME-NGFF multiscale group: the level with the crop's
            voxel size is read) or a :class:`RawArray`. ``Batch.raw`` holds it.
        context: raw voxels added on each side of the ROI: one number, or one per axis.
        mirror: axes mirrored at random (each with probability 1/2): ``True`` for all, or names
            (``"z"``) or indices.
        transpose: axes permuted at random (``True``: all); the ROI must be equally long along
            them. With ``mirror`` this gives every 90-degree rotation in their planes.
        seed: seed of the ROI sequence.
        batch_size: ROIs per batch.
        prefetch: batches computed ahead.
        weighting: ``"uniform"`` (every crop equally often), ``"size"`` (by voxel count) or
            ``"class"`` (each channel an equal share of the draws, split between the crops
            where it is present by their metadata).
        with_labels: also return each ROI's source data (``Batch.labels``).
        batches: the sequence ends before this batch (default: never); with shards, the length
            of the whole sequence.
        shard: ``(index, count)``: this feeder's part of the sequence.
        start: the first batch index.
        chunk_cache: bytes of decoded chunks kept, all crops and raw arrays together (default
            1 GiB; 0: none).
        targets: ``"uint8"`` (0/1), ``"float32"``, or ``"nan"``: float32 with NaN where the mask
            is 0 (cellmap-data's convention, for losses that ignore NaN).
        engine, policy, sparse, background, allow_missing_metadata, scale, anonymous: as for
            :func:`open`, for crops (and raw data) given as paths.

    Yields :class:`Batch` named tuples (``torch.from_numpy`` takes the arrays without a copy).
    Waiting for a batch releases the GIL. ``feeder.crops`` lists the opened crops
    (``Batch.crops`` indexes it); ``close()`` (or a ``with`` block) stops the prefetch thread.
    A feeder pickles as its configuration and continues, where it is unpickled, at the batch
    after the last one it yielded; used in a forked child it does the same there.
    """

    def __init__(
        self,
        crops,
        roi_shape,
        *,
        groupings=None,
        raw=None,
        context=0,
        mirror=None,
        transpose=None,
        seed=0,
        batch_size=1,
        prefetch=4,
        weighting="uniform",
        with_labels=False,
        batches=None,
        shard=(0, 1),
        start=0,
        chunk_cache=1 << 30,
        targets="uint8",
        engine="auto",
        policy="whole-channel",
        sparse="missing",
        background=0,
        allow_missing_metadata=False,
        scale="s0",
        anonymous=False,
    ):
        if isinstance(crops, (str, os.PathLike, MissingAnnotationsMask)):
            crops = [crops]
            if raw is not None and not isinstance(raw, (list, tuple)):
                raw = [raw]
        masks = []
        for crop in crops:
            if isinstance(crop, MissingAnnotationsMask):
                masks.append(crop)
                continue
            if groupings is None:
                raise ValueError(
                    f"Feeder: crop {os.fspath(crop)!r} is a path: pass groupings= to open it"
                )
            groupings = _groupings(groupings)  # parsed once for all paths
            masks.append(
                open(  # annomask.open
                    crop,
                    groupings,
                    policy=policy,
                    sparse=sparse,
                    background=background,
                    engine=engine,
                    allow_missing_metadata=allow_missing_metadata,
                    scale=scale,
                    anonymous=anonymous,
                )
            )
        if not masks:
            raise ValueError("Feeder: no crops given")
        raws = []
        if raw is not None:
            if isinstance(raw, (str, os.PathLike, RawArray)) or len(raw) != len(masks):
                raise ValueError(
                    f"Feeder: raw must list one raw array per crop ({len(masks)} crops)"
                )
            for r, m in zip(raw, masks):
                raws.append(r if isinstance(r, RawArray) else open_raw(r, m.voxel_size, anonymous=anonymous))
        if targets not in _TARGETS:
            raise ValueError(f"targets: must be one of {_TARGETS}, not {targets!r}")
        dims = len(masks[0].shape)
        names = masks[0].axes[1:]
        # The opened crops, in order (``Batch.crops`` indexes them), and their raw data.
        self.crops = masks
        self.raw = raws
        self._config = dict(
            roi_shape=_per_axis(roi_shape, dims, "roi_shape"),
            seed=int(seed),
            batch_size=batch_size,
            prefetch=prefetch,
            weighting=weighting,
            with_labels=with_labels,
            batches=batches,
            context=_per_axis(context, dims, "context"),
            mirror=_axes(mirror, names, "mirror"),
            transpose=_axes(transpose, names, "transpose"),
            shard=tuple(int(v) for v in shard),
            chunk_cache=int(chunk_cache),
        )
        self._targets = targets
        self._next = int(start)
        self._start_inner()

    def _start_inner(self):
        c = dict(self._config)
        roi_shape = c.pop("roi_shape")
        self._rust = _annomask.Feeder(
            [m._inner for m in self.crops],
            roi_shape,
            raw=[r._inner for r in self.raw],
            start=self._next,
            **c,
        )
        self._pid = os.getpid()

    def __iter__(self):
        return self

    def __next__(self):
        if self._pid != os.getpid():
            # A forked child: the parent's prefetch thread is not here; continue on our own.
            _FORKED_LEFTOVERS.append(self._rust)
            self._start_inner()
        batch = self._rust.next_batch()
        if batch is None:
            raise StopIteration
        index, targets, mask, samples, labels, raw = batch
        self._next = index + 1
        if self._targets != "uint8":
            targets = targets.astype(np.float32)
            if self._targets == "nan":
                np.copyto(targets, np.float32("nan"), where=mask == 0)
        return Batch(
            index=index,
            targets=targets,
            mask=mask,
            crops=[s[0] for s in samples],
            rois=[type(self.crops[s[0]].roi)(s[1], s[2]) for s in samples],
            labels=labels,
            raw=raw,
            augmentations=[(s[4], s[5]) for s in samples],
        )

    def __reduce__(self):
        config = dict(self._config, targets=self._targets, start=self._next)
        return (_rebuild_feeder, (self.crops, self.raw or None, config))

    def close(self):
        """Stops the prefetch thread; iteration then ends."""
        self._rust.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _rebuild_feeder(crops, raw, config):
    return Feeder(crops, raw=raw, **config)


def write_demo_crop(dir, size=32, zarr_format=3):
    """Writes a demo label array ``dir/demo_crop.zarr/labels`` and returns its path.

    ``size``^3 ``uint64`` labels (8 nm voxels) with annotation metadata in all three formats:
    id 5 (``mito_ribo``) is present but not annotated, id 17 (``er_lum``) sparsely annotated.
    Use it with :func:`demo_groupings`.
    """
    return _annomask.write_demo_crop(os.fspath(dir), size, zarr_format)


def write_demo_crop_group(dir, size=24, zarr_format=2):
    """Writes a demo CellMap crop group ``dir/crop1`` and returns its path.

    Classes ``mito_mem``, ``mito_lum`` (semantic ``uint8``, unknown 255 in the slab
    ``z < size / 4``), ``mito`` (instance ``uint64``) and ``er_mem``; ``er_lum`` is not
    annotated. Scales ``s0`` and ``s1``. Use it with :func:`demo_class_groupings`.
    """
    return _annomask.write_demo_crop_group(os.fspath(dir), size, zarr_format)


def demo_groupings():
    """The demo label array's channels: ``[(name, [ids]), ...]``."""
    return _annomask.demo_groupings()


def demo_class_groupings():
    """The demo crop group's channels: ``[(name, [class names]), ...]``."""
    return _annomask.demo_class_groupings()
