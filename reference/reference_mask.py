#!/usr/bin/env python3
"""Independent numpy reference of annomask's masks, written from docs/contract.md.

It is deliberately plain: whole arrays in memory, one numpy expression per rule, no blocks, no
threads, nothing shared with the Rust code. Two uses: an oracle for end-to-end tests on real
zarr data (tests/reference.rs, python/tests), and the numpy baseline of `annomask bench`.

  python reference_mask.py mask --labels crop.zarr/labels --groupings g.json --out mask.npy \
      [--policy whole-channel|per-voxel] [--sparse missing|annotated] [--background N] \
      [--allow-missing-metadata] [--targets-out targets.npy]
  python reference_mask.py crop --crop crop.zarr/crop234 --groupings classes.json --out mask.npy \
      [--scale s0] [--targets-out targets.npy]
  python reference_mask.py bench --size 256 --dtype uint64 --channels 8 --repeat 5

`mask` and `crop` save `uint8` arrays of shape (channels, *spatial) in C order (`np.save`).
Errors print one line `error: ...` and exit 1. Needs numpy, and zarr >= 3 for `mask`/`crop`
(`bash setup.sh` makes such a venv).

Imported as a module (scripts/python_pipeline.py, scripts/python_feeder.py, python/tests):
`missing_ids`, `reference_mask`, `reference_targets`, `dacapo_mask`, `crop_reference`.
"""
import argparse
import json
import sys
import time

import numpy as np

U64 = 1 << 64


class ContractError(ValueError):
    """Input that docs/contract.md says is an error."""


# --- contract 1.1: labels compared as unsigned 64-bit bit patterns ----------------------------
#
# The contract reads every voxel as a uint64 bit pattern (signed values sign-extended). Rather
# than widening whole arrays (which would make the numpy baseline of `annomask bench` pay for a
# conversion), each id is turned into the one value of the array's dtype that has that bit
# pattern; an id with no such value matches no voxel. Both readings give the same comparisons.


def integer_dtype(values):
    dtype = np.asarray(values).dtype
    if dtype.kind not in "ui":
        raise ContractError(f"unsupported label dtype {dtype} (integers only)")
    return dtype


def native_value(id_, dtype):
    """The value of integer `dtype` whose bit pattern is the uint64 `id_` (negative metadata
    codes taken modulo 2**64 first), as a numpy scalar; None if the dtype has no such value."""
    id_ = int(id_) % U64
    if dtype.kind == "i" and id_ >= 1 << 63:
        id_ -= U64  # undo the sign extension
    info = np.iinfo(dtype)
    return dtype.type(id_) if info.min <= id_ <= info.max else None


def native_values(ids, dtype):
    """The ids that `dtype` can hold, as an array of that dtype."""
    values = [v for v in (native_value(i, dtype) for i in ids) if v is not None]
    return np.array(values, dtype=dtype)


def not_equal(values, id_):
    """values != id_ under the contract's comparison (all true when no voxel can be id_)."""
    v = native_value(id_, values.dtype)
    return np.ones(values.shape, dtype=bool) if v is None else values != v


# --- contract 1.2: annotation metadata ---------------------------------------------------------


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def parse_metadata(labels_attr, path="<labels>"):
    """{id: (present, annotated, sparse)} from a `labels` attribute, validated (contract 1.2).

    `annotated` is True/False or "dense"/"sparse"/"empty"; `sparse` is True/False/None.
    """
    if not isinstance(labels_attr, list):
        raise ContractError(f"{path}: the labels attribute is not a list")
    states = {}
    first_index = {}
    for i, entry in enumerate(labels_attr):
        where = f"{path}: labels[{i}]"
        if not isinstance(entry, dict):
            raise ContractError(f"{where}: not an object")
        value = entry.get("value")
        if not _is_int(value) or not 0 <= value < U64:
            raise ContractError(f"{where}.value: missing or not a non-negative integer: {value!r}")
        state = entry.get("annotationState")
        if not isinstance(state, dict):
            raise ContractError(f"{where}.annotationState: missing or not an object")
        present = state.get("present")
        if not isinstance(present, bool):
            raise ContractError(f"{where}.annotationState.present: not true or false: {present!r}")
        annotated = state.get("annotated")
        if not (isinstance(annotated, bool) or annotated in ("dense", "sparse", "empty")):
            raise ContractError(f"{where}.annotationState.annotated: {annotated!r}")
        sparse = state.get("sparse")
        if sparse is not None and not isinstance(sparse, bool):
            raise ContractError(f"{where}.annotationState.sparse: not true or false: {sparse!r}")
        # `True == 1` in Python: compare the kinds too, so "annotated": true and 1 never meet.
        key = (present, type(annotated).__name__, annotated, sparse)
        if value in states and states[value] != key:
            raise ContractError(
                f"{where}.value: id {value} is also described by labels[{first_index[value]}] "
                "with a different annotationState"
            )
        states.setdefault(value, key)
        first_index.setdefault(value, i)
    return {v: (k[0], k[2], k[3]) for v, k in states.items()}


def is_missing(present, annotated, sparse, sparse_is_missing=True):
    """Contract 1.2: present, and not annotated (false / "empty") or sparse under sparse=missing."""
    if not present:
        return False
    if annotated is False or annotated == "empty":
        return True
    if annotated == "sparse" or sparse is True:
        return sparse_is_missing
    return False


def missing_ids(labels_attr, sparse_is_missing=True):
    """The set of missing ids of a `labels` attribute."""
    return {
        value
        for value, state in parse_metadata(labels_attr).items()
        if is_missing(*state, sparse_is_missing)
    }


# --- contract 1.3 / 2: the mask and the targets of a label array -------------------------------


def reference_mask(labels, groupings, missing, background=0, policy="whole-channel"):
    """uint8 (channels, *labels.shape): contract 2 for `groupings` [(name, [ids])]."""
    if policy not in ("whole-channel", "per-voxel"):
        raise ContractError(f"unknown policy {policy!r}")
    labels = np.asarray(labels)
    dtype = integer_dtype(labels)
    foreground = not_equal(labels, background)
    mask = np.empty((len(groupings), *labels.shape), dtype=np.uint8)
    for c, (_, ids) in enumerate(groupings):
        off = sorted({int(i) for i in ids if int(i) in missing})
        if policy == "whole-channel":
            mask[c] = 0 if off else foreground
        else:
            keep = foreground.copy()
            for value in native_values(off, dtype):
                keep &= labels != value
            mask[c] = keep
    return mask


def reference_targets(labels, groupings, background=0):
    """uint8 (channels, *shape): label in the channel's ids; `!= background` for no ids."""
    labels = np.asarray(labels)
    dtype = integer_dtype(labels)
    out = np.zeros((len(groupings), *labels.shape), dtype=np.uint8)
    for c, (_, ids) in enumerate(groupings):
        if ids:
            out[c] = np.isin(labels, native_values(ids, dtype))
        else:
            out[c] = not_equal(labels, background)
    return out


def dacapo_mask(labels, groupings, missing):
    """DaCapo's released `MissingAnnotationsMask.__getitem__` as it is written there: whole
    channel, background 0, a bool array (the benchmark's "released code" row)."""
    grouped = np.ones((len(groupings), *labels.shape), dtype=bool)
    grouped[:, labels == 0] = 0
    for i, (_, ids) in enumerate(groupings):
        if any([id in missing for id in ids]):
            grouped[i] = 0
    return grouped


# --- contract 1.4: CellMap crop groups ---------------------------------------------------------


def class_rule(annotation):
    """(kind, codes) of a class's `cellmap.annotation`, codes as {name: int}."""
    kind = annotation["annotation_type"]["type"]
    if kind not in ("semantic_segmentation", "instance_segmentation"):
        raise ContractError(f"unknown annotation type {kind!r}")
    codes = {}
    for name, code in annotation["annotation_type"]["encoding"].items():
        if name not in ("absent", "present", "unknown") or not _is_int(code):
            raise ContractError(f"bad encoding entry {name!r}: {code!r}")
        codes[name] = code
    return kind, codes


def crop_values(values, kind, codes):
    """(known, positive) bool arrays of one class array (contract 1.4)."""
    values = np.asarray(values)
    dtype = integer_dtype(values)
    known = not_equal(values, codes["unknown"]) if "unknown" in codes else np.ones(values.shape, bool)
    if kind == "semantic_segmentation":
        if "present" in codes:
            positive = ~not_equal(values, codes["present"])
        else:
            positive = np.zeros(values.shape, dtype=bool)
    else:
        positive = ~np.isin(values, native_values(codes.values(), dtype))
    return known, positive


def crop_reference(listed, classes, groupings, shape):
    """Mask and targets, uint8 (channels, *shape), of a crop group.

    `listed`: the crop's `class_names`; `classes`: {name: (values, kind, codes)} for at least
    every listed class that a channel names; `groupings`: [(name, [class names])].
    """
    mask = np.zeros((len(groupings), *shape), dtype=np.uint8)
    targets = np.zeros_like(mask)
    for c, (_, names) in enumerate(groupings):
        if not names:
            raise ContractError("a channel of a crop group needs at least one class")
        if any(n not in listed for n in names):
            continue  # a class the crop never annotated: the whole channel is off
        known = np.ones(shape, dtype=bool)
        positive = np.zeros(shape, dtype=bool)
        for n in dict.fromkeys(names):
            values, kind, codes = classes[n]
            if tuple(values.shape) != tuple(shape):
                raise ContractError(f"class {n}: shape {values.shape}, expected {tuple(shape)}")
            k, p = crop_values(values, kind, codes)
            known &= k
            positive |= p
        mask[c] = known
        targets[c] = positive  # `unknown` is one of the codes: never positive
    return mask, targets


# --- command line ------------------------------------------------------------------------------


def load_groupings(path):
    """[(name, [members])] from JSON (a list, or {"groupings": list}) or TOML (`.toml`)."""
    if str(path).endswith(".toml"):
        import tomllib

        with open(path, "rb") as f:
            value = tomllib.load(f)
    else:
        with open(path) as f:
            value = json.load(f)
    if isinstance(value, dict):
        value = value.get("groupings")
    if not isinstance(value, list) or not value:
        raise ContractError(f"{path}: expected a non-empty list of [name, [members]] pairs")
    out, seen = [], set()
    for i, pair in enumerate(value):
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)
                and isinstance(pair[1], list)):
            raise ContractError(f"{path}: channel {i} is not a [name, [members]] pair: {pair!r}")
        name, members = pair
        if not name or name in seen:
            raise ContractError(f"{path}: channel {i}: empty or repeated name {name!r}")
        seen.add(name)
        out.append((name, members))
    return out


def id_groupings(groupings, path):
    for name, ids in groupings:
        for i in ids:
            if not _is_int(i) or not 0 <= i < U64:
                raise ContractError(f"{path}: channel {name}: {i!r} is not a label id")
    return groupings


def save(out, array, what):
    np.save(out, np.ascontiguousarray(array, dtype=np.uint8))
    print(f"{what} {array.shape} -> {out}")


def cmd_mask(args):
    import zarr

    array = zarr.open_array(args.labels, mode="r")
    attrs = dict(array.attrs)
    if "labels" not in attrs and not args.allow_missing_metadata:
        raise ContractError(f"{args.labels}: no `labels` attribute (see --allow-missing-metadata)")
    states = parse_metadata(attrs.get("labels", []), args.labels)
    missing = {v for v, s in states.items() if is_missing(*s, args.sparse == "missing")}
    groupings = id_groupings(load_groupings(args.groupings), args.groupings)
    labels = array[...]
    mask = reference_mask(labels, groupings, missing, args.background, args.policy)
    print(f"missing ids {sorted(missing)}")
    save(args.out, mask, "mask")
    if args.targets_out:
        save(args.targets_out, reference_targets(labels, groupings, args.background), "targets")


def cmd_crop(args):
    import zarr

    crop = zarr.open_group(args.crop, mode="r")
    listed = crop.attrs["cellmap"]["annotation"]["class_names"]
    groupings = load_groupings(args.groupings)
    for name, members in groupings:
        if not all(isinstance(m, str) and m for m in members):
            raise ContractError(f"{args.groupings}: channel {name}: members must be class names")
    needed = {n for _, names in groupings if all(m in listed for m in names) for n in names}
    classes = {}
    for n in sorted(needed):
        kind, codes = class_rule(crop[n].attrs["cellmap"]["annotation"])
        classes[n] = (crop[n][args.scale][...], kind, codes)
    shapes = {tuple(v.shape) for v, _, _ in classes.values()}
    if len(shapes) > 1:
        raise ContractError(f"{args.crop}: class arrays differ in shape: {sorted(shapes)}")
    shape = shapes.pop() if shapes else tuple(crop[listed[0]][args.scale].shape)
    mask, targets = crop_reference(listed, classes, groupings, shape)
    print(f"classes read {sorted(needed)}")
    save(args.out, mask, "mask")
    if args.targets_out:
        save(args.targets_out, targets, "targets")


def cmd_bench(args):
    """The inputs of `annomask bench`: labels uniform in 0..40, channel c = ids 3c+1..3c+3,
    ids 4 and 11 missing. One line per variant: `<name>: ...: best X ms, Y Gvox/s` (annomask
    reads those two numbers)."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 40, size=(args.size,) * 3, dtype=np.uint64).astype(args.dtype)
    groupings = [(f"c{c}", [3 * c + 1, 3 * c + 2, 3 * c + 3]) for c in range(args.channels)]
    missing = {4, 11}
    variants = [
        ("dacapo (released code)", lambda: dacapo_mask(labels, groupings, missing)),
        ("whole-channel", lambda: reference_mask(labels, groupings, missing, 0, "whole-channel")),
        ("per-voxel", lambda: reference_mask(labels, groupings, missing, 0, "per-voxel")),
    ]
    for name, run in variants:
        best = float("inf")
        for _ in range(max(1, args.repeat)):
            start = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - start)
        print(f"{name}: {args.size}^3 {args.dtype} x {args.channels} ch: "
              f"best {best * 1e3:.1f} ms, {labels.size / best / 1e9:.3f} Gvox/s")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("mask", help="the mask of a zarr label array (contract 1.1-1.3, 1.5, 2)")
    m.add_argument("--labels", required=True)
    m.add_argument("--groupings", required=True)
    m.add_argument("--out", required=True)
    m.add_argument("--policy", choices=["whole-channel", "per-voxel"], default="whole-channel")
    m.add_argument("--sparse", choices=["missing", "annotated"], default="missing")
    m.add_argument("--background", type=int, default=0)
    m.add_argument("--allow-missing-metadata", action="store_true")
    m.add_argument("--targets-out")
    c = sub.add_parser("crop", help="mask and targets of a CellMap crop group (contract 1.4)")
    c.add_argument("--crop", required=True)
    c.add_argument("--groupings", required=True)
    c.add_argument("--out", required=True)
    c.add_argument("--scale", default="s0")
    c.add_argument("--targets-out")
    b = sub.add_parser("bench", help="time the numpy masks (the baseline of `annomask bench`)")
    b.add_argument("--size", type=int, default=256)
    b.add_argument("--dtype", default="uint64")
    b.add_argument("--channels", type=int, default=8)
    b.add_argument("--repeat", type=int, default=5)
    args = p.parse_args(argv)
    try:
        {"mask": cmd_mask, "crop": cmd_crop, "bench": cmd_bench}[args.cmd](args)
    except ContractError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
