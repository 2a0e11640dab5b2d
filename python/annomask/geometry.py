"""World-coordinate types: ``Coordinate`` and ``Roi``, funlib.geometry's where it is installed.

``funlib.geometry`` is optional (``pip install annomask[funlib]``). Where it is importable,
``annomask.geometry.Coordinate`` and ``annomask.geometry.Roi`` *are* ``funlib.geometry``'s
classes, and ``FUNLIB`` is ``True``; else they are annomask's own classes of the same names and
methods (those DaCapo and gunpowder code use), and ``FUNLIB`` is ``False``::

    >>> from annomask.geometry import AnnomaskCoordinate as Coordinate, AnnomaskRoi as Roi
    >>> voxel_size = Coordinate(8, 8, 8)
    >>> voxel_size * 2
    (16, 16, 16)
    >>> roi = Roi((0, 16, 32), (64, 64, 64))
    >>> roi / voxel_size
    [0:8, 2:10, 4:12] (8, 8, 8)
    >>> roi.grow(8, 8).intersect(Roi((0, 0, 0), (64, 64, 64)))
    [0:64, 8:64, 24:64] (64, 56, 40)

funlib's ``Coordinate`` holds integers only (it truncates ``3.24`` to ``3``). Annomask's own
types (``AnnomaskCoordinate``, ``AnnomaskRoi``, always available) keep integral values as
``int`` and non-integral ones as ``float``; :func:`world` gives a mask's voxel size and ROI as
funlib's types when funlib is installed and every value is integral, else as annomask's own.

Differences of annomask's own types from funlib 0.3: non-integral values stay ``float`` (so
``Coordinate(8, 8) / 3`` is ``(2.67, 2.67)``, not ``(2, 2)``); a number on the left is
elementwise too (``2 * c``; funlib's repeats the tuple); operands of different dimensions and
unknown operand types raise ``ValueError`` / ``TypeError`` instead of ``AssertionError``; a
``Roi`` is immutable (no ``offset``/``shape`` setters) and hashable.
"""

import math
import numbers
from collections.abc import Iterable

__all__ = [
    "FUNLIB",
    "AnnomaskCoordinate",
    "AnnomaskRoi",
    "Coordinate",
    "Roi",
    "integral",
    "world",
]


def _value(x):
    """One entry: ``None``, an ``int`` where integral, else a ``float``."""
    if x is None:
        return None
    if isinstance(x, numbers.Integral):
        return int(x)  # bool and numpy integers too
    try:
        f = float(x)
    except (TypeError, ValueError):
        raise TypeError(f"Coordinate: {x!r} is not a number (nor None)") from None
    return int(f) if f.is_integer() else f


def integral(*coordinates):
    """Whether every (not ``None``) value of the given sequences is a whole number.

    >>> integral((8.0, 8, 8), (0, 0, 0)), integral((3.24, 4, 4))
    (True, False)
    """
    for c in coordinates:
        for x in c:
            if x is not None and not float(x).is_integer():
                return False
    return True


class AnnomaskCoordinate(tuple):
    """A tuple of numbers (or ``None``: unbounded) with elementwise arithmetic, as funlib's.

    ``+ - * / // % **`` take a Coordinate (or any sequence of the same length) or a number,
    on either side; ``None`` entries stay ``None``. Integral results are ``int``, others
    ``float``.

    >>> c = AnnomaskCoordinate(3.24, 4, 4)
    >>> c * 2, c // 2, -c, c.dims
    ((6.48, 8, 8), (1, 2, 2), (-3.24, -4, -4), 3)
    >>> AnnomaskCoordinate(8, None) + 1
    (9, None)
    """

    def __new__(cls, *array_like):
        if len(array_like) == 1 and isinstance(array_like[0], Iterable):
            array_like = array_like[0]
        return super().__new__(cls, [_value(x) for x in array_like])

    @property
    def dims(self):
        """Number of entries."""
        return len(self)

    def squeeze(self, dim=0):
        """This coordinate without axis ``dim``."""
        return AnnomaskCoordinate(c for i, c in enumerate(self) if i != dim)

    def is_multiple_of(self, coordinate):
        """Whether every entry is a multiple of ``coordinate``'s.

        >>> AnnomaskCoordinate(16, 24).is_multiple_of((8, 8))
        True
        """
        return all(a % b == 0 for a, b in zip(self, coordinate))

    def round_division(self, other):
        """``self / other`` rounded to the nearest integer, halves down (funlib's rule).

        >>> AnnomaskCoordinate(4, 5, 12).round_division(8)
        (0, 1, 1)
        """
        return self._zip(other, _round_div, "round_division")

    def floor_division(self, other):
        """``self // other``."""
        return self // other

    def ceil_division(self, other):
        """``self / other`` rounded up.

        >>> AnnomaskCoordinate(1, 8, 9).ceil_division(8)
        (1, 1, 2)
        """
        return self._zip(other, lambda a, b: -((-a) // b), "ceil_division")

    def _zip(self, other, op, name):
        """``op`` elementwise with a sequence or a number; ``None`` wherever either is."""
        if isinstance(other, numbers.Number):
            values = [None if a is None else op(a, other) for a in self]
        elif isinstance(other, Iterable) and not isinstance(other, (str, bytes)):
            other = tuple(other)
            if len(other) != len(self):
                raise ValueError(
                    f"Coordinate {name}: {tuple(self)} and {other} differ in number of axes"
                )
            values = [
                None if a is None or b is None else op(a, b) for a, b in zip(self, other)
            ]
        else:
            return NotImplemented
        return AnnomaskCoordinate(values)

    def _rzip(self, other, op, name):
        return self._zip(other, lambda a, b: op(b, a), name)

    def __add__(self, other):
        return self._zip(other, lambda a, b: a + b, "+")

    def __radd__(self, other):
        return self._rzip(other, lambda a, b: a + b, "+")

    def __sub__(self, other):
        return self._zip(other, lambda a, b: a - b, "-")

    def __rsub__(self, other):
        return self._rzip(other, lambda a, b: a - b, "-")

    def __mul__(self, other):
        return self._zip(other, lambda a, b: a * b, "*")

    def __rmul__(self, other):
        return self._rzip(other, lambda a, b: a * b, "*")

    def __truediv__(self, other):
        return self._zip(other, lambda a, b: a / b, "/")

    def __rtruediv__(self, other):
        return self._rzip(other, lambda a, b: a / b, "/")

    def __floordiv__(self, other):
        return self._zip(other, lambda a, b: a // b, "//")

    def __rfloordiv__(self, other):
        return self._rzip(other, lambda a, b: a // b, "//")

    def __mod__(self, other):
        return self._zip(other, lambda a, b: a % b, "%")

    def __pow__(self, other):
        return self._zip(other, lambda a, b: a**b, "**")

    def __neg__(self):
        return AnnomaskCoordinate(None if a is None else -a for a in self)

    def __abs__(self):
        return AnnomaskCoordinate(None if a is None else abs(a) for a in self)


def _round_div(a, b):
    if isinstance(a, int) and isinstance(b, int):
        return (a + (b - 1) // 2) // b  # funlib's formula, exact
    return math.ceil(a / b - 0.5)


def _left_max(x, y):  # None is -inf
    return y if x is None else x if y is None else max(x, y)


def _left_min(x, y):
    return None if x is None or y is None else min(x, y)


def _right_min(x, y):  # None is +inf
    return y if x is None else x if y is None else min(x, y)


def _right_max(x, y):
    return None if x is None or y is None else max(x, y)


def _index(v, what):
    """A slice bound: an integral value as ``int``, within 1e-6 of one; else ``ValueError``."""
    r = round(v)
    if abs(v - r) > 1e-6 * max(1.0, abs(v)):
        raise ValueError(
            f"Roi.to_slices: {what} {v} is not a whole number (divide the ROI by the voxel "
            "size first)"
        )
    return int(r)


class AnnomaskRoi:
    """A box ``offset`` (begin corner) + ``shape``, in world units or voxels, as funlib's Roi.

    ``None`` entries in ``shape`` mean unbounded along that axis (their offset is ``None``
    too); an empty ROI (e.g. a disjoint intersection) has offset ``None`` and shape 0.
    ``roi + c`` / ``roi - c`` shift it, ``roi * c`` / ``roi / c`` / ``roi // c`` scale offset
    and shape (``c`` a Coordinate, sequence or number).

    >>> roi = AnnomaskRoi((0, 8), (32, 32))
    >>> roi.end, roi.center, roi.size
    ((32, 40), (16, 24), 1024)
    >>> roi.snap_to_grid((6, 6)), roi.contains((31, 8)), roi.shift((1, 1))
    ([0:36, 6:42] (36, 36), True, [1:33, 9:41] (32, 32))
    >>> AnnomaskRoi((None, 0), (None, 4)).unbounded
    True
    """

    __slots__ = ("_offset", "_shape")

    def __init__(self, offset, shape):
        offset = AnnomaskCoordinate(offset)
        shape = AnnomaskCoordinate(shape)
        if offset.dims != shape.dims:
            raise ValueError(
                f"Roi: offset {tuple(offset)} and shape {tuple(shape)} differ in number of axes"
            )
        self._offset = AnnomaskCoordinate(
            o if s is not None else None for o, s in zip(offset, shape)
        )
        self._shape = shape

    # --- corners and sizes -------------------------------------------------------------------

    @property
    def offset(self):
        """The begin corner (a Coordinate)."""
        return self._offset

    @property
    def begin(self):
        """The begin corner (same as ``offset``)."""
        return self._offset

    @property
    def shape(self):
        """The extent (a Coordinate)."""
        return self._shape

    @property
    def end(self):
        """The end corner, exclusive."""
        return self._offset + self._shape

    @property
    def center(self):
        """``offset + shape / 2``."""
        return self._offset + self._shape / 2

    def get_offset(self):
        return self.offset

    def get_begin(self):
        return self.begin

    def get_shape(self):
        return self.shape

    def get_end(self):
        return self.end

    def get_center(self):
        return self.center

    @property
    def dims(self):
        """Number of axes."""
        return self._shape.dims

    @property
    def size(self):
        """The volume (product of the shape), ``None`` if unbounded."""
        if self.unbounded:
            return None
        return _value(math.prod(self._shape))

    def get_size(self):
        return self.size

    @property
    def empty(self):
        """Whether some axis has a shape of 0 or less."""
        return any(x is not None and x <= 0 for x in self._shape)

    @property
    def unbounded(self):
        """Whether some axis is unbounded (``None`` in the shape)."""
        return None in self._shape

    def to_slices(self):
        """A tuple of slices indexing this ROI (in voxels) in an array.

        >>> import numpy
        >>> numpy.zeros((10, 10))[AnnomaskRoi((2, 0), (4, 10)).to_slices()].shape
        (4, 10)
        """
        slices = []
        for o, s in zip(self._offset, self._shape):
            if s is None:
                slices.append(slice(None, None))
            elif s == 0:
                slices.append(slice(None, 0))
            else:
                slices.append(slice(_index(o, "offset"), _index(o + s, "end")))
        return tuple(slices)

    def get_bounding_box(self):
        """Same as :meth:`to_slices`."""
        return self.to_slices()

    def squeeze(self, dim=0):
        """This ROI without axis ``dim``."""
        return AnnomaskRoi(self._offset.squeeze(dim), self._shape.squeeze(dim))

    def copy(self):
        """This ROI (it is immutable)."""
        return self

    # --- relations ---------------------------------------------------------------------------

    def contains(self, other):
        """Whether ``other`` (a Roi, or a point as Coordinate or tuple) is inside this ROI."""
        if hasattr(other, "offset") and hasattr(other, "shape"):
            other = _roi(other)
            if other.empty:
                return self.empty or self.contains(other.begin)
            return self.contains(other.begin) and self.contains(other.end - 1)
        if isinstance(other, Iterable):
            inside = [
                (b is None or (p is not None and p >= b))
                and (e is None or (p is not None and p < e))
                for p, b, e in zip(other, self.begin, self.end)
            ]
            return len(inside) == self.dims and all(inside)
        raise TypeError(f"Roi.contains: cannot test containment of {other!r}")

    def intersects(self, other):
        """Whether this ROI and ``other`` overlap."""
        other = self._same_dims(other, "intersects")
        if self.empty or other.empty:
            return False
        return not any(
            None not in (b1, b2, e1, e2) and (b1 >= e2 or b2 >= e1)
            for b1, b2, e1, e2 in zip(self.begin, other.begin, self.end, other.end)
        )

    def intersect(self, other):
        """The overlap of this ROI and ``other``; empty (offset ``None``, shape 0) if none."""
        other = self._same_dims(other, "intersect")
        if not self.intersects(other):
            return AnnomaskRoi((None,) * self.dims, (0,) * self.dims)
        begin = AnnomaskCoordinate(_left_max(a, b) for a, b in zip(self.begin, other.begin))
        end = AnnomaskCoordinate(_right_min(a, b) for a, b in zip(self.end, other.end))
        return AnnomaskRoi(begin, end - begin)

    def union(self, other):
        """The smallest ROI containing this ROI and ``other``."""
        other = self._same_dims(other, "union")
        if self.empty:
            return other
        if other.empty:
            return self
        begin = AnnomaskCoordinate(_left_min(a, b) for a, b in zip(self.begin, other.begin))
        end = AnnomaskCoordinate(_right_max(a, b) for a, b in zip(self.end, other.end))
        return AnnomaskRoi(begin, end - begin)

    def _same_dims(self, other, name):
        other = _roi(other)
        if other.dims != self.dims:
            raise ValueError(f"Roi.{name}: {self} and {other} differ in number of axes")
        return other

    # --- derived ROIs ------------------------------------------------------------------------

    def shift(self, by):
        """This ROI moved by ``by`` (a Coordinate, sequence or number)."""
        return AnnomaskRoi(self._offset + by, self._shape)

    def grow(self, amount_neg=0, amount_pos=0):
        """This ROI grown by ``amount_neg`` at the begin and ``amount_pos`` at the end.

        >>> AnnomaskRoi((8, 8), (16, 16)).grow(8, (0, 8))
        [0:24, 0:32] (24, 32)
        """
        if isinstance(amount_neg, Iterable):
            amount_neg = AnnomaskCoordinate(amount_neg)
        if isinstance(amount_pos, Iterable):
            amount_pos = AnnomaskCoordinate(amount_pos)
        return AnnomaskRoi(self._offset - amount_neg, self._shape + amount_neg + amount_pos)

    def snap_to_grid(self, voxel_size, mode="grow"):
        """This ROI with begin and end on multiples of ``voxel_size``.

        ``mode``: ``"grow"`` (outwards), ``"shrink"`` (inwards) or ``"closest"``.

        >>> AnnomaskRoi((3, 3), (10, 10)).snap_to_grid((4, 4), mode="shrink")
        [4:12, 4:12] (8, 8)
        """
        voxel_size = AnnomaskCoordinate(voxel_size)
        if voxel_size.dims != self.dims:
            raise ValueError(
                f"Roi.snap_to_grid: voxel size {tuple(voxel_size)} and {self} differ in "
                "number of axes"
            )
        if 0 in voxel_size:
            raise ValueError(f"Roi.snap_to_grid: voxel size {tuple(voxel_size)} has a zero")
        if mode == "closest":
            begin = self.begin.round_division(voxel_size)
            end = self.end.round_division(voxel_size)
        elif mode == "grow":
            begin = self.begin.floor_division(voxel_size)
            end = self.end.ceil_division(voxel_size)
        elif mode == "shrink":
            begin = self.begin.ceil_division(voxel_size)
            end = self.end.floor_division(voxel_size)
        else:
            raise ValueError(
                f'Roi.snap_to_grid: unknown mode "{mode}" (grow, shrink or closest)'
            )
        return AnnomaskRoi(begin * voxel_size, (end - begin) * voxel_size)

    # --- operators ---------------------------------------------------------------------------

    def _operand(self, other, op):
        if isinstance(other, numbers.Number) or (
            isinstance(other, Iterable) and not isinstance(other, (str, bytes))
        ):
            return other
        raise TypeError(f"Roi {op}: takes a Coordinate, a sequence or a number, not {other!r}")

    def __add__(self, other):
        return self.shift(self._operand(other, "+"))

    def __sub__(self, other):
        other = self._operand(other, "-")
        if isinstance(other, numbers.Number):
            return self.shift(-other)
        return self.shift(-AnnomaskCoordinate(other))

    def __mul__(self, other):
        other = self._operand(other, "*")
        return AnnomaskRoi(self._offset * other, self._shape * other)

    def __truediv__(self, other):
        other = self._operand(other, "/")
        return AnnomaskRoi(self._offset / other, self._shape / other)

    def __floordiv__(self, other):
        other = self._operand(other, "//")
        return AnnomaskRoi(self._offset // other, self._shape // other)

    def __mod__(self, other):
        other = self._operand(other, "%")
        return AnnomaskRoi(self._offset % other, self._shape % other)

    def __eq__(self, other):
        if isinstance(other, AnnomaskRoi) or (
            _FunlibRoi is not None and isinstance(other, _FunlibRoi)
        ):
            return tuple(self._offset) == tuple(other.offset) and tuple(self._shape) == tuple(
                other.shape
            )
        return NotImplemented

    def __hash__(self):
        return hash((tuple(self._offset), tuple(self._shape)))

    def __repr__(self):
        """funlib's form: ``[begin:end, ...] (shape, ...)``; ``inf`` for unbounded axes."""
        if self.empty:
            return "[empty ROI]"
        slices = ", ".join(
            ("" if b is None else str(b)) + ":" + ("" if e is None else str(e))
            for b, e in zip(self.begin, self.end)
        )
        dims = ", ".join("inf" if s is None else str(s) for s in self._shape)
        return f"[{slices}] ({dims})"


def _roi(other):
    """``other`` (a Roi of either kind, or anything with offset and shape) as an AnnomaskRoi."""
    if isinstance(other, AnnomaskRoi):
        return other
    if hasattr(other, "offset") and hasattr(other, "shape"):
        return AnnomaskRoi(other.offset, other.shape)
    raise TypeError(f"Roi: {other!r} is not a Roi (no offset and shape)")


try:
    import funlib.geometry as _funlib
except ImportError:
    _funlib = None

#: Whether ``funlib.geometry`` is installed: then ``Coordinate`` and ``Roi`` are its classes.
FUNLIB = _funlib is not None
_FunlibRoi = _funlib.Roi if FUNLIB else None

#: funlib.geometry's ``Coordinate`` where installed, else :class:`AnnomaskCoordinate`.
Coordinate = _funlib.Coordinate if FUNLIB else AnnomaskCoordinate
#: funlib.geometry's ``Roi`` where installed, else :class:`AnnomaskRoi`.
Roi = _funlib.Roi if FUNLIB else AnnomaskRoi


def world(voxel_size, offset, shape):
    """``(Coordinate(voxel_size), Roi(offset, shape))`` of one kind, for one array.

    funlib's types where funlib is installed and every value is integral (funlib's Coordinate
    truncates to ``int``); annomask's own otherwise, so that ``roi / voxel_size`` works on the
    pair either way.

    >>> voxel_size, roi = world((3.24, 4.0, 4.0), (0.0, 0.0, 0.0), (324.0, 400.0, 400.0))
    >>> voxel_size, type(roi).__name__
    ((3.24, 4, 4), 'AnnomaskRoi')
    >>> roi / voxel_size
    [0:100, 0:100, 0:100] (100, 100, 100)
    """
    if FUNLIB and integral(voxel_size, offset, shape):
        return Coordinate(voxel_size), Roi(offset, shape)
    return AnnomaskCoordinate(voxel_size), AnnomaskRoi(offset, shape)
