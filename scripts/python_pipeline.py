#!/usr/bin/env python3
"""A Python user's missing-annotation mask pipeline, the baseline of `annomask bench --pipeline`.

The same job as `annomask compute`, the way a DaCapo user would write it: read the whole label
array with zarr-python, take the missing ids from its `labels` attribute, compute DaCapo's
released mask (`dacapo_mask` of reference/reference_mask.py), and write it with
zarr-python in the chunks and codec annomask writes (channels x the label chunk shape, blosc
lz4 level 5 with byte shuffle, zarr v3).

  python python_pipeline.py --reference reference_mask.py --labels crop.zarr/labels \
      --groupings groupings.json --out mask.zarr

Prints one JSON line: `seconds` (the job: read + mask + write) and `startup_seconds` (importing
numpy, zarr and the reference before it; the interpreter's own start cannot be seen from inside,
the caller times the whole process).
"""
import argparse
import importlib.util
import json
import time

START = time.perf_counter()

import numpy as np  # noqa: E402
import zarr  # noqa: E402
from zarr.codecs import BloscCodec  # noqa: E402


def load_reference(path):
    spec = importlib.util.spec_from_file_location("reference_mask", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference", required=True, help="path of reference_mask.py")
    p.add_argument("--labels", required=True)
    p.add_argument("--groupings", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    ref = load_reference(args.reference)
    with open(args.groupings) as f:
        groupings = json.load(f)

    t = time.perf_counter()
    src = zarr.open_array(args.labels, mode="r")
    labels = src[...]
    missing = ref.missing_ids(src.attrs["labels"])
    mask = ref.dacapo_mask(labels, groupings, missing)
    out = zarr.create_array(
        args.out,
        shape=mask.shape,
        chunks=(len(groupings), *src.chunks),
        dtype="uint8",
        fill_value=0,
        compressors=[BloscCodec(cname="lz4", clevel=5, shuffle="shuffle", blocksize=0)],
        zarr_format=3,
    )
    out[...] = mask.view(np.uint8)
    done = time.perf_counter()
    print(json.dumps({"seconds": done - t, "startup_seconds": t - START}))


if __name__ == "__main__":
    main()
