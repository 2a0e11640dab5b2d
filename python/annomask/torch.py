"""PyTorch datasets over annomask: raw data, targets and mask as tensors.

Torch is an optional dependency: importing this module needs it, ``import annomask`` does not.

- :class:`FeederDataset`, an ``IterableDataset`` of whole batches of random ROIs (use it with
  ``DataLoader(dataset, batch_size=None, num_workers=...)``). Each DataLoader worker takes its
  shard of the batch sequence (worker ``i`` of ``n`` computes batches ``i, i + n, ...``), so
  the loader yields the same batches, in the same order, whatever ``num_workers`` is; an epoch
  is ``batches_per_epoch`` batches, and :meth:`FeederDataset.set_epoch` gives each epoch its
  own (deterministic) sequence.
- :class:`RoiDataset`, a map-style ``Dataset`` over a fixed list of ROIs (validation tiles:
  :func:`annomask.datasplit.validation_tiles`), one sample per item (the DataLoader batches).

Each item is a dict of tensors: ``targets`` (``float32``; or NaN where the mask is 0 with
``targets="nan"``), ``mask`` (``float32`` 0/1: pass it as the ``weight`` of
``binary_cross_entropy_with_logits``) and, with raw data, ``raw`` (``float32``, one channel
axis: ``(batch, 1, *roi_shape + 2 * context)``; integer raw scaled to 0..1 by its dtype's
maximum unless ``normalize=False``). Both datasets pickle (spawned workers) and work in forked
workers.

>>> import tempfile, torch, annomask, annomask.torch
>>> d = tempfile.mkdtemp()
>>> crop = annomask.write_demo_crop(d, 32)
>>> data = annomask.torch.FeederDataset(crop, (16, 16, 16), groupings=annomask.demo_groupings(),
...                                     batch_size=2, batches_per_epoch=3, engine="cpu")
>>> loader = torch.utils.data.DataLoader(data, batch_size=None, num_workers=0)
>>> [tuple(b["targets"].shape) for b in loader]
[(2, 5, 16, 16, 16), (2, 5, 16, 16, 16), (2, 5, 16, 16, 16)]
"""

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

import annomask

__all__ = ["FeederDataset", "RoiDataset"]

_MASK64 = (1 << 64) - 1


def _epoch_seed(seed, epoch):
    """A seed per epoch: the same ``(seed, epoch)`` always gives the same sequence."""
    return (int(seed) ^ (int(epoch) * 0x9E3779B97F4A7C15)) & _MASK64


def _raw_tensor(raw, normalize, channel_axis):
    """``raw`` (numpy, any integer dtype) as float32, a channel axis inserted at ``channel_axis``."""
    t = torch.from_numpy(np.ascontiguousarray(raw)).to(torch.float32)
    if normalize and np.issubdtype(raw.dtype, np.integer):
        info = np.iinfo(raw.dtype)
        t = (t - float(info.min)) / float(info.max - info.min)
    return t.unsqueeze(channel_axis)


def _open_crops(crops, groupings, options):
    """Masks from masks or paths (opened with ``groupings`` and ``options``)."""
    return [
        c if isinstance(c, annomask.MissingAnnotationsMask) else annomask.open(c, groupings, **options)
        for c in crops
    ]


def _open_raws(raw, crops, anonymous):
    """Raw arrays, one per crop, from arrays or paths (at each crop's voxel size)."""
    return [
        r if isinstance(r, annomask.RawArray) else annomask.open_raw(r, m.voxel_size, anonymous=anonymous)
        for r, m in zip(raw, crops)
    ]


def _tensors(targets, mask, raw, normalize):
    out = {
        "targets": torch.from_numpy(targets).to(torch.float32),
        "mask": torch.from_numpy(mask).to(torch.float32),
    }
    if raw is not None:
        out["raw"] = _raw_tensor(raw, normalize, 1)  # (batch, 1, *spatial)
    return out


class FeederDataset(IterableDataset):
    """Batches of random ROIs as tensors; see the module docs.

    Args:
        crops, roi_shape: as for :class:`annomask.Feeder` (masks or paths).
        batches_per_epoch: batches in one epoch (all workers together).
        normalize: scale integer raw data to 0..1.
        seed: the sequence's seed; epoch ``e`` uses a seed made from ``(seed, e)``.
        **feeder: the other arguments of :class:`annomask.Feeder` (``groupings``, ``raw``,
            ``context``, ``mirror``, ``transpose``, ``batch_size``, ``weighting``,
            ``targets``, ``chunk_cache``, ``engine``, ...), except ``batches``, ``shard`` and
            ``start``, which the dataset sets.
    """

    def __init__(self, crops, roi_shape, *, batches_per_epoch, normalize=True, seed=0, **feeder):
        for reserved in ("batches", "shard", "start"):
            if reserved in feeder:
                raise ValueError(f"FeederDataset sets {reserved}= itself")
        if not isinstance(batches_per_epoch, int) or batches_per_epoch < 1:
            raise ValueError(f"batches_per_epoch: must be a positive int, not {batches_per_epoch!r}")
        groupings = feeder.pop("groupings", None)
        options = {
            k: feeder.pop(k)
            for k in ("engine", "policy", "sparse", "background", "allow_missing_metadata", "scale", "anonymous")
            if k in feeder
        }
        if isinstance(crops, (str, annomask.MissingAnnotationsMask)) or hasattr(crops, "__fspath__"):
            crops = [crops]
            raw = feeder.get("raw")
            if raw is not None and not isinstance(raw, (list, tuple)):
                feeder["raw"] = [raw]
        # Open once here: the masks pickle as their arguments and reopen in each worker.
        self.crops = _open_crops(crops, groupings, options)
        if feeder.get("raw") is not None:
            feeder["raw"] = _open_raws(feeder["raw"], self.crops, options.get("anonymous", False))
        self.roi_shape = roi_shape
        self.batches_per_epoch = batches_per_epoch
        self.normalize = normalize
        self.seed = seed
        self.epoch = 0
        self.feeder = feeder

    def set_epoch(self, epoch):
        """Selects the epoch whose sequence the next iteration yields."""
        self.epoch = int(epoch)

    def __len__(self):
        return self.batches_per_epoch

    def feeder_for(self, worker, workers):
        """The :class:`annomask.Feeder` of one worker's shard of the current epoch."""
        return annomask.Feeder(
            self.crops,
            self.roi_shape,
            seed=_epoch_seed(self.seed, self.epoch),
            batches=self.batches_per_epoch,
            shard=(worker, workers),
            **self.feeder,
        )

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        with self.feeder_for(worker, workers) as feeder:
            for batch in feeder:
                yield _tensors(batch.targets, batch.mask, batch.raw, self.normalize)


class RoiDataset(Dataset):
    """One sample per fixed ROI: ``samples`` is a list of ``(crop index, roi)``.

    Args:
        crops: opened masks (or paths, opened with ``groupings`` and ``**options``).
        samples: ``(crop index, roi)`` pairs, ROIs in world units (any form ``mask[roi]`` takes).
        raw: raw data per crop (paths, URLs or :class:`annomask.RawArray`), or ``None``.
        context: raw voxels added on each side of the ROI (one number, or one per axis).
        normalize, targets: as for :class:`FeederDataset` (``targets``: ``"float32"`` or
            ``"nan"``).

    A ROI that reaches past its crop is padded (mask and targets 0 there), as in the feeder.
    """

    def __init__(self, crops, samples, *, raw=None, context=0, normalize=True, targets="float32",
                 groupings=None, **options):
        self.crops = _open_crops(crops, groupings, options)
        self.raw = None
        if raw is not None:
            self.raw = _open_raws(raw, self.crops, options.get("anonymous", False))
        if targets not in ("float32", "nan"):
            raise ValueError(f"targets: must be 'float32' or 'nan', not {targets!r}")
        self.samples = [(int(c), annomask._as_roi(r)) for c, r in samples]
        self.context = context
        self.normalize = normalize
        self.targets = targets

    @classmethod
    def tiles(cls, crops, roi_shape, *, stride=None, **kwargs):
        """A dataset over the validation tiles of every crop
        (:func:`annomask.datasplit.validation_tiles`)."""
        from annomask.datasplit import validation_tiles

        groupings = kwargs.get("groupings")
        options = {k: v for k, v in kwargs.items() if k not in ("raw", "context", "normalize", "targets", "groupings")}
        crops = _open_crops(crops, groupings, options)
        samples = [
            (i, roi) for i, crop in enumerate(crops) for roi in validation_tiles(crop, roi_shape, stride=stride)
        ]
        return cls(crops, samples, **{k: v for k, v in kwargs.items() if k in ("raw", "context", "normalize", "targets")})

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        c, roi = self.samples[i]
        crop = self.crops[c]
        mask, targets = _padded(crop, roi)
        raw = None
        if self.raw is not None:
            dims = len(crop.shape)
            context = [self.context] * dims if isinstance(self.context, int) else list(self.context)
            grow = [v * k for v, k in zip(crop.voxel_size, context)]
            raw = self.raw[c][annomask.geometry.AnnomaskRoi(
                [o - g for o, g in zip(roi.offset, grow)],
                [s + 2 * g for s, g in zip(roi.shape, grow)],
            )]
        targets = targets.astype(np.float32)
        if self.targets == "nan":
            np.copyto(targets, np.float32("nan"), where=mask == 0)
        out = _tensors(targets, mask, None, self.normalize)
        if raw is not None:
            out["raw"] = _raw_tensor(raw, self.normalize, 0)  # (1, *spatial)
        return out


def _padded(crop, roi):
    """``(mask, targets)`` of ``roi``, 0 where it reaches past the crop."""
    full = crop.roi
    begin = [max(a, b) for a, b in zip(roi.offset, full.offset)]
    end = [min(a + s, b + t) for a, s, b, t in zip(roi.offset, roi.shape, full.offset, full.shape)]
    inner = annomask.geometry.AnnomaskRoi(begin, [e - b for b, e in zip(begin, end)])
    if list(inner.offset) == list(roi.offset) and list(inner.shape) == list(roi.shape):
        return crop.get_with_targets(roi)
    if any(e <= b for b, e in zip(begin, end)):
        raise ValueError(f"roi {roi} does not overlap crop {crop.name} ({full})")
    m, t = crop.get_with_targets(inner)
    voxels = [int(round(s / v)) for s, v in zip(roi.shape, crop.voxel_size)]
    at = [int(round((b - o) / v)) for b, o, v in zip(begin, roi.offset, crop.voxel_size)]
    out_m = np.zeros((m.shape[0], *voxels), np.uint8)
    out_t = np.zeros_like(out_m)
    where = (slice(None), *(slice(a, a + n) for a, n in zip(at, m.shape[1:])))
    out_m[where] = m
    out_t[where] = t
    return out_m, out_t
