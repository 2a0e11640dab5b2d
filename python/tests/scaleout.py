"""Helpers of the scale-out tests (test_dask.py, test_daisy.py): the annomask CLI to compare
with, inputs, and output trees byte for byte."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import annomask

ROOT = Path(__file__).resolve().parents[2]


def require(module):
    """Imports ``module``, or skips with a note; fails instead where ``REQUIRE_DASK=1``."""
    try:
        return __import__(module)
    except ImportError as e:
        if os.environ.get("REQUIRE_DASK") == "1":
            pytest.fail(f"REQUIRE_DASK=1 but {module} is not installed: {e}", pytrace=False)
        pytest.skip(
            f"{module} is not installed (pip install 'dask[array]' distributed daisy); "
            "REQUIRE_DASK=1 fails instead",
            allow_module_level=True,
        )


def cli():
    """The annomask CLI: on PATH, $ANNOMASK_BIN, or the newest target/{debug,release} build
    (also $CARGO_TARGET_DIR's); skips (fails with REQUIRE_DASK=1) without one."""
    found = shutil.which("annomask") or os.environ.get("ANNOMASK_BIN")
    if not found:
        dirs = [ROOT / "target"]
        if os.environ.get("CARGO_TARGET_DIR"):
            dirs.insert(0, Path(os.environ["CARGO_TARGET_DIR"]))
        built = [d / p / "annomask" for d in dirs for p in ("debug", "release")]
        built = [p for p in built if p.is_file() and os.access(p, os.X_OK)]
        if built:
            found = str(max(built, key=lambda p: p.stat().st_mtime))
    if not found:
        why = "no annomask CLI to compare with (cargo build --bin annomask, or $ANNOMASK_BIN)"
        if os.environ.get("REQUIRE_DASK") == "1":
            pytest.fail(f"REQUIRE_DASK=1 but {why}", pytrace=False)
        pytest.skip(why)
    return found


def run_cli(source, groupings_file, out, *args):
    """``annomask compute`` with ``args``; fails the test with its output on an error."""
    cmd = [cli(), "compute", str(source), "--groupings", str(groupings_file), "--out", str(out),
           "--quiet", *args]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, f"{cmd}: {done.stderr}"


def tree(root):
    """``{relative path: bytes}`` of every file under ``root``."""
    root = Path(root)
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def assert_same_tree(got, want):
    a, b = tree(got), tree(want)
    assert sorted(a) == sorted(b), (
        f"files differ: only in {got}: {sorted(set(a) - set(b))[:5]}, "
        f"only in {want}: {sorted(set(b) - set(a))[:5]}"
    )
    different = [k for k in a if a[k] != b[k]]
    assert not different, f"{len(different)} files differ, e.g. {different[:3]}: " + (
        f"{a[different[0]][:300]!r} vs {b[different[0]][:300]!r}"
    )


def inputs(tmp):
    """``{case: (source, groupings, groupings file)}``: a demo label array (zarr v3), one in zarr
    v2, and the demo CellMap crop group."""
    tmp = Path(tmp)
    g = [list(p) for p in annomask.demo_groupings()]
    gc = [list(p) for p in annomask.demo_class_groupings()]
    (tmp / "g.json").write_text(json.dumps(g))
    (tmp / "gc.json").write_text(json.dumps(gc))
    v3 = annomask.write_demo_crop(tmp / "v3", size=48)
    v2 = annomask.write_demo_crop(tmp / "v2", size=40, zarr_format=2)
    crop = annomask.write_demo_crop_group(tmp / "cg", size=24)
    return {
        "labels-v3": (v3, g, tmp / "g.json"),
        "labels-v2": (v2, g, tmp / "g.json"),
        "crop-group": (crop, gc, tmp / "gc.json"),
    }


# (case, python keyword arguments, CLI arguments): label arrays and crop groups, with a ROI and
# both policies, other chunkings and formats.
CASES = [
    ("labels-v3", dict(chunks=[16, 16, 16]), ["--chunks", "16,16,16"]),
    ("labels-v3", dict(chunks=[20, 16, 24], policy="per-voxel",
                       roi=((64, 0, 32), (256, 384, 320))),
     ["--chunks", "20,16,24", "--policy", "per-voxel", "--roi", "64,0,32:320,384,352"]),
    ("labels-v2", dict(chunks=[2, 16, 16, 16], zarr_format=3, compression="zstd"),
     ["--chunks", "2,16,16,16", "--zarr-format", "3", "--compression", "zstd"]),
    ("labels-v2", dict(chunks=[8, 16, 16], sparse="annotated", roi=((0, 8, 8), (160, 160, 160))),
     ["--chunks", "8,16,16", "--sparse", "annotated", "--roi", "0,8,8:160,168,168"]),
    ("crop-group", dict(chunks=[8, 8, 8]), ["--chunks", "8,8,8"]),
    ("crop-group", dict(chunks=[8, 8, 8], scale="s1"), ["--chunks", "8,8,8", "--scale", "s1"]),
]


def case_id(case):
    return f"{case[0]}:{'+'.join(sorted(case[1]))}"


def expected_trained(source, groupings, kwargs):
    """Per channel, the 1 voxels of the whole mask (an oracle independent of the pipeline)."""
    open_args = {k: v for k, v in kwargs.items() if k in ("policy", "sparse", "scale")}
    mask = annomask.open(source, groupings, engine="cpu", **open_args)
    roi = kwargs.get("roi", mask.roi)
    return [int(c.sum()) for c in mask[roi]]
