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
    "Roi",
    "demo_class_groupings",
    "demo_groupings",
    "open",
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


def _groupings(groupings):
    """``_annomask.Groupings`` from pairs, a dict, a file path, or already parsed groupings."""
    if isinstance(groupings, _annomask.Groupings):
        return groupings
    if isinstance(groupings, (str, os.PathLike)):
        return _annomask.Groupings.from_file(os.fspath(groupings))
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
    return _annomask.Groupings.from_json(text, "<groupings>")


def _background(background):
    if not isinstance(background, numbers.Integral) or not 0 <= background < 2**64:
        raise ValueError(
            f"background: must be an integer in 0..2**64-1 (a label id), not {background!r}"
        )
    return int(background)


class MissingAnnotationsMask:
    """A read-only, computed-on-request ``uint8`` array of shape ``(channels, *spatial)``.

    1 where a channel may be trained, 0 where not. The attributes mirror DaCapo's
    ``MissingAnnotationsMask``; ``mask[roi]`` is its ``__getitem__``. Made by
    :func:`annomask.open`.
    """

    def __init__(self, inner):
        self._inner = inner

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
    inner = _annomask.open(
        os.fspath(path),
        _groupings(groupings),
        policy=policy,
        sparse=sparse,
        background=_background(background),
        engine=engine,
        allow_missing_metadata=allow_missing_metadata,
        scale=scale,
        verify=verify,
        anonymous=anonymous,
    )
    return MissingAnnotationsMask(inner)


class Batch(NamedTuple):
    """One feeder batch.

    Attributes:
        index: position in the sequence (0, 1, ...).
        targets: per-channel binary targets, ``uint8`` ``(batch, channels, *roi_shape)``.
        mask: the missing-annotation mask, same shape: 1 where the target may be trained.
        crops: for each sample, the index of its crop in ``Feeder.crops``.
        rois: for each sample, its :class:`Roi` in world units (read raw data there).
        labels: with ``with_labels=True``, each sample's source data: a numpy array of the
            label array's dtype, or for a crop group a dict class name -> array; else ``None``.
    """

    index: int
    targets: np.ndarray
    mask: np.ndarray
    crops: list
    rois: list
    labels: Optional[list]


class Feeder:
    """Training batches of random voxel-aligned ROIs over one or more crops, as numpy arrays.

    Each ROI's targets and mask are computed in one fused pass (on the GPU with a GPU engine);
    a background thread computes ``prefetch`` batches ahead. The sequence depends only on the
    crops, ``roi_shape``, ``seed``, ``batch_size`` and ``weighting``: the same arguments give
    the same batches. Iterate once; make a new feeder to start again.

    Args:
        crops: a crop or a list of crops, each an opened :class:`MissingAnnotationsMask` or a
            path (opened with ``groupings`` and the options below). All need the same channels.
        roi_shape: the ROI shape in voxels, one per spatial axis; it must fit every crop.
        groupings: the groupings for crops given as paths.
        seed: seed of the ROI sequence.
        batch_size: ROIs per batch.
        prefetch: batches computed ahead.
        weighting: ``"uniform"`` (every crop equally often) or ``"size"`` (by voxel count).
        with_labels: also return each ROI's source data (``Batch.labels``).
        batches: stop after this many batches (default: never).
        engine, policy, sparse, background, allow_missing_metadata, scale, anonymous: as for
            :func:`open`, for crops given as paths.

    Yields :class:`Batch` named tuples (``batch.targets``, ``batch.mask``; ``torch.from_numpy``
    takes them without a copy). Waiting for a batch releases the GIL. ``feeder.crops`` lists
    the opened crops (``Batch.crops`` indexes it); ``close()`` (or a ``with`` block) stops the
    prefetch thread early.
    """

    def __init__(
        self,
        crops,
        roi_shape,
        *,
        groupings=None,
        seed=0,
        batch_size=1,
        prefetch=4,
        weighting="uniform",
        with_labels=False,
        batches=None,
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
        # The opened crops, in order (``Batch.crops`` indexes them).
        self.crops = masks
        self._inner = _annomask.Feeder(
            [m._inner for m in masks],
            [int(s) for s in roi_shape],
            seed=seed,
            batch_size=batch_size,
            prefetch=prefetch,
            weighting=weighting,
            with_labels=with_labels,
            batches=batches,
        )

    def __iter__(self):
        return self

    def __next__(self):
        raw = self._inner.next_batch()
        if raw is None:
            raise StopIteration
        index, targets, mask, samples, labels = raw
        return Batch(
            index=index,
            targets=targets,
            mask=mask,
            crops=[crop for crop, _, _ in samples],
            rois=[type(self.crops[c].roi)(offset, shape) for c, offset, shape in samples],
            labels=labels,
        )

    def close(self):
        """Stops the prefetch thread; iteration then ends."""
        self._inner.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


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
