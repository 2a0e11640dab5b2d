"""annomask on Dask: lazy mask arrays, and the ``compute`` command on a Dask cluster.

- :func:`mask_array`: the mask (and targets) of a source as a lazy ``dask.array.Array``,
  ``uint8``, ``(channels, *spatial)``, one task per chunk (``to_zarr``, ``map_blocks``, xarray).
- :func:`map_labels`: the mask of label blocks already in a dask array
  (``da.from_zarr(labels)``), computed with a mask's plan, no second read.
- :func:`compute`: ``annomask compute`` on whatever Dask scheduler is active (a
  ``distributed.Client`` on a ``LocalCluster`` or a dask-jobqueue ``SLURMCluster``): the output
  created once by the client, with exactly the CLI's metadata; each task computes and atomically
  writes its blocks; ``resume`` skips complete blocks; returns the CLI's summary.

Masks and jobs travel to workers as their arguments and are opened once per worker process
(one engine per process). annomask has no scheduler of its own: Dask retries the tasks of a
worker that died, and chunks are written atomically, so the output is the same.

Requires ``dask[array]`` (and ``distributed`` for a cluster): ``pip install 'dask[array]'
distributed``.
"""

import itertools
import math
import pickle
import time
import uuid

import numpy as np

try:
    import dask
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph
except ImportError as e:  # pragma: no cover - exercised where dask is missing
    raise ImportError(
        "annomask.dask needs dask: pip install 'dask[array]' distributed"
    ) from e

from . import MissingAnnotationsMask, _annomask, _as_roi
from . import open as _open
from ._blockwise import Shared, Summary, job as _job, resolve, summarise, write_blocks

__all__ = ["Summary", "compute", "compute_labels", "map_labels", "mask_array"]


def _mask_of(source, groupings, options):
    if isinstance(source, MissingAnnotationsMask):
        if options:
            raise TypeError(
                f"{sorted(options)}: options apply to a source given as a path; this mask was "
                "opened with its own"
            )
        return source
    if groupings is None:
        raise ValueError("groupings: required when the source is a path or URL")
    return _open(source, groupings, **options)


def _region(mask, roi):
    """``(start, shape)`` in voxels of ``roi`` (world units) inside ``mask``; checked by Rust."""
    voxel_size = [float(v) for v in mask.voxel_size]
    origin = [float(v) for v in mask.roi.offset]
    if roi is None:
        return [0] * len(voxel_size), list(mask.shape)
    r = _as_roi(roi)
    # A zero-sized read checks alignment and bounds with the Rust message.
    start = [(o - b) / v for o, b, v in zip(r.offset, origin, voxel_size)]
    shape = [s / v for s, v in zip(r.shape, voxel_size)]
    if not all(float(x).is_integer() for x in (*start, *shape)):
        mask[r]  # raises the geometry error, naming the ROI and the voxel size
    start, shape = [int(x) for x in start], [int(x) for x in shape]
    if any(a < 0 or a + s > n for a, s, n in zip(start, shape, mask.shape)):
        mask[r]  # raises: outside the source
    return start, shape


def _chunk_task(mask, offset, shape, targets):
    mask = resolve(mask)
    if targets:
        m, t = mask.get_with_targets((offset, shape))
        return np.stack([m, t])
    return mask[(offset, shape)]


def mask_array(
    source,
    groupings=None,
    *,
    chunks=None,
    targets=False,
    roi=None,
    dtype=np.uint8,
    **options,
):
    """The mask of ``source`` as a lazy ``dask.array.Array`` of shape ``(channels, *spatial)``.

    Args:
        source: a path or URL (opened with ``groupings`` and ``options``, as
            :func:`annomask.open` takes them), or an opened :class:`MissingAnnotationsMask`.
        chunks: spatial chunk shape in voxels (one per axis, or anything
            ``dask.array.core.normalize_chunks`` takes for the spatial shape); default: the
            label array's chunks. The channel axis is one chunk.
        targets: return ``(mask, targets)``, two arrays whose chunks come from one fused pass
            (computed together, e.g. ``dask.compute(m, t)`` or ``da.to_zarr`` of both, each
            chunk is computed once).
        roi: only this region (world units, voxel-aligned); chunks start at its corner.
        dtype: ``numpy.uint8`` (0/1) or ``bool``.

    Each chunk is ``mask[roi of the chunk]`` in a task; the mask pickles as its arguments and
    is opened once per worker process. With xarray:
    ``xarray.DataArray(mask_array(...), dims=mask.axes)``.
    """
    mask = _mask_of(source, groupings, options)
    np_dtype = np.dtype(dtype)
    if np_dtype not in (np.dtype(np.uint8), np.dtype(np.bool_)):
        raise ValueError(f"dtype: must be numpy.uint8 or bool, not {dtype!r}")
    start, shape = _region(mask, roi)
    voxel_size = [float(v) for v in mask.voxel_size]
    origin = [float(v) for v in mask.roi.offset]
    if chunks is None:
        chunks = [int(c) for c in _annomask.chunk_shape(mask._inner)]
    spatial = da.core.normalize_chunks(chunks, tuple(shape), dtype=np.uint8)
    channels = mask.num_channels
    lead = ((2,),) if targets else ()
    all_chunks = lead + ((channels,),) + spatial
    key = tokenize(
        pickle.dumps(mask._args, protocol=4), start, shape, spatial, bool(targets), "annomask"
    )
    name = ("annomask-targets-" if targets else "annomask-mask-") + key
    shared = Shared(mask)
    graph = {}
    bounds = [list(itertools.accumulate(c, initial=0)) for c in spatial]
    for index in itertools.product(*(range(len(c)) for c in spatial)):
        offset = [o + (s + b[i]) * v for o, s, b, i, v in zip(origin, start, bounds, index, voxel_size)]
        size = [c[i] * v for c, i, v in zip(spatial, index, voxel_size)]
        k = (name,) + (0,) * len(lead) + (0,) + tuple(index)
        graph[k] = (_chunk_task, shared, offset, size, bool(targets))
    hlg = HighLevelGraph.from_collections(name, graph, dependencies=())
    meta = np.empty((0,) * len(all_chunks), dtype=np.uint8)
    array = da.Array(hlg, name, all_chunks, meta=meta)
    if np_dtype == np.bool_:
        array = array.astype(bool)
    if targets:
        return array[0], array[1]
    return array


def compute_labels(mask, labels, *, targets=False, dtype=np.uint8):
    """The mask (and with ``targets=True`` the targets) of a block of source data in memory,
    with ``mask``'s plan: ``labels`` is a numpy array of the label array's dtype (for a crop
    group, a dict class name -> array). Returns ``uint8`` ``(channels, *labels.shape)`` (or a
    pair): what ``mask[roi]`` returns where ``labels`` is the source at ``roi``. Same as
    :meth:`annomask.MissingAnnotationsMask.compute_labels`."""
    return mask.compute_labels(labels, targets=targets, dtype=dtype)


def _labels_task(labels, mask, targets):
    m, t = _annomask.compute_labels(resolve(mask)._inner, labels)
    return np.stack([m, t]) if targets else m


def map_labels(mask, labels, *, targets=False):
    """The mask of a dask array of labels (e.g. ``da.from_zarr("crop.zarr/labels")``), chunk by
    chunk, with ``mask``'s plan (``mask`` opened on the same label array): ``uint8``
    ``(channels, *labels.shape)``, chunked as ``labels``; with ``targets=True`` the pair
    ``(mask, targets)`` from one pass per chunk. Label arrays only (a crop group's classes:
    :meth:`annomask.MissingAnnotationsMask.compute_labels` on dicts of blocks)."""
    if not isinstance(mask, MissingAnnotationsMask):
        raise TypeError(f"mask: an annomask.MissingAnnotationsMask, not {type(mask).__name__}")
    if labels.ndim != mask.dims:
        raise ValueError(f"labels: {labels.ndim} axes, the mask's source has {mask.dims}")
    channels = ((mask.num_channels,),)
    if targets:
        both = labels.map_blocks(
            _labels_task,
            Shared(mask),
            True,
            new_axis=[0, 1],
            chunks=((2,),) + channels + labels.chunks,
            dtype=np.uint8,
            meta=np.empty((0,) * (labels.ndim + 2), np.uint8),
        )
        return both[0], both[1]
    return labels.map_blocks(
        _labels_task,
        Shared(mask),
        False,
        new_axis=0,
        chunks=channels + labels.chunks,
        dtype=np.uint8,
        meta=np.empty((0,) * (labels.ndim + 1), np.uint8),
    )


def _workers(client):
    """Threads that will run tasks: the cluster's, or this machine's cores."""
    if client is None:
        try:
            from distributed import get_client

            client = get_client()
        except (ImportError, ValueError):
            client = None
    if client is not None:
        try:
            return max(1, sum(client.nthreads().values()))
        except Exception:
            pass
    import os

    return os.cpu_count() or 1


def compute(
    source,
    groupings,
    out,
    *,
    roi=None,
    chunks=None,
    zarr_format=None,
    compression="blosc-lz4",
    resume=False,
    memory_budget=None,
    policy="whole-channel",
    sparse="missing",
    background=0,
    engine="auto",
    allow_missing_metadata=False,
    scale="s0",
    verify=False,
    anonymous=False,
    client=None,
    blocks_per_task=None,
    retries=3,
):
    """``annomask compute SOURCE --groupings G --out OUT`` on a Dask cluster; returns a
    :class:`Summary` (trained voxels per channel, blocks written and skipped, ...).

    The client checks everything and creates the output (metadata and attributes exactly the
    CLI's for the same arguments) before submitting a task; a bad input raises here with the
    one-line error. Tasks of ``blocks_per_task`` consecutive blocks (default: about four tasks
    per worker thread) each compute and atomically write their blocks, on the active scheduler
    (``client``, else the current ``distributed`` client, else Dask's default) with
    ``retries``. ``resume=True`` skips complete blocks (a run killed midway, client included,
    continues); at the end the client removes temporary files that killed workers left.

    Arguments as for ``annomask compute`` and :func:`annomask.open`: ``roi`` (world units),
    ``chunks`` (output chunk shape: spatial, or channel first), ``zarr_format`` (2 or 3; default
    the input's), ``compression`` (``raw``, ``blosc-lz4``, ``blosc-zstd``, ``zstd``, ``gzip``),
    ``memory_budget`` (bytes or ``"16GiB"``; as ``--memory-budget``, it also sets the default
    chunk shape), ``policy``, ``sparse``, ``background``, ``engine``,
    ``allow_missing_metadata``, ``scale``, ``verify``, ``anonymous``.
    """
    start = time.perf_counter()
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
    removed = job.create()
    n = job.num_blocks
    if blocks_per_task is None:
        blocks_per_task = max(1, math.ceil(n / (4 * _workers(client))))
    blocks_per_task = int(blocks_per_task)
    if blocks_per_task < 1:
        raise ValueError(f"blocks_per_task: must be at least 1, not {blocks_per_task}")
    shared = Shared(job)
    name = f"annomask-compute-{uuid.uuid4().hex}"
    tasks = [
        dask.delayed(write_blocks, pure=False)(
            shared, list(range(i, min(i + blocks_per_task, n))), resume, dask_key_name=(name, k)
        )
        for k, i in enumerate(range(0, n, blocks_per_task))
    ]
    if client is not None:
        results = client.gather(client.compute(tasks, retries=retries))
    else:
        results = dask.compute(*tasks, retries=retries)
    removed += job.remove_stale_temporaries()
    return summarise(job, results, removed, time.perf_counter() - start)
