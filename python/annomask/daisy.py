"""annomask on daisy (v2): the ``compute`` command as a ``daisy.Task``.

:func:`task` checks the inputs and creates the output (exactly the CLI's metadata) on the
calling process, then returns a ``daisy.Task`` whose blocks are the output's chunks: its process
function computes and atomically writes one block (in daisy's worker processes, local or on a
cluster; each opens the source once), and with ``resume=True`` its check function is "this
block's chunks are all stored", so daisy skips complete blocks. Run it with
``daisy.run_blockwise`` (alone, or in a ``daisy.Pipeline`` with your own tasks), or call
:func:`compute`, which also removes the temporary files of killed workers at the end.

Block ROIs are in world units where the voxel size and the output's offset are whole numbers
(funlib's ``Roi`` is integral), else in output voxels. Requires ``daisy>=2``.
"""

import warnings

try:
    import daisy
    from funlib.geometry import Coordinate, Roi
except ImportError as e:  # pragma: no cover - exercised where daisy is missing
    raise ImportError("annomask.daisy needs daisy 2: pip install daisy") from e

from ._blockwise import Shared, job as _job, resolve

__all__ = ["compute", "task"]


class _Grid:
    """Maps daisy block ROIs to block numbers of the job's output grid."""

    def __init__(self, job):
        voxel_size = [float(v) for v in job.voxel_size]
        offset = [
            o + s * v for o, s, v in zip(job.input_offset, job.origin, voxel_size)
        ]
        world = all(float(x).is_integer() for x in (*voxel_size, *offset))
        self.scale = [int(v) for v in voxel_size] if world else [1] * len(voxel_size)
        self.offset = [int(o) for o in offset] if world else [0] * len(offset)
        self.chunks = [int(c) for c in job.chunks]
        self.shape = [int(s) for s in job.shape[1:]]
        self.units = "world" if world else "voxels"

    def total_roi(self):
        return Roi(
            Coordinate(self.offset),
            Coordinate([s * v for s, v in zip(self.shape, self.scale)]),
        )

    def block_roi(self):
        return Roi(
            Coordinate([0] * len(self.chunks)),
            Coordinate([c * v for c, v in zip(self.chunks, self.scale)]),
        )

    def number(self, job, block):
        begin = block.write_roi.offset
        chunk = [
            (int(b) - o) // (c * v) for b, o, c, v in zip(begin, self.offset, self.chunks, self.scale)
        ]
        number = job.number_of(chunk)
        if number is None:
            raise ValueError(f"daisy block {block.write_roi} is not a block of this output")
        return number


class ProcessBlock:
    """daisy's process function: computes and writes the block (picklable: the job's
    arguments; opened once per worker process)."""

    def __init__(self, job, resume):
        self.job = Shared(job)
        self.resume = resume

    def __call__(self, block):
        job = resolve(self.job)
        job.write_blocks([_Grid(job).number(job, block)], self.resume)


class CheckBlock:
    """daisy's check function: whether all the block's chunks are stored."""

    def __init__(self, job):
        self.job = Shared(job)

    def __call__(self, block):
        job = resolve(self.job)
        return job.is_complete(_Grid(job).number(job, block))


def task(
    source,
    groupings,
    out,
    *,
    task_id="annomask",
    resume=False,
    max_workers=2,
    max_retries=2,
    timeout=None,
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
    """A ``daisy.Task`` computing the mask of ``source`` into ``out``, as ``annomask compute``.

    The output is checked and created here (a bad input raises here, before daisy starts).
    Blocks are the output chunks (``fit="shrink"`` at the array's end, no read-write conflict).
    ``resume``: a check function skips blocks whose chunks are all stored. ``max_workers``,
    ``max_retries``, ``timeout``: daisy's. The other arguments as for
    :func:`annomask.dask.compute`.
    """
    job = _job(
        source,
        groupings,
        out,
        roi=roi,
        chunks=chunks,
        zarr_format=zarr_format,
        compression=compression,
        memory_budget=memory_budget,
        policy=policy,
        sparse=sparse,
        background=background,
        engine=engine,
        allow_missing_metadata=allow_missing_metadata,
        scale=scale,
        verify=verify,
        anonymous=anonymous,
    )
    job.create()
    grid = _Grid(job)
    kwargs = dict(
        process_function=ProcessBlock(job, resume),
        check_function=CheckBlock(job) if resume else None,
        read_write_conflict=False,
        fit="shrink",
        max_workers=max_workers,
        max_retries=max_retries,
    )
    if timeout is not None:
        kwargs["timeout"] = timeout
    with warnings.catch_warnings():
        # daisy warns that a check function runs for every block: here the truth is the output
        # (is every chunk of the block stored), which is what the warning recommends it for.
        warnings.filterwarnings("ignore", message=r"Task\(check_function=", category=UserWarning)
        t = daisy.Task(task_id, grid.total_roi(), grid.block_roi(), grid.block_roi(), **kwargs)
    t._annomask_job = job
    return t


def compute(source, groupings, out, *, multiprocessing=True, progress=False, **options):
    """Runs :func:`task` with ``daisy.run_blockwise`` (worker processes on this machine with
    ``multiprocessing=True``), then removes temporary files killed workers left; returns
    whether every block completed."""
    t = task(source, groupings, out, **options)
    job = t._annomask_job
    ok = daisy.run_blockwise(t, multiprocessing=multiprocessing, progress=progress, summary=False)
    job.remove_stale_temporaries()
    return ok
