#!/usr/bin/env python3
"""A DaCapo-style training feeder in numpy, the baseline of `annomask bench --feeder`.

For each ROI of a list: read the labels with zarr-python, binarize them per channel the way
DaCapo's `BinarizeArray` does (`np.isin(labels, ids)`, or `labels != 0` for an empty id list),
and compute the mask the way its released `MissingAnnotationsMask` does (`dacapo_mask` of
reference/reference_mask.py) — two separate numpy passes, as DaCapo runs them. The
missing ids are read once from the `labels` attribute, as DaCapo does when it opens the array.

  python python_feeder.py --reference reference_mask.py --labels crop.zarr/labels \
      --groupings groupings.json --rois rois.json --roi 128

`rois.json` lists ROI starts `[[z, y, x], ...]` in voxels. Prints one JSON line: `seconds` (all
ROIs: read + binarize + mask, after imports and opening the array) and, for the first ROI, the
per-channel sums of targets and mask (`first`), so the caller can check it computed the same.
"""
import argparse
import importlib.util
import json
import time

import numpy as np
import zarr


def load_reference(path):
    spec = importlib.util.spec_from_file_location("reference_mask", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference", required=True)
    p.add_argument("--labels", required=True)
    p.add_argument("--groupings", required=True)
    p.add_argument("--rois", required=True)
    p.add_argument("--roi", type=int, required=True)
    args = p.parse_args()
    ref = load_reference(args.reference)
    with open(args.groupings) as f:
        groupings = json.load(f)
    with open(args.rois) as f:
        starts = json.load(f)
    src = zarr.open_array(args.labels, mode="r")
    missing = ref.missing_ids(src.attrs["labels"])
    r = args.roi

    first = None
    t = time.perf_counter()
    for z, y, x in starts:
        labels = src[z:z + r, y:y + r, x:x + r]
        targets = np.stack(
            [np.isin(labels, ids) if ids else labels != 0 for _, ids in groupings]
        ).astype(np.uint8)
        mask = ref.dacapo_mask(labels, groupings, missing).astype(np.uint8)
        if first is None:
            axes = tuple(range(1, mask.ndim))
            first = {
                "targets": targets.sum(axis=axes).tolist(),
                "mask": mask.sum(axis=axes).tolist(),
            }
    seconds = time.perf_counter() - t
    print(json.dumps({"seconds": seconds, "first": first}))


if __name__ == "__main__":
    main()
