"""What a training script needs: pickling, fork safety, raw data, padding, augmentations,
NaN targets, shards and resumption, class weighting, the chunk cache setting."""

import copy
import multiprocessing
import os
import pickle

import numpy as np
import pytest

import annomask


@pytest.fixture(scope="module")
def group(tmp_path_factory):
    """The demo crop group, its groupings, and a class's multiscale group as raw data."""
    d = tmp_path_factory.mktemp("group")
    path = annomask.write_demo_crop_group(d, 24)
    return path, annomask.demo_class_groupings(), os.path.join(path, "mito")


@pytest.fixture(scope="module")
def crop(tmp_path_factory):
    return annomask.write_demo_crop(tmp_path_factory.mktemp("crop"), 32)


def test_masks_pickle_and_deepcopy_as_their_arguments(crop):
    mask = annomask.open(crop, annomask.demo_groupings(), engine="cpu", policy="per-voxel")
    for other in (pickle.loads(pickle.dumps(mask)), copy.deepcopy(mask)):
        assert other is not mask
        assert other.channels == mask.channels and other.shape == mask.shape
        assert other._args["policy"] == "per-voxel"
        np.testing.assert_array_equal(other[other.roi], mask[mask.roi])
    # What crosses the wire: the arguments, not the data.
    assert len(pickle.dumps(mask)) < 2000


def test_groupings_files_pickle_as_their_path(crop, tmp_path):
    g = tmp_path / "g.json"
    g.write_text('[["mito", [3, 4, 5]], ["er", [16, 17]]]')
    mask = annomask.open(crop, g, engine="cpu")
    back = pickle.loads(pickle.dumps(mask))
    assert back.channels == ["mito", "er"]


def test_raw_arrays_pickle_and_read_padded(group):
    path, groupings, raw_path = group
    mask = annomask.open(path, groupings, engine="cpu")
    raw = annomask.open_raw(raw_path, mask.voxel_size)
    assert raw.name.endswith("s0")
    back = pickle.loads(pickle.dumps(raw))
    roi = annomask.Roi(tuple(o - 16 for o in mask.roi.offset), (64, 64, 64))
    a = raw[roi]
    np.testing.assert_array_equal(a, back[roi])
    assert a.shape == (8, 8, 8)
    assert (a[:2] == 0).all() and (a[:, :2] == 0).all(), "zero before the array"
    with pytest.raises(ValueError, match="no raw level"):
        annomask.open_raw(raw_path, (3, 3, 3))


def _child_reads(mask, roi, queue):
    queue.put(mask[roi].sum())


def test_masks_opened_in_the_parent_work_in_forked_children_any_engine(crop):
    engines = ["cpu", "gpu"]
    for engine in engines:
        try:
            mask = annomask.open(crop, annomask.demo_groupings(), engine=engine)
        except RuntimeError:
            if os.environ.get("REQUIRE_GPU") == "1":
                raise
            continue  # no adapter here
        want = int(mask[mask.roi].sum())  # the parent computes first
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        p = ctx.Process(target=_child_reads, args=(mask, mask.roi, queue))
        p.start()
        got = queue.get(timeout=120)
        p.join(timeout=60)
        assert p.exitcode == 0 and got == want, engine


def _child_next(feeder, queue):
    queue.put([b.index for b in feeder])


def test_a_feeder_continues_in_a_forked_child_and_after_pickling(crop):
    masks = annomask.open(crop, annomask.demo_groupings(), engine="cpu")
    feeder = annomask.Feeder(masks, (8, 8, 8), batches=6, seed=3)
    first = next(feeder)
    assert first.index == 0
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    p = ctx.Process(target=_child_next, args=(feeder, queue))
    p.start()
    assert queue.get(timeout=120) == [1, 2, 3, 4, 5]
    p.join(timeout=60)
    again = pickle.loads(pickle.dumps(feeder))
    b = next(again)
    assert b.index == 1
    np.testing.assert_array_equal(b.mask, next(feeder).mask)


def test_feeder_raw_context_padding_and_augmentation(group):
    path, groupings, raw_path = group
    mask = annomask.open(path, groupings, engine="cpu")
    feeder = annomask.Feeder(
        mask, (30, 6, 6), raw=raw_path, context=(0, 2, 2), mirror=True, transpose=("y", "x"),
        batch_size=3, batches=4, seed=1,
    )
    raw = feeder.raw[0]
    for batch in feeder:
        assert batch.raw.shape == (3, 30, 10, 10)
        assert batch.mask.shape == (3, len(mask.channels), 30, 6, 6)
        for i, roi in enumerate(batch.rois):
            flips, order = batch.augmentations[i]
            assert order[0] == 0, "z is not permuted"
            want = raw[annomask.Roi(
                (roi.offset[0], roi.offset[1] - 16, roi.offset[2] - 16), (240, 80, 80))]
            for axis, f in enumerate(flips):
                if f:
                    want = np.flip(want, axis)
            np.testing.assert_array_equal(batch.raw[i], np.transpose(want, order))
            # The crop (24 voxels along z) sits inside the 30-voxel ROI: 6 padded planes.
            assert roi.offset[0] <= 0 and roi.offset[0] + 240 >= 192
            assert batch.mask[i].sum() <= len(mask.channels) * 24 * 36


def test_nan_targets_and_float_targets(crop):
    mask = annomask.open(crop, annomask.demo_groupings(), engine="cpu")
    plain = next(annomask.Feeder(mask, (8, 8, 8), batches=1, seed=5))
    nan = next(annomask.Feeder(mask, (8, 8, 8), batches=1, seed=5, targets="nan"))
    f32 = next(annomask.Feeder(mask, (8, 8, 8), batches=1, seed=5, targets="float32"))
    assert nan.targets.dtype == np.float32 and f32.targets.dtype == np.float32
    np.testing.assert_array_equal(f32.targets, plain.targets)
    assert np.isnan(nan.targets).sum() == (plain.mask == 0).sum() > 0
    keep = plain.mask == 1
    np.testing.assert_array_equal(nan.targets[keep], plain.targets[keep])


def test_shards_reassemble_the_sequence_and_class_weighting_runs(crop, tmp_path):
    other = annomask.write_demo_crop(tmp_path, 24)
    masks = [annomask.open(p, annomask.demo_groupings(), engine="cpu") for p in (crop, other)]
    whole = [b.index for b in annomask.Feeder(masks, (8, 8, 8), batches=5, weighting="class")]
    parts = [[b.rois for b in annomask.Feeder(masks, (8, 8, 8), batches=5, shard=(i, 2),
                                              weighting="class", chunk_cache=0)]
             for i in range(2)]
    one = [b.rois for b in annomask.Feeder(masks, (8, 8, 8), batches=5, weighting="class")]
    assert whole == [0, 1, 2, 3, 4]
    assert [parts[b % 2][b // 2] for b in range(5)] == one
    with pytest.raises(ValueError, match="weighting"):
        annomask.Feeder(masks, (8, 8, 8), weighting="rare")
    with pytest.raises(ValueError, match="mirror"):
        annomask.Feeder(masks, (8, 8, 8), mirror=("q",))
