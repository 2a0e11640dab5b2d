"""Tests of the Python binding (``annomask``), against an independent numpy oracle.

The labels and class arrays are read back with zarr-python, and the expected masks computed in
numpy: SPEC 2 (docs/contract.md) by the repository's numpy reference
``reference/reference_mask.py``; SPEC 1.4 (crop groups) by ``crop_oracle`` below. GPU cases run
with ``engine="gpu"`` where an adapter is found (lavapipe with ``WGPU_BACKEND=vulkan``); they
skip otherwise, and fail under ``REQUIRE_GPU=1``.
"""

import importlib.util
import json
import os
import pathlib
import threading

import numpy as np
import pytest
import zarr

import annomask

REPO = pathlib.Path(__file__).resolve().parents[2]
REFERENCE = REPO / "reference" / "reference_mask.py"

LABEL_GROUPINGS = [
    ("mito", [3, 4, 5]),  # 5 (mito_ribo) is missing: zeroed under whole-channel
    ("er", [16, 17]),  # 17 (er_lum) is sparse: missing under sparse="missing"
    ("nucleus", [20, 21]),
    ("ecs", [1]),
    ("all", []),  # any foreground
    ("unlisted", [3, 999]),  # 999 is in no metadata entry: not missing
]
CLASS_GROUPINGS = [
    ("mito", ["mito_mem", "mito_lum"]),
    ("er", ["er_mem", "er_lum"]),  # er_lum is not in the crop: zeroed
    ("mito_instances", ["mito"]),
    ("er_mem", ["er_mem"]),  # no unknown code: known everywhere
    ("mixed", ["mito_lum", "mito"]),  # uint8 semantic with uint64 instance
]


def _load_reference():
    """``missing_ids`` and ``reference_mask`` of the numpy reference (SPEC 1.2, 2)."""
    spec = importlib.util.spec_from_file_location("reference_mask", REFERENCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.missing_ids, module.reference_mask


missing_ids, reference_mask = _load_reference()


def reference_targets(labels, groupings, background=0):
    """DaCapo's BinarizeArray: ``isin(labels, ids)``, ``labels != background`` without ids."""
    return np.stack(
        [np.isin(labels, ids) if ids else labels != background for _, ids in groupings]
    ).astype(np.uint8)


def crop_oracle(path, groupings, scale="s0"):
    """SPEC 1.4 in numpy, from the crop group's own attributes read with zarr-python."""
    crop = zarr.open_group(path, mode="r")
    listed = crop.attrs["cellmap"]["annotation"]["class_names"]
    masks, targets = [], []
    shape = None
    for _, classes in groupings:
        m, t = None, None
        if all(k in listed for k in classes):
            for k in classes:
                kind = crop[k].attrs["cellmap"]["annotation"]["annotation_type"]
                codes = kind["encoding"]
                values = crop[k][scale][...].astype(np.uint64)
                shape = values.shape
                known = values != np.uint64(codes["unknown"]) if "unknown" in codes else True
                if kind["type"] == "semantic_segmentation":
                    positive = values == np.uint64(codes["present"]) if "present" in codes else False
                else:
                    positive = ~np.isin(values, np.array(list(codes.values()), dtype=np.uint64))
                m = known if m is None else m & known
                t = positive if t is None else t | positive
        masks.append(m)
        targets.append(t)
    shape = shape or crop[listed[0]][scale].shape

    def stack(arrays):
        return np.stack(
            [np.broadcast_to(np.asarray(a if a is not None else False), shape) for a in arrays]
        ).astype(np.uint8)

    return stack(masks), stack(targets)


def region(labels_shape, roi, voxel_size):
    """numpy slices of ``roi`` (world units, offset 0 array)."""
    return tuple(
        slice(int(o // v), int((o + s) // v)) for o, s, v in zip(roi.offset, roi.shape, voxel_size)
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Demo label arrays, zarr v2 and v3, 24^3, and their labels and metadata read by zarr."""
    out = {}
    for fmt in (2, 3):
        path = annomask.write_demo_crop(tmp_path_factory.mktemp(f"v{fmt}"), size=24, zarr_format=fmt)
        array = zarr.open_array(path, mode="r")
        out[fmt] = (path, array[...], dict(array.attrs))
    return out


@pytest.fixture(scope="module")
def crop_groups(tmp_path_factory):
    return {
        fmt: annomask.write_demo_crop_group(tmp_path_factory.mktemp(f"crop{fmt}"), size=16, zarr_format=fmt)
        for fmt in (2, 3)
    }


def open_gpu_or_skip(path, groupings, **kwargs):
    """``annomask.open(..., engine="gpu")``; skips without an adapter unless REQUIRE_GPU=1."""
    try:
        return annomask.open(path, groupings, engine="gpu", **kwargs)
    except RuntimeError as e:
        if os.environ.get("REQUIRE_GPU") == "1":
            pytest.fail(f"REQUIRE_GPU=1 but the gpu engine is unavailable: {e}")
        print(f"skipping the GPU case: {e}")
        pytest.skip(f"no GPU adapter: {e}")


# --- array API ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [2, 3])
def test_array_api_on_label_arrays(demo, fmt):
    path, labels, attrs = demo[fmt]
    mask = annomask.open(path, LABEL_GROUPINGS, engine="cpu")
    assert mask.name == "labels_missing_annotations_mask"
    assert mask.axes == ["c", "z", "y", "x"]
    assert mask.dims == 3
    assert mask.voxel_size == (8.0, 8.0, 8.0)
    assert mask.roi == annomask.Roi((0, 0, 0), (192, 192, 192))
    assert mask.roi.begin == (0.0, 0.0, 0.0) and mask.roi.end == (192.0, 192.0, 192.0)
    assert mask.shape == labels.shape == (24, 24, 24)
    assert mask.writable is False
    assert mask.dtype == np.uint8
    assert mask.num_channels == len(LABEL_GROUPINGS)
    assert mask.channels == [name for name, _ in LABEL_GROUPINGS]
    assert mask.attrs == attrs
    assert mask.attrs["labels"] == attrs["labels"]
    assert "missing [5]" in mask.plan and "missing [17]" in mask.plan
    assert mask.engine.startswith("cpu")
    with pytest.raises(ValueError, match="no stored data"):
        mask.data
    m = mask[mask.roi]
    assert isinstance(m, np.ndarray)
    assert m.dtype == np.uint8 and m.shape == (len(LABEL_GROUPINGS), 24, 24, 24)
    assert m.flags.c_contiguous and m.flags.writeable


@pytest.mark.parametrize("fmt", [2, 3])
@pytest.mark.parametrize("policy", ["whole-channel", "per-voxel"])
@pytest.mark.parametrize("sparse", ["missing", "annotated"])
@pytest.mark.parametrize("background", [0, 3])
def test_getitem_equals_reference(demo, fmt, policy, sparse, background):
    path, labels, attrs = demo[fmt]
    mask = annomask.open(
        path, LABEL_GROUPINGS, policy=policy, sparse=sparse, background=background, engine="cpu"
    )
    missing = missing_ids(attrs["labels"], sparse == "missing")
    expected = reference_mask(labels, LABEL_GROUPINGS, missing, background, policy)
    np.testing.assert_array_equal(mask[mask.roi], expected)
    # A sub-ROI, as annomask.Roi, (offset, shape) and a funlib-like object.
    roi = annomask.Roi((16, 40, 8), (64, 32, 120))
    sl = region(labels.shape, roi, mask.voxel_size)

    class FunlibRoi:
        offset = (16, 40, 8)
        shape = (64, 32, 120)

    for r in (roi, ((16, 40, 8), (64, 32, 120)), FunlibRoi()):
        np.testing.assert_array_equal(mask[r], expected[(slice(None), *sl)])


@pytest.mark.parametrize("fmt", [2, 3])
@pytest.mark.parametrize("background", [0, 20])
def test_targets_are_isin_ids(demo, fmt, background):
    path, labels, attrs = demo[fmt]
    mask = annomask.open(path, LABEL_GROUPINGS, background=background, engine="cpu")
    roi = annomask.Roi((8, 0, 64), (120, 192, 64))
    m, t = mask.get_with_targets(roi)
    sl = (slice(None), *region(labels.shape, roi, mask.voxel_size))
    np.testing.assert_array_equal(t, reference_targets(labels, LABEL_GROUPINGS, background)[sl])
    np.testing.assert_array_equal(m, mask[roi])
    assert t[[n for n, _ in LABEL_GROUPINGS].index("all")].any()


def test_groupings_forms(demo, tmp_path):
    path, labels, attrs = demo[3]
    expected = annomask.open(path, LABEL_GROUPINGS, engine="cpu")[((0, 0, 0), (64, 64, 64))]
    as_json = tmp_path / "g.json"
    as_json.write_text(json.dumps(LABEL_GROUPINGS))
    as_toml = tmp_path / "g.toml"
    as_toml.write_text("groupings = " + json.dumps([list(p) for p in LABEL_GROUPINGS]) + "\n")
    numpy_ids = [(n, np.array(ids, dtype=np.uint64)) for n, ids in LABEL_GROUPINGS]
    for g in (as_json, str(as_toml), dict(LABEL_GROUPINGS), numpy_ids):
        got = annomask.open(path, g, engine="cpu")[((0, 0, 0), (64, 64, 64))]
        np.testing.assert_array_equal(got, expected)


def test_allow_missing_metadata(tmp_path):
    labels = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6) % 7 - 1  # -1 is id 2**64-1
    path = str(tmp_path / "nometa.zarr")
    zarr.create_array(store=path, data=labels, zarr_format=2)
    with pytest.raises(ValueError, match="no `labels` attribute.*allow_missing_metadata"):
        annomask.open(path, [("a", [1])], engine="cpu")
    mask = annomask.open(path, [("a", [1]), ("fg", [])], engine="cpu", allow_missing_metadata=True)
    assert mask.voxel_size == (1.0, 1.0, 1.0) and mask.axes == ["c", "z", "y", "x"]
    m, t = mask.get_with_targets(mask.roi)
    np.testing.assert_array_equal(m, np.stack([labels != 0] * 2).astype(np.uint8))
    np.testing.assert_array_equal(t, np.stack([labels == 1, labels != 0]).astype(np.uint8))
    # a 2**64-1 id matches a -1 voxel (bit pattern)
    mask = annomask.open(path, [("neg", [2**64 - 1])], engine="cpu", allow_missing_metadata=True)
    np.testing.assert_array_equal(mask.get_with_targets(mask.roi)[1][0], labels == -1)


# --- CellMap crop groups -----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [2, 3])
def test_crop_group_api_and_oracle(crop_groups, fmt):
    path = crop_groups[fmt]
    mask = annomask.open(path, CLASS_GROUPINGS, engine="cpu")
    assert mask.name == "crop1_missing_annotations_mask"
    assert mask.channels == [n for n, _ in CLASS_GROUPINGS]
    assert mask.axes == ["c", "z", "y", "x"]
    assert mask.roi == annomask.Roi((0, 0, 0), (128, 128, 128))
    assert "cellmap" in mask.attrs
    assert "zeroed: not in the crop: er_lum" in mask.plan
    expected_mask, expected_targets = crop_oracle(path, CLASS_GROUPINGS)
    m, t = mask.get_with_targets(mask.roi)
    np.testing.assert_array_equal(m, expected_mask)
    np.testing.assert_array_equal(t, expected_targets)
    np.testing.assert_array_equal(mask[mask.roi], expected_mask)
    assert m[0].any() and not m[0].all()  # the unknown slab is masked, the rest is not
    assert not m[1].any() and not t[1].any()  # er: zeroed
    # A sub-ROI and another scale.
    roi = annomask.Roi((0, 32, 64), (64, 96, 32))
    sl = (slice(None), *region(None, roi, mask.voxel_size))
    np.testing.assert_array_equal(mask[roi], expected_mask[sl])
    s1 = annomask.open(path, CLASS_GROUPINGS, engine="cpu", scale="s1")
    assert s1.voxel_size == (16.0, 16.0, 16.0) and s1.shape == (8, 8, 8)
    m1, t1 = s1.get_with_targets(s1.roi)
    e1 = crop_oracle(path, CLASS_GROUPINGS, scale="s1")
    np.testing.assert_array_equal(m1, e1[0])
    np.testing.assert_array_equal(t1, e1[1])


# --- engines -----------------------------------------------------------------------------------


def test_gpu_equals_cpu(demo, crop_groups):
    path, labels, attrs = demo[3]
    for policy in ("whole-channel", "per-voxel"):
        cpu = annomask.open(path, LABEL_GROUPINGS, policy=policy, engine="cpu")
        gpu = open_gpu_or_skip(path, LABEL_GROUPINGS, policy=policy)
        assert gpu.engine.startswith("gpu")
        for roi in (cpu.roi, annomask.Roi((8, 16, 24), (40, 64, 88))):
            np.testing.assert_array_equal(gpu[roi], cpu[roi])
            for g, c in zip(gpu.get_with_targets(roi), cpu.get_with_targets(roi)):
                np.testing.assert_array_equal(g, c)
    cpu = annomask.open(crop_groups[2], CLASS_GROUPINGS, engine="cpu")
    gpu = open_gpu_or_skip(crop_groups[2], CLASS_GROUPINGS, verify=True)
    for g, c in zip(gpu.get_with_targets(gpu.roi), cpu.get_with_targets(cpu.roi)):
        np.testing.assert_array_equal(g, c)


def test_engine_auto_says_what_it_chose(demo):
    mask = annomask.open(demo[2][0], LABEL_GROUPINGS)
    assert mask.engine.startswith(("cpu", "gpu")) and "auto" in mask.engine


def test_concurrent_calls_from_threads(demo):
    """Masks are shared by threads (the GIL is released while computing): same results."""
    path, labels, attrs = demo[3]
    mask = annomask.open(path, LABEL_GROUPINGS, engine="cpu")
    expected = mask[mask.roi]
    results = [None] * 4

    def work(i):
        results[i] = mask[mask.roi]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        np.testing.assert_array_equal(r, expected)


# --- feeder ------------------------------------------------------------------------------------


def batches_of(feeder):
    return [
        (b.index, b.targets, b.mask, b.crops, b.rois) for b in feeder
    ]


def test_feeder_shapes_and_contents(demo):
    masks = [annomask.open(demo[fmt][0], LABEL_GROUPINGS, engine="cpu") for fmt in (2, 3)]
    feeder = annomask.Feeder(masks, (8, 16, 4), seed=3, batch_size=3, batches=5, with_labels=True)
    batches = list(feeder)
    assert [b.index for b in batches] == [0, 1, 2, 3, 4]
    for b in batches:
        assert isinstance(b, annomask.Batch)
        assert b.mask.shape == b.targets.shape == (3, len(LABEL_GROUPINGS), 8, 16, 4)
        assert b.mask.dtype == b.targets.dtype == np.uint8
        assert len(b.crops) == len(b.rois) == len(b.labels) == 3
        for i, (crop, roi) in enumerate(zip(b.crops, b.rois)):
            assert roi.shape == (64.0, 128.0, 32.0)
            m, t = masks[crop].get_with_targets(roi)
            np.testing.assert_array_equal(b.mask[i], m)
            np.testing.assert_array_equal(b.targets[i], t)
            labels = demo[(2, 3)[crop]][1]
            np.testing.assert_array_equal(b.labels[i], labels[region(labels.shape, roi, (8, 8, 8))])
            assert b.labels[i].dtype == np.uint64
    assert {c for b in batches for c in b.crops} == {0, 1}


def test_feeder_is_deterministic(demo):
    paths = [demo[2][0], demo[3][0]]

    def run(seed, weighting="uniform"):
        feeder = annomask.Feeder(
            paths, (8, 8, 8), groupings=LABEL_GROUPINGS, engine="cpu", seed=seed,
            batch_size=2, batches=4, weighting=weighting, prefetch=2,
        )
        return batches_of(feeder)

    a, b, c = run(11), run(11), run(12)
    assert len(a) == 4
    for x, y in zip(a, b):
        assert x[0] == y[0] and x[3] == y[3] and x[4] == y[4]
        np.testing.assert_array_equal(x[1], y[1])
        np.testing.assert_array_equal(x[2], y[2])
    assert [x[4] for x in a] != [x[4] for x in c]
    assert len(run(5, "size")) == 4


def test_feeder_on_crop_groups(crop_groups):
    feeder = annomask.Feeder(
        crop_groups[3], (4, 8, 8), groupings=CLASS_GROUPINGS, engine="cpu", batch_size=2,
        batches=2, with_labels=True, seed=9,
    )
    mask = feeder.crops[0]
    for b in feeder:
        assert b.mask.shape == (2, len(CLASS_GROUPINGS), 4, 8, 8)
        for i, roi in enumerate(b.rois):
            m, t = mask.get_with_targets(roi)
            np.testing.assert_array_equal(b.mask[i], m)
            np.testing.assert_array_equal(b.targets[i], t)
            assert set(b.labels[i]) == {"mito_mem", "mito_lum", "mito", "er_mem"}
            assert b.labels[i]["mito"].dtype == np.uint64
            assert b.labels[i]["mito_mem"].shape == (4, 8, 8)


def test_feeder_endless_and_close(demo):
    with annomask.Feeder(demo[3][0], (4, 4, 4), groupings=LABEL_GROUPINGS, engine="cpu") as feeder:
        first = [next(feeder) for _ in range(10)]
    assert [b.index for b in first] == list(range(10))
    with pytest.raises(StopIteration):
        next(feeder)


# --- errors ------------------------------------------------------------------------------------


def test_storage_errors(tmp_path):
    missing = str(tmp_path / "nope.zarr" / "labels")
    with pytest.raises(FileNotFoundError, match="nope.zarr/labels: no such file"):
        annomask.open(missing, LABEL_GROUPINGS, engine="cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(OSError, match="empty: not a zarr array"):
        annomask.open(str(tmp_path / "empty"), LABEL_GROUPINGS, engine="cpu")
    floats = str(tmp_path / "floats.zarr")
    zarr.create_array(store=floats, data=np.zeros((4, 4, 4), np.float32), attributes={"labels": []})
    with pytest.raises(ValueError, match="floats.zarr: unsupported label dtype float32"):
        annomask.open(floats, LABEL_GROUPINGS, engine="cpu")


def test_metadata_errors_name_the_entry_and_field(demo, tmp_path):
    labels = np.zeros((4, 4, 4), np.uint8)
    bad = [{"value": 3, "annotationState": {"present": "yes", "annotated": True}}]
    path = str(tmp_path / "bad.zarr")
    zarr.create_array(store=path, data=labels, zarr_format=2, attributes={"labels": bad})
    with pytest.raises(ValueError, match=r"bad.zarr: labels\[0\]\.annotationState\.present"):
        annomask.open(path, LABEL_GROUPINGS, engine="cpu")


def test_groupings_errors(demo, crop_groups, tmp_path):
    path = demo[3][0]
    with pytest.raises(ValueError, match='channel name "a" is used by channels 0 and 1'):
        annomask.open(path, [("a", [1]), ("a", [2])], engine="cpu")
    with pytest.raises(ValueError, match='channel "a" member 1 is -1, not a label id'):
        annomask.open(path, [("a", [1, -1])], engine="cpu")
    with pytest.raises(ValueError, match='channel "a" member 0 is 1.5'):
        annomask.open(path, [("a", [1.5])], engine="cpu")
    with pytest.raises(ValueError, match="groupings must be a list of"):
        annomask.open(path, [("a", [object()])], engine="cpu")
    with pytest.raises(ValueError, match="a label array needs groupings by label id"):
        annomask.open(path, CLASS_GROUPINGS, engine="cpu")
    with pytest.raises(ValueError, match="a CellMap crop group needs groupings by class name"):
        annomask.open(crop_groups[2], LABEL_GROUPINGS, engine="cpu")
    with pytest.raises(OSError, match="nothing.json: cannot read groupings"):
        annomask.open(path, str(tmp_path / "nothing.json"), engine="cpu")
    broken = tmp_path / "broken.json"
    broken.write_text("[[")
    with pytest.raises(ValueError, match="broken.json: groupings are not valid"):
        annomask.open(path, broken, engine="cpu")


def test_roi_errors(demo):
    mask = annomask.open(demo[3][0], LABEL_GROUPINGS, engine="cpu")
    with pytest.raises(ValueError, match=r"requested ROI .* is not inside .*array ROI"):
        mask[((0, 0, 0), (8, 8, 200))]
    with pytest.raises(ValueError, match="not voxel-aligned"):
        mask[((4, 0, 0), (8, 8, 8))]
    with pytest.raises(ValueError, match="requested ROI"):
        mask[((0, 0), (8, 8))]
    with pytest.raises(TypeError, match="roi must be"):
        mask[3]
    with pytest.raises(ValueError, match="differ in number of axes"):
        mask[((0, 0), (8, 8, 8))]
    with pytest.raises(ValueError, match="differ in number of axes"):
        annomask.geometry.AnnomaskRoi((0, 0), (1, 1, 1))


def test_option_errors(demo, crop_groups):
    path = demo[3][0]
    with pytest.raises(ValueError, match='policy: unknown policy "everything"'):
        annomask.open(path, LABEL_GROUPINGS, policy="everything")
    with pytest.raises(ValueError, match='sparse: unknown sparse policy "maybe"'):
        annomask.open(path, LABEL_GROUPINGS, sparse="maybe")
    with pytest.raises(ValueError, match='engine: unknown engine "tpu"'):
        annomask.open(path, LABEL_GROUPINGS, engine="tpu")
    with pytest.raises(ValueError, match="background: must be an integer"):
        annomask.open(path, LABEL_GROUPINGS, background=-1)
    with pytest.raises(ValueError, match='class "mito_mem" has no scale "s7"'):
        annomask.open(crop_groups[2], CLASS_GROUPINGS, engine="cpu", scale="s7")
    with pytest.raises(ValueError, match="zarr_format: must be 2 or 3"):
        annomask.write_demo_crop("/tmp", zarr_format=4)


def test_feeder_errors(demo, crop_groups):
    mask = annomask.open(demo[3][0], LABEL_GROUPINGS, engine="cpu")
    with pytest.raises(ValueError, match=r"roi_shape: \[8, 8\] must be 3"):
        annomask.Feeder(mask, (8, 8))
    with pytest.raises(ValueError, match=r"feeder: <feeder>: ROI shape \[0, 8, 8\]"):
        annomask.Feeder(mask, (0, 8, 8))
    other = annomask.open(demo[2][0], LABEL_GROUPINGS[:2], engine="cpu")
    with pytest.raises(ValueError, match="channels .* differ from"):
        annomask.Feeder([mask, other], (8, 8, 8))
    with pytest.raises(ValueError, match="is a path: pass groupings="):
        annomask.Feeder([demo[3][0]], (8, 8, 8))
    with pytest.raises(ValueError, match='weighting: unknown weighting "often"'):
        annomask.Feeder(mask, (8, 8, 8), weighting="often")
    with pytest.raises(ValueError, match="batch_size: must be at least 1"):
        annomask.Feeder(mask, (8, 8, 8), batch_size=0)
    with pytest.raises(ValueError, match="no crops given"):
        annomask.Feeder([], (8, 8, 8))


def test_demo_groupings_helpers():
    assert annomask.demo_groupings()[0] == ("mito", [3, 4, 5])
    assert annomask.demo_class_groupings()[0] == ("mito", ["mito_mem", "mito_lum"])
