"""The geometry types (``annomask.geometry``) and every ROI form the mask takes.

Runs with and without ``funlib.geometry`` installed: ``annomask.Coordinate``/``Roi`` are
funlib's classes with it, annomask's own without; annomask's own types are tested either way,
and compared with funlib's where funlib is installed.
"""

import pickle

import numpy as np
import pytest
import zarr

import annomask
from annomask import geometry
from annomask.geometry import AnnomaskCoordinate, AnnomaskRoi


@pytest.fixture(scope="module")
def mask(tmp_path_factory):
    """The 32^3 demo crop (8 nm voxels, offset 0) on the CPU engine."""
    path = annomask.write_demo_crop(tmp_path_factory.mktemp("demo"), 32)
    return annomask.open(path, annomask.demo_groupings(), engine="cpu")


@pytest.fixture(scope="module")
def whole(mask):
    return mask[mask.roi]


def test_flag_says_which_types_are_exported():
    try:
        import funlib.geometry as funlib
    except ImportError:
        assert geometry.FUNLIB is False
        assert annomask.Coordinate is AnnomaskCoordinate and annomask.Roi is AnnomaskRoi
    else:
        assert geometry.FUNLIB is True
        assert annomask.Coordinate is funlib.Coordinate and annomask.Roi is funlib.Roi


# --- the mask's geometry, funlib-style ---------------------------------------------------------


def test_voxel_size_and_roi_are_integral_coordinate_and_roi(mask):
    vs, roi = mask.voxel_size, mask.roi
    assert isinstance(vs, annomask.Coordinate) and isinstance(roi, annomask.Roi)
    assert vs == (8, 8, 8) and all(type(v) is int for v in vs)
    assert roi == annomask.Roi((0, 0, 0), (256, 256, 256))
    assert all(type(v) is int for v in (*roi.offset, *roi.shape))
    assert vs * 2 == (16, 16, 16) and vs.dims == 3  # elementwise, not a 6-tuple
    assert vs + vs == (16, 16, 16) and vs // 3 == (2, 2, 2)
    assert roi / vs == annomask.Roi((0, 0, 0), (32, 32, 32))
    assert roi // vs * vs == roi
    assert repr(roi) == "[0:256, 0:256, 0:256] (256, 256, 256)"  # funlib's form, both kinds


def test_funlib_arithmetic_indexes_the_mask(mask, whole):
    vs = mask.voxel_size
    sub = annomask.Roi((8, 16, 24), (64, 64, 64))
    in_voxels = (sub - mask.roi.offset) / vs
    assert in_voxels == annomask.Roi((1, 2, 3), (8, 8, 8))
    np.testing.assert_array_equal(mask[sub], whole[(slice(None), *in_voxels.to_slices())])
    # grow, then clip to the mask: the context of a ROI near the edge.
    grown = sub.grow(vs * 2, vs * 2).intersect(mask.roi)
    assert grown == annomask.Roi((0, 0, 8), (88, 96, 96))
    assert mask.roi.contains(grown) and grown.contains(sub) and grown.intersects(sub)
    np.testing.assert_array_equal(
        mask[grown], whole[(slice(None), *(grown / vs).to_slices())]
    )
    # snap a world ROI to the voxel grid before asking for it.
    rough = annomask.Roi((3, 3, 3), (10, 10, 10))
    assert rough.snap_to_grid(vs) == annomask.Roi((0, 0, 0), (16, 16, 16))
    assert rough.snap_to_grid(vs, mode="closest") == annomask.Roi((0, 0, 0), (16, 16, 16))
    assert rough.snap_to_grid(vs, mode="shrink").shape == (0, 0, 0)
    assert mask[rough.snap_to_grid(vs)].shape == (5, 2, 2, 2)
    assert mask.roi.union(annomask.Roi((256, 0, 0), (8, 8, 8))).shape == (264, 256, 256)
    assert sub.shift(vs) == sub + vs and sub.shift(vs) - vs == sub
    assert sub.get_begin() == sub.begin == sub.get_offset() == (8, 16, 24)
    assert sub.get_end() == (72, 80, 88) and sub.get_center() == (40, 48, 56)
    assert sub.get_shape() == (64, 64, 64) and sub.dims == 3
    assert not sub.empty and not sub.unbounded


def test_feeder_rois_are_the_crops_roi_type(mask):
    with annomask.Feeder(mask, (4, 4, 4), batch_size=2, batches=1) as feeder:
        batch = next(feeder)
    for roi, m in zip(batch.rois, batch.mask):
        assert type(roi) is type(mask.roi)
        assert roi.shape == mask.voxel_size * 4
        np.testing.assert_array_equal(mask[roi], m)


def test_non_integral_voxel_size_keeps_floats(tmp_path):
    labels = (np.arange(10 * 4 * 4) % 3).reshape(10, 4, 4).astype(np.uint8)
    path = str(tmp_path / "float.zarr")
    zarr.create_array(
        store=path,
        data=labels,
        zarr_format=2,
        attributes={"voxel_size": [3.24, 4, 4], "offset": [6.48, 0, 0]},
    )
    mask = annomask.open(path, [("one", [1])], engine="cpu", allow_missing_metadata=True)
    # annomask's own types even with funlib installed: funlib's Coordinate would make 3.24 a 3.
    assert type(mask.voxel_size) is AnnomaskCoordinate and type(mask.roi) is AnnomaskRoi
    assert mask.voxel_size == (3.24, 4, 4) and type(mask.voxel_size[0]) is float
    assert type(mask.voxel_size[1]) is int
    assert mask.roi.offset == (6.48, 0, 0)
    assert mask.roi.shape[0] == pytest.approx(32.4) and mask.roi.shape[1:] == (16, 16)
    in_voxels = (mask.roi - mask.roi.offset) / mask.voxel_size
    assert in_voxels.to_slices() == (slice(0, 10), slice(0, 4), slice(0, 4))
    whole = mask[mask.roi]
    np.testing.assert_array_equal(whole[0], labels != 0)
    sub = AnnomaskRoi(mask.roi.offset + mask.voxel_size * 2, mask.voxel_size * (3, 2, 2))
    np.testing.assert_array_equal(mask[sub], whole[:, 2:5, 2:4, 2:4])


# --- every ROI form ----------------------------------------------------------------------------


class HasOffsetAndShape:
    offset = (8, 16, 24)
    shape = (64, 64, 64)


@pytest.mark.parametrize(
    "form",
    [
        annomask.Roi((8, 16, 24), (64, 64, 64)),
        AnnomaskRoi((8, 16, 24), (64, 64, 64)),
        AnnomaskRoi((8.0, 16.0, 24.0), (64.0, 64.0, 64.0)),
        ((8, 16, 24), (64, 64, 64)),
        [[8, 16, 24], [64, 64, 64]],
        (np.array([8, 16, 24]), np.array([64.0, 64.0, 64.0])),
        (AnnomaskCoordinate(8, 16, 24), annomask.Coordinate(64, 64, 64)),
        HasOffsetAndShape(),
    ],
    ids=["Roi", "AnnomaskRoi", "float", "tuples", "lists", "numpy", "coordinates", "duck"],
)
def test_every_roi_form_gives_the_same_mask(mask, whole, form):
    expected = whole[:, 1:9, 2:10, 3:11]
    np.testing.assert_array_equal(mask[form], expected)
    m, t = mask.get_with_targets(form)
    np.testing.assert_array_equal(m, expected)


def test_funlib_roi_forms(mask, whole):
    funlib = pytest.importorskip("funlib.geometry")
    roi = funlib.Roi((8, 16, 24), (64, 64, 64))
    np.testing.assert_array_equal(mask[roi], whole[:, 1:9, 2:10, 3:11])
    assert mask.roi == funlib.Roi((0, 0, 0), (256, 256, 256))
    np.testing.assert_array_equal(mask[mask.roi.intersect(roi)], mask[roi])
    with pytest.raises(ValueError, match=r"roi \[:, :, :\] \(inf, inf, inf\) is unbounded"):
        mask[funlib.Roi((None,) * 3, (None,) * 3)]
    with pytest.raises(ValueError, match="is unbounded along axis 1"):
        mask[funlib.Roi((0, None, 0), (8, None, 8))]
    disjoint = roi.intersect(funlib.Roi((1000, 0, 0), (8, 8, 8)))
    with pytest.raises(ValueError, match="empty ROI.*has no offset along axis 0"):
        mask[disjoint]


@pytest.mark.parametrize(
    "roi, message",
    [
        (AnnomaskRoi((None, 0, 0), (None, 8, 8)), r"is unbounded along axis 0 \(None in its shape\)"),
        (((0, 0, 0), (8, None, 8)), "is unbounded along axis 1"),
        (((0, None, 0), (8, 8, 8)), "has no offset along axis 1"),
        (((0, 0), (8, 8)), r"requested ROI \[0:8, 0:8\] \(8, 8\) has 2 axes, the array has 3"),
        (((0, 0), (8, 8, 8)), r"roi \(\(0, 0\), \(8, 8, 8\)\): .*differ in number of axes"),
        (((0, "a", 0), (8, 8, 8)), "'a' is not a number"),
        (((0, float("inf"), 0), (8, 8, 8)), "must be finite"),
        (((0, 0, 4), (8, 8, 8)), "not voxel-aligned"),
        (((0, 0, 0), (8, 8, 512)), "not inside"),
    ],
    ids=["unbounded", "unbounded-pair", "no-offset", "dims", "offset-vs-shape", "nan", "inf",
         "unaligned", "outside"],
)
def test_bad_rois_raise_value_errors_naming_them(mask, roi, message):
    with pytest.raises(ValueError, match=message):
        mask[roi]
    with pytest.raises(ValueError, match=message):
        mask.get_with_targets(roi)


@pytest.mark.parametrize("roi", [3, (0, 8), ((0, 0, 0),), "roi", ("ab", "cd"), None])
def test_non_rois_raise_type_errors(mask, roi):
    with pytest.raises(TypeError, match="roi must be .* an \\(offset, shape\\) pair of sequences"):
        mask[roi]


def test_empty_roi_gives_an_empty_array(mask):
    assert mask[((0, 0, 0), (0, 8, 8))].shape == (5, 0, 1, 1)


# --- dtype -------------------------------------------------------------------------------------


def test_dtype_bool_is_a_view_of_the_uint8_values(mask, whole):
    roi = annomask.Roi((0, 0, 0), (64, 64, 64))
    assert mask[roi].dtype == np.uint8 and mask.get(roi).dtype == np.uint8
    b = mask.get(roi, dtype=bool)
    assert b.dtype == np.bool_ and b.shape == (5, 8, 8, 8)
    np.testing.assert_array_equal(b, whole[:, :8, :8, :8] != 0)
    m, t = mask.get_with_targets(roi, dtype=np.bool_)
    m8, t8 = mask.get_with_targets(roi)
    assert m.dtype == t.dtype == np.bool_
    np.testing.assert_array_equal(m, m8 != 0)
    np.testing.assert_array_equal(t, t8 != 0)
    assert set(np.unique(m8)) <= {0, 1} and set(np.unique(t8)) <= {0, 1}
    for dtype in (np.float32, "nonsense", np.int64):
        with pytest.raises(ValueError, match="dtype: must be numpy.uint8 or bool"):
            mask.get(roi, dtype=dtype)


# --- annomask's own types ----------------------------------------------------------------------


def test_own_coordinate_arithmetic():
    c = AnnomaskCoordinate(8, 8, 8)
    assert AnnomaskCoordinate((1, 2)) == AnnomaskCoordinate([1, 2]) == AnnomaskCoordinate(1, 2)
    assert AnnomaskCoordinate(np.array([1, 2])) == (1, 2)
    assert c * 2 == 2 * c == (16, 16, 16)
    assert c + 1 == 1 + c == (9, 9, 9) and 10 - c == (2, 2, 2)
    assert c / 2 == (4, 4, 4) and all(type(v) is int for v in c / 2)
    assert c / 3 == pytest.approx((8 / 3,) * 3)  # funlib's would truncate to 2
    assert c // 3 == (2, 2, 2) and c % 3 == (2, 2, 2) and c**2 == (64, 64, 64)
    assert c * (1, 2, 3) == (8, 16, 24) and (1, 2, 3) + c == (9, 10, 11)
    assert -AnnomaskCoordinate(1, -2) == (-1, 2) and abs(AnnomaskCoordinate(1, -2)) == (1, 2)
    assert AnnomaskCoordinate(2.5, 2.0) == (2.5, 2) and type(AnnomaskCoordinate(2.0)[0]) is int
    assert AnnomaskCoordinate(None, 4) * 2 == (None, 8)
    assert AnnomaskCoordinate(None, 4) + AnnomaskCoordinate(1, None) == (None, None)
    assert AnnomaskCoordinate(16, 24).is_multiple_of(c[:2])
    assert not AnnomaskCoordinate(16, 20).is_multiple_of((8, 8))
    assert AnnomaskCoordinate(4, 5, 12, -4).round_division(8) == (0, 1, 1, -1)
    assert AnnomaskCoordinate(6.5, 9.8).round_division(3.25) == (2, 3)
    assert AnnomaskCoordinate(9, 16).floor_division(8) == (1, 2)
    assert AnnomaskCoordinate(9, 16).ceil_division(8) == (2, 2)
    assert AnnomaskCoordinate(1, 2, 3).squeeze(1) == (1, 3) and c.dims == 3
    with pytest.raises(ValueError, match=r"Coordinate \+: \(8, 8, 8\) and \(1, 2\) differ"):
        c + (1, 2)
    with pytest.raises(TypeError):
        c + "ab"
    with pytest.raises(TypeError, match="'x' is not a number"):
        AnnomaskCoordinate(1, "x")


def test_own_roi_unbounded_and_empty():
    unbounded = AnnomaskRoi((0, 0), (None, 8))
    assert unbounded.offset == (None, 0) and unbounded.unbounded and unbounded.size is None
    assert unbounded.end == (None, 8) and repr(unbounded) == "[:, 0:8] (inf, 8)"
    box = AnnomaskRoi((4, 4), (8, 8))
    assert unbounded.intersect(box) == AnnomaskRoi((4, 4), (8, 4))
    assert unbounded.contains(AnnomaskRoi((-1000, 2), (5000, 4)))
    assert not unbounded.contains(box) and not unbounded.contains((0, 8))
    assert unbounded.union(box) == AnnomaskRoi((None, 0), (None, 12))
    assert unbounded.to_slices() == (slice(None), slice(0, 8))
    empty = box.intersect(AnnomaskRoi((100, 100), (1, 1)))
    assert empty.empty and empty.offset == (None, None) and repr(empty) == "[empty ROI]"
    assert empty.union(box) == box and not empty.intersects(box)
    assert box.size == 64 and box.center == (8, 8)
    assert hash(box) == hash(AnnomaskRoi((4.0, 4.0), (8.0, 8.0)))
    assert box.squeeze(0) == AnnomaskRoi((4,), (8,))
    for value in (unbounded, box, AnnomaskCoordinate(1, 2.5, None)):  # for worker processes
        again = pickle.loads(pickle.dumps(value))
        assert again == value and type(again) is type(value)
    with pytest.raises(ValueError, match="not a whole number"):
        AnnomaskRoi((0.5,), (2,)).to_slices()
    with pytest.raises(ValueError, match='unknown mode "nearest"'):
        box.snap_to_grid((2, 2), mode="nearest")
    with pytest.raises(ValueError, match="differ in number of axes"):
        box.intersect(AnnomaskRoi((0,), (1,)))
    with pytest.raises(TypeError, match="Roi \\*: takes a Coordinate"):
        box * "x"


OPERATIONS = [
    ("end", lambda r, c: r.end),
    ("center", lambda r, c: r.center),
    ("size", lambda r, c: r.size),
    ("empty", lambda r, c: r.empty),
    ("unbounded", lambda r, c: r.unbounded),
    ("to_slices", lambda r, c: r.to_slices()),
    ("shift", lambda r, c: r.shift(c)),
    ("+", lambda r, c: r + c),
    ("-", lambda r, c: r - c),
    ("*", lambda r, c: r * c),
    ("/", lambda r, c: r / c),
    ("//", lambda r, c: r // c),
    ("* int", lambda r, c: r * 2),
    ("grow", lambda r, c: r.grow(c, 3)),
    ("snap grow", lambda r, c: r.snap_to_grid(c)),
    ("snap shrink", lambda r, c: r.snap_to_grid(c, mode="shrink")),
    ("snap closest", lambda r, c: r.snap_to_grid(c, mode="closest")),
    ("contains point", lambda r, c: r.contains(c)),
]
PAIRS = [
    ("intersect", lambda a, b: a.intersect(b)),
    ("union", lambda a, b: a.union(b)),
    ("intersects", lambda a, b: a.intersects(b)),
    ("contains", lambda a, b: a.contains(b)),
]
CASES = [((0, 16, 24), (64, 40, 8)), ((-8, 5, 3), (7, 9, 13)), ((None, 0, 0), (None, 8, 8))]


def _plain(value, truncate=False):
    """A result of either library as plain Python, for comparison.

    ``truncate``: floats made ``int`` as funlib's Coordinate does (annomask's keep fractions).
    """
    if hasattr(value, "offset") and hasattr(value, "shape"):
        if truncate:
            value = AnnomaskRoi(_plain(value.offset, True), _plain(value.shape, True))
        return ("roi", tuple(value.offset), tuple(value.shape), repr(value))
    if isinstance(value, tuple):
        return tuple(int(v) if truncate and isinstance(v, float) else v for v in value)
    return value


def test_own_types_match_funlib():
    funlib = pytest.importorskip("funlib.geometry")
    voxel = (2, 4, 8)
    for offset, shape in CASES:
        own, theirs = AnnomaskRoi(offset, shape), funlib.Roi(offset, shape)
        for name, op in OPERATIONS:
            if name == "center" and any(s % 2 for s in shape if s is not None):
                continue  # funlib's halves the shape in ints: annomask's center is exact
            try:
                want = _plain(op(theirs, funlib.Coordinate(voxel)))
            except (TypeError, AssertionError):
                continue  # funlib cannot do it (None arithmetic): nothing to match
            got = _plain(op(own, AnnomaskCoordinate(voxel)), truncate=name == "/")
            assert got == want, (name, offset, shape)
        for offset2, shape2 in CASES:
            for name, op in PAIRS:
                want = _plain(op(theirs, funlib.Roi(offset2, shape2)))
                got = _plain(op(own, AnnomaskRoi(offset2, shape2)))
                assert got == want, (name, offset, shape, offset2, shape2)
        assert own == theirs and theirs == own
    c = (9, -7, 12)
    for name in ("round_division", "floor_division", "ceil_division", "is_multiple_of"):
        want = getattr(funlib.Coordinate(c), name)(funlib.Coordinate(voxel))
        assert getattr(AnnomaskCoordinate(c), name)(AnnomaskCoordinate(voxel)) == want, name
