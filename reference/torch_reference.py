#!/usr/bin/env python3
"""annomask's mask (docs/contract.md, sections 1.1, 1.2, 1.5 and 2) in PyTorch, on the CPU or a
CUDA GPU: the peer a PyTorch training pipeline would use instead, and a second oracle for GPU
comparisons.

  python torch_reference.py bench [--size 256] [--dtype int64] [--channels 8] [--repeat 20]
                                  [--device cuda|cpu] [--check]
  python torch_reference.py mask --labels crop.zarr/labels --groupings g.json --out mask.npy
                                 [--policy P] [--sparse S] [--background N] [--device D]
                                 [--targets-out targets.npy]

`bench` (the default when no subcommand is given) uses the inputs of `annomask bench` (labels
uniform in 0..40, channel c = ids 3c+1..3c+3, ids 4 and 11 missing), keeps the labels on the
device in their own width, and prints the best time of each kernel (CUDA events on a GPU) next
to a device-to-device copy of the same bytes in the same run, the ceiling. `--check` also
compares every result with the numpy reference (reference_mask.py beside this file).

`mask` computes the mask of a zarr label array on the device and saves it like
`reference_mask.py mask`, so a GPU result can be compared with annomask's output.

Labels are compared as the contract says, as unsigned 64-bit bit patterns after sign extension,
without widening them on the device: an id (or background) is turned into the value of the
label dtype that has that bit pattern, and dropped when the dtype has none (no voxel matches it).
uint16 and uint32 labels, which PyTorch handles poorly, are widened to int32 / int64 on the
host; uint64 labels are reinterpreted as int64 (same bits, same bytes).
"""
import argparse
import importlib.util
import pathlib
import sys
import time

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
U64 = 1 << 64


def numpy_reference():
    """reference_mask.py, the numpy reference beside this file (metadata rules, oracle)."""
    spec = importlib.util.spec_from_file_location("reference_mask", HERE / "reference_mask.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def to_device(labels, device):
    """(tensor on `device`, numpy dtype of the source) for a numpy label array."""
    import torch

    labels = np.ascontiguousarray(labels)
    dtype = labels.dtype
    if dtype.kind == "u" and dtype.itemsize == 2:
        host = labels.astype(np.int32)
    elif dtype.kind == "u" and dtype.itemsize == 4:
        host = labels.astype(np.int64)
    elif dtype.kind == "u" and dtype.itemsize == 8:
        host = labels.view(np.int64)
    elif dtype.kind in "ui":
        host = labels
    else:
        raise ValueError(f"unsupported label dtype {dtype}")
    return torch.from_numpy(host).to(device), dtype


def typed_value(id_, source_dtype):
    """The value, in the device tensor of labels of `source_dtype`, whose bit pattern as
    contract 1.1 reads it is `id_`; None if no label of that dtype has it."""
    id_ = int(id_) % U64
    bits = source_dtype.itemsize * 8
    if source_dtype.kind == "u":
        if bits == 64:
            return id_ - U64 if id_ >= 1 << 63 else id_  # held as int64, same bits
        return id_ if id_ < 1 << bits else None
    signed = id_ - U64 if id_ >= 1 << 63 else id_  # undo the sign extension
    return signed if -(1 << (bits - 1)) <= signed < 1 << (bits - 1) else None


def id_tensor(ids, labels, source_dtype):
    """The ids that some label of `source_dtype` can hold, as a tensor like `labels`."""
    import torch

    values = [v for v in (typed_value(i, source_dtype) for i in ids) if v is not None]
    return torch.tensor(sorted(set(values)), dtype=labels.dtype, device=labels.device)


def foreground(labels, source_dtype, background=0):
    import torch

    bg = typed_value(background, source_dtype)
    if bg is None:
        return torch.ones(labels.shape, dtype=torch.bool, device=labels.device)
    return labels != bg


def mask_torch(labels, source_dtype, groupings, missing, background=0, policy="whole-channel"):
    """uint8 (channels, *shape) on the labels' device: contract 2."""
    import torch

    if policy not in ("whole-channel", "per-voxel"):
        raise ValueError(f"unknown policy {policy!r}")
    fg = foreground(labels, source_dtype, background)
    out = torch.empty((len(groupings), *labels.shape), dtype=torch.uint8, device=labels.device)
    for c, (_, ids) in enumerate(groupings):
        off = [i for i in ids if int(i) in missing]
        if policy == "whole-channel":
            if off:
                out[c].zero_()
            else:
                out[c].copy_(fg)
        else:
            table = id_tensor(off, labels, source_dtype)
            if table.numel():
                out[c].copy_(fg & ~torch.isin(labels, table))
            else:
                out[c].copy_(fg)
    return out


def targets_torch(labels, source_dtype, groupings, background=0):
    """uint8 (channels, *shape): label in the channel's ids, or `!= background` for none."""
    import torch

    out = torch.empty((len(groupings), *labels.shape), dtype=torch.uint8, device=labels.device)
    for c, (_, ids) in enumerate(groupings):
        if ids:
            out[c].copy_(torch.isin(labels, id_tensor(ids, labels, source_dtype)))
        else:
            out[c].copy_(foreground(labels, source_dtype, background))
    return out


def best_time(fn, device, repeat):
    """Best of `repeat` runs, seconds (CUDA events on a GPU, wall clock on the CPU)."""
    import torch

    best = float("inf")
    for _ in range(max(1, repeat)):
        if device.startswith("cuda"):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            best = min(best, start.elapsed_time(end) / 1e3)
        else:
            t = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t)
    return best


def cmd_bench(args):
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    rng = np.random.default_rng(0)
    host = rng.integers(0, 40, size=(args.size,) * 3, dtype=np.uint64).astype(args.dtype)
    labels, source = to_device(host, device)
    groupings = [(f"c{c}", [3 * c + 1, 3 * c + 2, 3 * c + 3]) for c in range(args.channels)]
    missing = {4, 11}
    voxels = host.size
    moved = labels.numel() * labels.element_size() + voxels * args.channels
    src = torch.empty(moved // 2, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    kernels = {
        "whole-channel": lambda: mask_torch(labels, source, groupings, missing, 0, "whole-channel"),
        "per-voxel": lambda: mask_torch(labels, source, groupings, missing, 0, "per-voxel"),
        "targets": lambda: targets_torch(labels, source, groupings, 0),
    }
    for _ in range(3):  # warm-up: allocator, kernels, clocks
        dst.copy_(src)
        for run in kernels.values():
            run()
    copy = best_time(lambda: dst.copy_(src), device, args.repeat)
    name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    print(f"device {name}; {args.size}^3 {args.dtype} x {args.channels} ch; "
          f"bytes moved per mask {moved / 1e6:.1f} MB (labels read once + mask written once)")
    print(f"copy of the same bytes: {copy * 1e3:.3f} ms = {moved / copy / 1e9:.1f} GB/s (read+write)")
    for kernel, run in kernels.items():
        t = best_time(run, device, args.repeat)
        print(f"torch {kernel}: {t * 1e3:.3f} ms = {voxels / t / 1e9:.2f} Gvox/s, "
              f"{moved / t / 1e9:.1f} GB/s effective, {copy / t:.2f} of copy")
    if args.check:
        ref = numpy_reference()
        for policy in ("whole-channel", "per-voxel"):
            got = mask_torch(labels, source, groupings, missing, 0, policy).cpu().numpy()
            want = ref.reference_mask(host, groupings, missing, 0, policy)
            if not np.array_equal(got, want):
                sys.exit(f"check failed: torch {policy} differs from the numpy reference")
        got = targets_torch(labels, source, groupings, 0).cpu().numpy()
        if not np.array_equal(got, ref.reference_targets(host, groupings, 0)):
            sys.exit("check failed: torch targets differ from the numpy reference")
        print("check: torch whole-channel, per-voxel and targets equal the numpy reference")


def cmd_mask(args):
    import torch
    import zarr

    ref = numpy_reference()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    array = zarr.open_array(args.labels, mode="r")
    attrs = dict(array.attrs)
    if "labels" not in attrs and not args.allow_missing_metadata:
        sys.exit(f"error: {args.labels}: no `labels` attribute")
    try:
        states = ref.parse_metadata(attrs.get("labels", []), args.labels)
        groupings = ref.id_groupings(ref.load_groupings(args.groupings), args.groupings)
    except ref.ContractError as e:
        sys.exit(f"error: {e}")
    missing = {v for v, s in states.items() if ref.is_missing(*s, args.sparse == "missing")}
    labels, source = to_device(array[...], device)
    mask = mask_torch(labels, source, groupings, missing, args.background, args.policy)
    ref.save(args.out, mask.cpu().numpy(), f"mask ({device})")
    if args.targets_out:
        targets = targets_torch(labels, source, groupings, args.background)
        ref.save(args.targets_out, targets.cpu().numpy(), f"targets ({device})")


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("bench", "mask", "-h", "--help"):
        argv.insert(0, "bench")
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bench", help="time the torch kernels against a device copy")
    b.add_argument("--size", type=int, default=256)
    b.add_argument("--dtype", default="int64",
                   choices=["uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64"])
    b.add_argument("--channels", type=int, default=8)
    b.add_argument("--repeat", type=int, default=20)
    b.add_argument("--device", help="cuda, cuda:N or cpu [default: cuda if available]")
    b.add_argument("--check", action="store_true", help="compare with the numpy reference")
    m = sub.add_parser("mask", help="the mask of a zarr label array, computed with torch")
    m.add_argument("--labels", required=True)
    m.add_argument("--groupings", required=True)
    m.add_argument("--out", required=True)
    m.add_argument("--policy", choices=["whole-channel", "per-voxel"], default="whole-channel")
    m.add_argument("--sparse", choices=["missing", "annotated"], default="missing")
    m.add_argument("--background", type=int, default=0)
    m.add_argument("--allow-missing-metadata", action="store_true")
    m.add_argument("--targets-out")
    m.add_argument("--device", help="cuda, cuda:N or cpu [default: cuda if available]")
    args = p.parse_args(argv)
    {"bench": cmd_bench, "mask": cmd_mask}[args.cmd](args)


if __name__ == "__main__":
    main()
