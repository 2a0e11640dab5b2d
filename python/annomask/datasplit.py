"""The CellMap segmentation challenge's datasplit CSV, and deterministic validation tiles.

The challenge's ``make_datasplit_csv`` (cellmap-segmentation-challenge,
``utils/datasplit.py``) writes one row per crop, no header, every field double-quoted::

    "train","/data/jrc_cos7-1a/jrc_cos7-1a.zarr","recon-1/em/fibsem-uint8","/data/jrc_cos7-1a/jrc_cos7-1a.zarr","recon-1/labels/groundtruth/crop234/[nuc,mito]"

``usage`` (``train`` or ``validate``), the raw container and the raw array inside it, the
label container and the crop group inside it followed by ``/[class,class,...]``: the crop's
classes to train. cellmap-data's ``CellMapDataSplit`` joins columns 2+3 and 4+5 with ``/`` and
reads the classes from the bracket; it also takes a 3-column form ``usage,raw,gt`` with the
paths already joined. This module reads both::

    >>> import io
    >>> from annomask import datasplit
    >>> split = datasplit.read(io.StringIO(
    ...     '"train","s3://bucket/a.zarr","recon-1/em/fibsem-uint8",'
    ...     '"s3://bucket/a.zarr","recon-1/labels/groundtruth/crop7/[nuc,mito]"\\n'))
    >>> split.train[0].labels, split.train[0].classes
    ('s3://bucket/a.zarr/recon-1/labels/groundtruth/crop7', ['nuc', 'mito'])

and :func:`validation_tiles` cuts a crop into the fixed grid of ROIs to validate on.
"""

import csv
import io
import itertools
import numbers
import os
from typing import List, NamedTuple

from . import Roi

__all__ = [
    "CropEntry",
    "DataSplit",
    "USAGES",
    "class_groupings",
    "classes_union",
    "join",
    "read",
    "validation_tiles",
]

#: The usages a row may have, as the challenge writes them.
USAGES = ("train", "validate")

# A header line is not part of the format (neither the challenge nor cellmap-data writes or
# skips one); a first row with one of these first fields is read as a header and skipped.
_HEADER_FIRST_FIELDS = ("usage", "split")


class CropEntry(NamedTuple):
    """One crop of a datasplit: where its raw data and its labels are, and what to train.

    Attributes:
        raw: the raw array (or multiscale group) path or URL, e.g.
            ``/data/x/x.zarr/recon-1/em/fibsem-uint8``.
        labels: the crop group path or URL, e.g. ``/data/x/x.zarr/recon-1/labels/groundtruth/crop234``;
            open it with :func:`annomask.open`.
        classes: the class names of the row's bracket, in order, e.g. ``['nuc', 'mito']``.
    """

    raw: str
    labels: str
    classes: List[str]


class DataSplit(NamedTuple):
    """The crops of a datasplit CSV by usage, each a list of :class:`CropEntry` in file order."""

    train: List[CropEntry]
    validate: List[CropEntry]

    def crops(self, usage):
        """The crops of ``usage`` (``"train"`` or ``"validate"``).

        >>> DataSplit(train=[], validate=[]).crops("validate")
        []
        """
        if usage not in USAGES:
            raise ValueError(f"DataSplit.crops: usage must be one of {USAGES}, not {usage!r}")
        return getattr(self, usage)

    def classes(self):
        """Every class named by some crop, in order of first appearance (train, then validate)."""
        return classes_union(self)


def classes_union(split):
    """Every class of ``split`` (a :class:`DataSplit` or a list of :class:`CropEntry`), in order
    of first appearance: train crops first, then validate.

    >>> a = CropEntry("r", "l", ["nuc", "mito"])
    >>> b = CropEntry("r", "l", ["mito", "er"])
    >>> classes_union(DataSplit(train=[a], validate=[b]))
    ['nuc', 'mito', 'er']
    """
    entries = split.train + split.validate if isinstance(split, DataSplit) else split
    seen = {}
    for entry in entries:
        for name in entry.classes:
            seen.setdefault(name, None)
    return list(seen)


def class_groupings(classes):
    """One channel per class, named as the class: groupings for :func:`annomask.open`.

    Open every crop with the groupings of :func:`classes_union` to give all crops the same
    channels; a class a crop does not list is a channel that is 0 (never trained) there.

    >>> class_groupings(["nuc", "mito"])
    [('nuc', ['nuc']), ('mito', ['mito'])]
    """
    return [(name, [name]) for name in classes]


def _is_url(path):
    return "://" in path


def join(root, path):
    """``root`` and ``path`` joined with one ``/``, as cellmap-data's ``os.path.join`` does on
    POSIX, without normalising: a URL's ``scheme://`` stays intact.

    >>> join("s3://bucket/a.zarr/", "recon-1/em")
    's3://bucket/a.zarr/recon-1/em'
    >>> join("/data/a.zarr", "")
    '/data/a.zarr'
    """
    if not path:
        return root
    if not root:
        return path
    return root.rstrip("/") + "/" + path.lstrip("/")


def _split_classes(gt, where, field):
    """``(crop group, [classes])`` from the joined label path ``gt`` = ``.../cropN/[a,b]``;
    ``where`` names the field at fault and ``field`` is its text."""
    if "[" not in gt or "]" not in gt:
        raise ValueError(
            f"{where}: {field!r} has no [class,...] bracket: the label path must end in "
            "'<crop group>/[class,class,...]'"
        )
    prefix, _, rest = gt.partition("[")
    inside, _, suffix = rest.partition("]")
    if "[" in rest or "]" in suffix:
        raise ValueError(f"{where}: {field!r} has more than one [class,...] bracket")
    if suffix.strip("/"):
        raise ValueError(
            f"{where}: {field!r} continues after the bracket ({suffix!r}): annomask reads the "
            "classes of a crop group as its children '<crop group>/<class>'"
        )
    if not prefix.endswith("/"):
        raise ValueError(
            f"{where}: {field!r}: the bracket must be a whole path component, "
            "'<crop group>/[class,...]'"
        )
    crop = prefix.rstrip("/")
    if not crop or crop.endswith(":"):
        raise ValueError(f"{where}: {field!r} names no crop group before the bracket")
    classes = [c.strip() for c in inside.split(",")]
    if classes == [""]:
        raise ValueError(f"{where}: {field!r} has an empty class list []")
    if "" in classes:
        raise ValueError(f"{where}: {field!r} has an empty class name in [{inside}]")
    duplicates = sorted({c for c in classes if classes.count(c) > 1})
    if duplicates:
        raise ValueError(f"{where}: {field!r} names class(es) {duplicates} twice")
    return crop, classes


def _open_text(source):
    """``(text file, name, close?)`` from a path or an open text file."""
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        return open(name, newline="", encoding="utf-8"), name, True
    if isinstance(source, (io.RawIOBase, io.BufferedIOBase)):
        raise TypeError("datasplit.read: pass a path or a text file (open(path, newline='')), "
                        "not a binary file")
    if not hasattr(source, "read"):
        raise TypeError(f"datasplit.read: pass a path or a text file, not {source!r}")
    return source, getattr(source, "name", "<datasplit csv>"), False


def read(source):
    """Reads a datasplit CSV into a :class:`DataSplit`.

    ``source`` is a path or an open text file. Rows are ``usage,raw_root,raw_dataset,gt_root,gt_dataset``
    (the challenge's) or ``usage,raw,gt``; quoted or not (a field holding commas, such as a
    bracket with two classes, must be quoted); ``usage`` is ``train`` or ``validate``; the label
    path ends in ``<crop group>/[class,...]``. Blank lines and lines starting with ``#`` are
    skipped, as is a first row starting with ``usage`` or ``split`` (a header). Paths are joined
    as cellmap-data joins them (``root/dataset``), URLs (``s3://``, ``gs://``, ``https://``)
    kept intact; relative paths stay relative (to the working directory, as in cellmap-data).

    Raises ``ValueError`` naming the file, the line and the field at fault.

    >>> import io
    >>> text = "train,/d/a.zarr,recon-1/em/fibsem-uint8,/d/a.zarr,recon-1/labels/groundtruth/crop1/[nuc]\\n"
    >>> read(io.StringIO(text)).train
    [CropEntry(raw='/d/a.zarr/recon-1/em/fibsem-uint8', labels='/d/a.zarr/recon-1/labels/groundtruth/crop1', classes=['nuc'])]
    """
    f, name, close = _open_text(source)
    split = DataSplit(train=[], validate=[])
    try:
        reader = csv.reader(f, skipinitialspace=True)
        first = True
        for row in reader:
            line = reader.line_num
            fields = [v.strip() for v in row]
            if not fields or fields == [""] or fields[0].startswith("#"):
                continue
            if first and fields[0].lower() in _HEADER_FIRST_FIELDS:
                first = False
                continue
            first = False
            where = f"{name}, line {line}"
            split.crops(_usage(fields[0], where)).append(_entry(fields, row, where))
    except csv.Error as e:
        raise ValueError(f"{name}, line {reader.line_num}: not CSV: {e}") from None
    finally:
        if close:
            f.close()
    return split


def _usage(value, where):
    if value not in USAGES:
        hint = " (the challenge writes 'validate')" if value.lower() in ("val", "validation") else ""
        raise ValueError(
            f"{where}, field 1 (usage): {value!r} is not one of {', '.join(USAGES)}{hint}"
        )
    return value


def _entry(fields, row, where):
    if len(fields) == 5:
        _, raw_root, raw_ds, gt_root, gt_ds = fields
        gt_field = 5
        for i, value in ((2, raw_root), (3, raw_ds), (4, gt_root), (5, gt_ds)):
            if not value:
                raise ValueError(f"{where}, field {i}: empty")
        raw, gt = join(raw_root, raw_ds), join(gt_root, gt_ds)
    elif len(fields) == 3:
        _, raw, gt = fields
        gt_field = 3
        for i, value in ((2, raw), (3, gt)):
            if not value:
                raise ValueError(f"{where}, field {i}: empty")
    else:
        hint = ""
        if any("[" in v and "]" not in v for v in fields):
            hint = " (a [class,class] bracket holds commas: quote that field)"
        raise ValueError(
            f"{where}: {len(fields)} fields, expected 5 "
            f"(usage,raw_root,raw_dataset,gt_root,gt_dataset) or 3 (usage,raw,gt){hint}: {row}"
        )
    labels, classes = _split_classes(gt, f"{where}, field {gt_field} (labels)", fields[-1])
    return CropEntry(raw=raw, labels=labels, classes=classes)


def _per_axis(value, dims, what):
    """A tuple of ``dims`` positive ints from an int or a sequence; ``what`` names the argument."""
    values = [value] * dims if isinstance(value, numbers.Number) else list(value)
    if len(values) != dims:
        raise ValueError(f"validation_tiles: {what} {value!r} has {len(values)} axes, the crop {dims}")
    out = []
    for v in values:
        if isinstance(v, bool) or int(v) != v or v < 1:
            raise ValueError(f"validation_tiles: {what} {value!r}: every axis must be a whole number >= 1 of voxels")
        out.append(int(v))
    return tuple(out)


def _starts(size, roi, stride):
    """Tile starts (voxels) on one axis: a regular grid, the last shifted back to end at ``size``;
    one tile at 0 when the crop is smaller than the ROI."""
    if size <= roi:
        return [0]
    starts = list(range(0, size - roi + 1, stride))
    if starts[-1] != size - roi:
        starts.append(size - roi)
    return starts


def validation_tiles(mask, roi_shape, *, stride=None):
    """The fixed ROIs to validate a crop on, in world units: a regular grid covering the crop.

    Args:
        mask: an opened :class:`annomask.MissingAnnotationsMask` (anything with ``roi``,
            ``voxel_size`` and ``shape``).
        roi_shape: the tile shape in voxels, an int or one per spatial axis.
        stride: voxels between tile starts, an int or one per axis, each in ``1..roi_shape``
            (default ``roi_shape``: tiles touch, none overlap but the last).

    On each axis tiles start at the crop's offset and every ``stride`` voxels; the last tile is
    shifted back to end at the crop's end, so every voxel is covered and no tile leaves the
    crop. On an axis where the crop is smaller than the ROI there is one tile, at the crop's
    offset, extending past its end (pad there). Tiles are in C order (last axis fastest); the
    same arguments always give the same list of :class:`annomask.Roi`.

    >>> class Crop:  # stands in for an opened mask: 10 x 5 voxels of 4 nm from (100, 0)
    ...     roi, voxel_size, shape = Roi((100, 0), (40, 20)), (4.0, 4.0), (10, 5)
    >>> [t.offset for t in validation_tiles(Crop(), (4, 8))]
    [(100, 0), (116, 0), (124, 0)]
    """
    shape = tuple(int(s) for s in mask.shape)
    dims = len(shape)
    roi_shape = _per_axis(roi_shape, dims, "roi_shape")
    stride = roi_shape if stride is None else _per_axis(stride, dims, "stride")
    for s, r in zip(stride, roi_shape):
        if s > r:
            raise ValueError(
                f"validation_tiles: stride {stride} exceeds roi_shape {roi_shape}: "
                "tiles would leave voxels uncovered"
            )
    offset = tuple(float(o) for o in mask.roi.offset)
    voxel = tuple(float(v) for v in mask.voxel_size)
    tile = tuple(r * v for r, v in zip(roi_shape, voxel))
    axes = [_starts(n, r, s) for n, r, s in zip(shape, roi_shape, stride)]
    return [
        Roi(tuple(o + i * v for o, i, v in zip(offset, start, voxel)), tile)
        for start in itertools.product(*axes)
    ]
