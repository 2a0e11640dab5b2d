"""Tests of ``annomask.datasplit``: the CellMap challenge's datasplit CSV and validation tiles.

The format is the one ``make_datasplit_csv`` (cellmap-segmentation-challenge,
``utils/datasplit.py``) writes and cellmap-data's ``CellMapDataSplit`` reads: no header, every
field quoted, ``"usage","raw_root","raw_dataset","gt_root","gt_dataset/[class,...]"``. Parsed
paths are checked against cellmap-data's own rule (``os.path.join`` of columns 2+3 and 4+5, the
classes between ``[`` and ``]``), restated here with the standard library.
"""

import csv
import io
import itertools
import os
import pathlib
import pickle

import numpy as np
import pytest

import annomask
from annomask import datasplit
from annomask.datasplit import CropEntry, DataSplit

FIXTURE = pathlib.Path(__file__).resolve().parent / "fixtures" / "datasplit.csv"

ROW = '"{u}","/d/a.zarr","recon-1/em/fibsem-uint8","/d/a.zarr","recon-1/labels/groundtruth/crop{n}/[{c}]"\n'


def read_text(text, name="split.csv"):
    f = io.StringIO(text)
    f.name = name
    return datasplit.read(f)


# --- the CSV -------------------------------------------------------------------------------


def test_fixture_in_the_challenge_format():
    split = datasplit.read(FIXTURE)
    assert split.train == [
        CropEntry(
            raw="/data/jrc_cos7-1a/jrc_cos7-1a.zarr/recon-1/em/fibsem-uint8",
            labels="/data/jrc_cos7-1a/jrc_cos7-1a.zarr/recon-1/labels/groundtruth/crop234",
            classes=["nuc", "mito"],
        ),
        CropEntry(
            raw="/data/jrc_hela-2/jrc_hela-2.zarr/recon-1/em/fibsem-uint8",
            labels="/data/jrc_hela-2/jrc_hela-2.zarr/recon-1/labels/groundtruth/crop155",
            classes=["mito"],
        ),
        CropEntry(
            raw="s3://janelia-cosem-datasets/jrc_mus-liver/jrc_mus-liver.zarr/recon-1/em/fibsem-uint8",
            labels="s3://janelia-cosem-datasets/jrc_mus-liver/jrc_mus-liver.zarr/recon-1/labels/groundtruth/crop26",
            classes=["nuc", "er"],
        ),
    ]
    assert split.validate == [
        CropEntry(
            raw="/data/jrc_cos7-1a/jrc_cos7-1a.zarr/recon-1/em/fibsem-uint8",
            labels="/data/jrc_cos7-1a/jrc_cos7-1a.zarr/recon-1/labels/groundtruth/crop235",
            classes=["nuc", "mito", "er"],
        )
    ]
    assert split.crops("validate") is split.validate
    assert datasplit.classes_union(split) == ["nuc", "mito", "er"]
    assert split.classes() == ["nuc", "mito", "er"]


def test_agrees_with_cellmap_data_on_the_fixture():
    """cellmap-data: raw = os.path.join(c2, c3); gt = os.path.join(c4, c5), whose ``[a,b]`` is
    the class list and whose prefix + class is each class array."""
    with open(FIXTURE, newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    split = datasplit.read(str(FIXTURE))
    entries = {"train": iter(split.train), "validate": iter(split.validate)}
    for usage, raw_root, raw_ds, gt_root, gt_ds in rows:
        entry = next(entries[usage])
        assert entry.raw == os.path.join(raw_root, raw_ds)
        gt = os.path.join(gt_root, gt_ds)
        prefix, rest = gt.split("[")
        classes, suffix = rest.split("]")
        assert entry.classes == classes.split(",")
        assert [f"{entry.labels}/{c}" for c in entry.classes] == [
            f"{prefix}{c}{suffix}" for c in classes.split(",")
        ]


def test_sources_path_pathlike_and_text_file():
    expected = datasplit.read(str(FIXTURE))
    assert datasplit.read(FIXTURE) == expected
    with open(FIXTURE, newline="") as f:
        assert datasplit.read(f) == expected
    with open(FIXTURE, "rb") as f, pytest.raises(TypeError, match="binary"):
        datasplit.read(f)


def test_unquoted_header_comments_and_three_columns():
    text = (
        "usage,raw_root,raw_dataset,gt_root,gt_dataset\n"
        "# a comment\n"
        "\n"
        "train,/d/a.zarr,recon-1/em/fibsem-uint8,/d/a.zarr,recon-1/labels/groundtruth/crop1/[nuc]\n"
        'validate, "/d/b.zarr/raw", "/d/b.zarr/labels/crop2/[mito, er]"\n'
    )
    split = read_text(text)
    assert split.train == [
        CropEntry("/d/a.zarr/recon-1/em/fibsem-uint8", "/d/a.zarr/recon-1/labels/groundtruth/crop1", ["nuc"])
    ]
    assert split.validate == [CropEntry("/d/b.zarr/raw", "/d/b.zarr/labels/crop2", ["mito", "er"])]


def test_a_later_header_like_row_is_an_error():
    with pytest.raises(ValueError, match=r"line 2, field 1 \(usage\): 'usage'"):
        read_text(ROW.format(u="train", n=1, c="nuc") + "usage,raw,gt\n")


@pytest.mark.parametrize(
    "root, path, joined",
    [
        ("s3://bucket/a.zarr", "recon-1/em", "s3://bucket/a.zarr/recon-1/em"),
        ("s3://bucket/a.zarr/", "/recon-1/em", "s3://bucket/a.zarr/recon-1/em"),
        ("gs://bucket/a.zarr", "recon-1/em", "gs://bucket/a.zarr/recon-1/em"),
        ("https://host:8000/x/a.zarr", "recon-1/em", "https://host:8000/x/a.zarr/recon-1/em"),
        ("/d/a.zarr", "recon-1/em", "/d/a.zarr/recon-1/em"),
        ("rel/a.zarr", "", "rel/a.zarr"),
    ],
)
def test_join_keeps_urls(root, path, joined):
    assert datasplit.join(root, path) == joined


def test_urls_survive_reading():
    text = (
        '"train","gs://b/a.zarr/","recon-1/em/fibsem-uint8","https://h.org/data/a.zarr","recon-1/labels/groundtruth/crop3/[nuc]"\n'
    )
    (entry,) = read_text(text).train
    assert entry.raw == "gs://b/a.zarr/recon-1/em/fibsem-uint8"
    assert entry.labels == "https://h.org/data/a.zarr/recon-1/labels/groundtruth/crop3"


@pytest.mark.parametrize(
    "line, message",
    [
        ('"train","/d/a.zarr","raw","/d/a.zarr"\n', r"line 3: 4 fields, expected 5"),
        (
            "train,/d/a.zarr,raw,/d/a.zarr,labels/crop1/[nuc,mito]\n",
            r"line 3: 6 fields, expected 5 .*quote that field",
        ),
        (ROW.format(u="val", n=1, c="nuc"), r"line 3, field 1 \(usage\): 'val' is not one of train, validate \(the challenge writes 'validate'\)"),
        (ROW.format(u="test", n=1, c="nuc"), r"line 3, field 1 \(usage\): 'test'"),
        ('"train","/d/a.zarr","raw","/d/a.zarr","labels/crop1/nuc"\n', r"line 3, field 5 \(labels\): 'labels/crop1/nuc' has no \[class"),
        (ROW.format(u="train", n=1, c=""), r"line 3, field 5 \(labels\): .* empty class list"),
        (ROW.format(u="train", n=1, c="nuc,,mito"), r"line 3, field 5 \(labels\): .* empty class name"),
        (ROW.format(u="train", n=1, c="nuc,nuc"), r"line 3, field 5 \(labels\): .* twice"),
        ('"train","/d/a.zarr","raw","/d/a.zarr","labels/crop1/[nuc]/s0"\n', r"line 3, field 5 \(labels\): .* continues after the bracket"),
        ('"train","/d/a.zarr","raw","/d/a.zarr","labels/crop1_[nuc]"\n', r"line 3, field 5 \(labels\): .* whole path component"),
        ('"train","/d/a.zarr","","/d/a.zarr","labels/crop1/[nuc]"\n', r"line 3, field 3: empty"),
        ('"validate","/d/raw","/d/crop1/[nuc"\n', r"line 3, field 3 \(labels\): .* no \[class"),
    ],
)
def test_errors_name_file_line_and_field(tmp_path, line, message):
    path = tmp_path / "bad.csv"
    path.write_text(ROW.format(u="train", n=1, c="nuc") + "# comment\n" + line)
    with pytest.raises(ValueError, match=message) as e:
        datasplit.read(path)
    assert str(e.value).startswith(f"{path}, line 3")


def test_error_names_a_stream_without_a_name():
    with pytest.raises(ValueError, match=r"^<datasplit csv>, line 1, field 1"):
        datasplit.read(io.StringIO(ROW.format(u="Train", n=1, c="nuc")))


def test_entries_pickle_and_groupings():
    split = datasplit.read(FIXTURE)
    assert pickle.loads(pickle.dumps(split)) == split
    assert datasplit.class_groupings(split.classes()) == [
        ("nuc", ["nuc"]),
        ("mito", ["mito"]),
        ("er", ["er"]),
    ]
    with pytest.raises(ValueError, match="usage must be one of"):
        split.crops("val")


# --- validation tiles ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_mask(tmp_path_factory):
    path = annomask.write_demo_crop_group(tmp_path_factory.mktemp("split"), 24)
    return annomask.open(path, annomask.demo_class_groupings(), engine="cpu")


def voxel_box(mask, tile):
    """A tile's voxel begin and end relative to the crop."""
    begin = [round((t - o) / v) for t, o, v in zip(tile.offset, mask.roi.offset, mask.voxel_size)]
    end = [b + round(s / v) for b, s, v in zip(begin, tile.shape, mask.voxel_size)]
    return begin, end


def test_tiles_grid_last_shifted_back(demo_mask):
    assert demo_mask.shape == (24, 24, 24) and demo_mask.voxel_size == (8.0, 8.0, 8.0)
    tiles = datasplit.validation_tiles(demo_mask, (10, 10, 10))
    starts = [0, 80, 112]  # voxels 0, 10 and 14 (shifted back from 20 to end at 24)
    assert tiles == [
        annomask.Roi((z, y, x), (80, 80, 80)) for z, y, x in itertools.product(starts, starts, starts)
    ]


def test_tiles_cover_in_bounds_deterministic(demo_mask):
    for roi_shape, stride in [((10, 7, 24), None), ((8, 8, 8), None), ((10, 10, 10), (3, 10, 4))]:
        tiles = datasplit.validation_tiles(demo_mask, roi_shape, stride=stride)
        assert tiles == datasplit.validation_tiles(demo_mask, roi_shape, stride=stride)
        covered = np.zeros(demo_mask.shape, dtype=np.int32)
        for tile in tiles:
            begin, end = voxel_box(demo_mask, tile)
            assert all(0 <= b and e <= n for b, e, n in zip(begin, end, demo_mask.shape)), tile
            assert tuple(e - b for b, e in zip(begin, end)) == roi_shape
            covered[tuple(slice(b, e) for b, e in zip(begin, end))] += 1
            m = demo_mask[tile]  # in bounds and voxel-aligned: the mask reads it
            assert m.shape == (demo_mask.num_channels, *roi_shape)
        assert covered.min() >= 1
        # (funlib's Roi, which daisy installs, is not hashable: compare offsets and shapes)
        assert len({(tuple(t.offset), tuple(t.shape)) for t in tiles}) == len(tiles)
    # stride = roi_shape on an axis that divides: no overlap at all
    tiles = datasplit.validation_tiles(demo_mask, 8)
    assert len(tiles) == 27


def test_tiles_small_crop_axis_one_tile_past_the_end(demo_mask):
    tiles = datasplit.validation_tiles(demo_mask, (32, 12, 24))
    assert tiles == [annomask.Roi((0, y, 0), (256, 96, 192)) for y in (0, 96)]
    assert tiles[0].end[0] > demo_mask.roi.end[0]  # the feeder pads past the crop


class OffsetCrop:
    """Stands in for an opened mask: an anisotropic crop away from the origin."""

    roi = annomask.Roi((1000, -64, 36), (8 * 10, 4 * 9, 4 * 3))
    voxel_size = (8.0, 4.0, 4.0)
    shape = (10, 9, 3)


def test_tiles_offset_and_anisotropic():
    tiles = datasplit.validation_tiles(OffsetCrop(), (4, 4, 4), stride=(4, 2, 4))
    z = [1000 + 8 * s for s in (0, 4, 6)]
    y = [-64 + 4 * s for s in (0, 2, 4, 5)]
    assert tiles == [annomask.Roi((a, b, 36), (32, 16, 16)) for a, b in itertools.product(z, y)]


@pytest.mark.parametrize(
    "roi_shape, stride, message",
    [
        ((8, 8), None, r"roi_shape \(8, 8\) has 2 axes, the crop 3"),
        ((8, 0, 8), None, "whole number >= 1"),
        ((8, 8, 8.5), None, "whole number >= 1"),
        ((8, 8, 8), (4, 9, 4), r"stride \(4, 9, 4\) exceeds roi_shape"),
    ],
)
def test_tiles_bad_arguments(roi_shape, stride, message):
    with pytest.raises(ValueError, match=message):
        datasplit.validation_tiles(OffsetCrop(), roi_shape, stride=stride)


def test_from_csv_to_validation_masks(tmp_path):
    """The path a training script takes: CSV -> crops -> masks -> tiles."""
    crop = annomask.write_demo_crop_group(tmp_path, 24)
    root, group = os.path.split(crop)
    csv_path = tmp_path / "datasplit.csv"
    csv_path.write_text(
        f'"train","{root}/raw.zarr","recon-1/em/fibsem-uint8","{root}","{group}/[mito,er_mem]"\n'
        f'"validate","{root}/raw.zarr","recon-1/em/fibsem-uint8","{root}","{group}/[mito_lum,nuc]"\n'
    )
    split = datasplit.read(csv_path)
    assert split.validate[0].labels == crop
    groupings = datasplit.class_groupings(split.classes())
    masks = [annomask.open(e.labels, groupings, engine="cpu") for e in split.validate]
    assert masks[0].channels == ["mito", "er_mem", "mito_lum", "nuc"]
    tiles = datasplit.validation_tiles(masks[0], 16)
    assert len(tiles) == 8
    whole = masks[0][masks[0].roi]
    for tile in tiles:
        (z, y, x), _ = voxel_box(masks[0], tile)
        np.testing.assert_array_equal(masks[0][tile], whole[:, z : z + 16, y : y + 16, x : x + 16])
    assert not whole[3].any()  # nuc: not in the crop, never trained
