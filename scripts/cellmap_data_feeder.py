#!/usr/bin/env python3
"""cellmap-data's training loader, the peer of `annomask bench --feeder` on a CellMap crop group.

Runs cellmap-data the way its documentation and the CellMap segmentation challenge's training
scripts do: a `CellMapDataSplit` built from a `dataset_dict` (one training pair: the raw
OME-NGFF multiscale group and the crop group with its classes in brackets), its default value
transforms (raw scaled to float, targets `ToDtype(float)` then `Binarize()`), its combined
training dataset, and `CellMapDataLoader` with 0 workers (the main process: the same cores
annomask's feeder gets). One input array (`input`, the raw) unless `--no-raw`, one target array
(`output`, one channel per class), both `--roi`^3 voxels at the crop's `s0` voxel size.

  python cellmap_data_feeder.py --raw d.zarr/recon-1/em/fibsem-uint8 \
      --crop d.zarr/recon-1/labels/groundtruth/crop1 --classes mito_mem,mito_lum,mito,er_mem,er_lum \
      --roi 128 --batches 16 [--batch-size 1] [--rois rois.json] [--no-raw]

Sampling: with `--rois` (a JSON list of ROI starts `[[z, y, x], ...]` in the crop's voxels, as
`annomask bench --feeder` draws them) the loader's sampler is the list of dataset indices whose
patches start there, so both feeders read the same ROIs; without it, the loader's own random
sampling (`is_train=True`: a shuffled permutation of every patch centre, `--seed`).

One warm-up batch (the first `--batch-size` ROIs, not timed) precedes `--batches` timed
batches. Prints one JSON line: `seconds` (the timed batches), `setup_seconds` (after imports:
building the split and the loader, and the warm-up), `target_sums` per class over the timed
batches (NaN voxels counted apart, in `nan_voxels`), `first` and `first_nan` (the first ROI's,
from the warm-up batch), `raw_mean` (of the timed batches' raw, where read), and `versions`.
Written against cellmap-data 2026.3.20.1935 (whose `CellMapImage` reads with zarr-python 2);
only its public classes are used.
"""
import argparse
import json
import math
import os
import platform
import time


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--raw", required=True, help="raw OME-NGFF multiscale group")
    p.add_argument("--crop", required=True, help="CellMap crop group")
    p.add_argument("--classes", required=True, help="comma-separated class names")
    p.add_argument("--roi", type=int, required=True)
    p.add_argument("--batches", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--rois", help="JSON list of ROI starts (crop voxels)")
    p.add_argument("--no-raw", action="store_true", help="targets only: no input array")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    import numpy as np
    import torch
    import zarr
    import cellmap_data
    from cellmap_data import CellMapDataLoader, CellMapDataSplit

    t0 = time.perf_counter()
    torch.manual_seed(args.seed)
    classes = [c for c in args.classes.split(",") if c]
    crop_attrs = dict(zarr.open_group(os.path.join(args.crop, classes[0]), mode="r").attrs)
    s0 = next(d for d in crop_attrs["multiscales"][0]["datasets"] if d["path"] == "s0")
    tx = {t["type"]: t[t["type"]] for t in s0["coordinateTransformations"]}
    voxel, origin = tx["scale"], tx.get("translation", [0.0] * len(tx["scale"]))
    r = args.roi
    spec = {"shape": (r,) * len(voxel), "scale": tuple(voxel)}
    input_arrays = {} if args.no_raw else {"input": spec}
    split = CellMapDataSplit(
        input_arrays=input_arrays,
        target_arrays={"output": spec},
        classes=classes,
        pad=False,
        dataset_dict={"train": [{"raw": args.raw, "gt": f"{args.crop}/[{','.join(classes)}]"}]},
    )
    if not split.train_datasets:
        raise SystemExit("cellmap-data made no training dataset of the crop (too small for the ROI?)")
    dataset = split.train_datasets_combined
    b = max(1, args.batch_size)
    sampler = None
    if args.rois:
        with open(args.rois) as f:
            starts = json.load(f)
        # A patch of dataset index i is centred at sampling_box.lo + (i + 0.5) voxel and
        # starts at floor(centre / voxel - roi / 2): the crop voxel whose index is
        # i + (sampling_box.lo - crop origin) / voxel - roi / 2.
        ds = split.train_datasets[0]
        box = ds.sampling_box
        axes = list(box)
        grid = [max(1, int(round((box[a][1] - box[a][0]) / voxel[i]))) for i, a in enumerate(axes)]
        shift = [int(round((box[a][0] - origin[i]) / voxel[i] - r / 2)) for i, a in enumerate(axes)]
        indices = []
        for start in starts:
            v = [min(max(s - sh, 0), g - 1) for s, sh, g in zip(start, shift, grid)]
            indices.append(int(np.ravel_multi_index(v, grid)))
        need = (args.batches + 1) * b
        indices = (indices[:b] + indices) * (need // (len(indices) + b) + 1)
        sampler = indices[:need]
    loader = CellMapDataLoader(
        dataset, classes=classes, batch_size=b, num_workers=0, is_train=True,
        sampler=sampler, device="cpu",
    )

    sums = torch.zeros(len(classes), dtype=torch.float64)
    nans = torch.zeros(len(classes), dtype=torch.int64)
    raw_sum, raw_n = 0.0, 0
    first = first_nan = None
    it = iter(loader)
    warm = next(it)
    out = warm["output"][0]
    first = [float(torch.nansum(out[c], dtype=torch.float64)) for c in range(len(classes))]
    first_nan = [int(torch.isnan(out[c]).sum()) for c in range(len(classes))]
    setup = time.perf_counter() - t0

    t = time.perf_counter()
    done = 0
    while done < args.batches:
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            continue
        out = batch["output"]
        dims = (0, 2, 3, 4)[: out.ndim]
        sums += torch.nansum(out.double(), dim=dims)
        nans += torch.isnan(out).sum(dim=dims)
        if "input" in batch:
            raw_sum += float(batch["input"].double().sum())
            raw_n += batch["input"].numel()
        done += 1
    seconds = time.perf_counter() - t

    print(json.dumps({
        "seconds": seconds,
        "setup_seconds": setup,
        "batches": done,
        "batch_size": b,
        "roi": r,
        "raw": not args.no_raw,
        "sampling": "rois" if args.rois else "random",
        "classes": classes,
        "target_sums": [int(s) for s in sums.tolist()],
        "nan_voxels": nans.tolist(),
        "first": [int(s) for s in first],
        "first_nan": first_nan,
        "raw_mean": raw_sum / raw_n if raw_n else None,
        "raw_dtype": str(warm["input"].dtype) if "input" in warm else None,
        "target_dtype": str(warm["output"].dtype),
        "versions": {
            "cellmap_data": getattr(cellmap_data, "__version__", "?"),
            "torch": torch.__version__,
            "zarr": zarr.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
    }))


if __name__ == "__main__":
    main()
