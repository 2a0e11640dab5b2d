//! Label element types (SPEC 1.1): `uint8/16/32/64` and `int8/16/32/64`, compared by bit pattern
//! as unsigned 64-bit. A signed value is sign-extended first, so a negative voxel lands at or
//! above 2^63 and matches no smaller id.

use std::fmt;

use ndarray::ArrayD;

/// The data type of a label array.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LabelDtype {
    /// `uint8`
    U8,
    /// `uint16`
    U16,
    /// `uint32`
    U32,
    /// `uint64`
    U64,
    /// `int8`
    I8,
    /// `int16`
    I16,
    /// `int32`
    I32,
    /// `int64`
    I64,
}

impl LabelDtype {
    /// Every supported dtype.
    pub const ALL: [LabelDtype; 8] = [
        Self::U8,
        Self::U16,
        Self::U32,
        Self::U64,
        Self::I8,
        Self::I16,
        Self::I32,
        Self::I64,
    ];

    /// The zarr/numpy name, e.g. `uint16`.
    pub fn name(self) -> &'static str {
        match self {
            Self::U8 => "uint8",
            Self::U16 => "uint16",
            Self::U32 => "uint32",
            Self::U64 => "uint64",
            Self::I8 => "int8",
            Self::I16 => "int16",
            Self::I32 => "int32",
            Self::I64 => "int64",
        }
    }

    /// The dtype of a zarr/numpy name, if it is a supported label dtype.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.name() == name)
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::U8 | Self::I8 => 1,
            Self::U16 | Self::I16 => 2,
            Self::U32 | Self::I32 => 4,
            Self::U64 | Self::I64 => 8,
        }
    }

    /// Whether the type is signed.
    pub fn is_signed(self) -> bool {
        matches!(self, Self::I8 | Self::I16 | Self::I32 | Self::I64)
    }
}

impl fmt::Display for LabelDtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for LabelDtype {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::from_name(s).ok_or_else(|| {
            format!("unknown label dtype {s:?} (expected uint8/16/32/64 or int8/16/32/64)")
        })
    }
}

/// An integer type that label voxels can have.
pub trait Label:
    bytemuck::Pod + PartialEq + Eq + Ord + Send + Sync + fmt::Debug + zarrs::array::ElementOwned
{
    /// The dtype tag.
    const DTYPE: LabelDtype;
    /// The value as the unsigned 64-bit id it is compared as (signed values sign-extended).
    fn to_bits(self) -> u64;
    /// The value whose [`Label::to_bits`] is `bits`, if there is one.
    fn from_bits(bits: u64) -> Option<Self>;
}

macro_rules! impl_label {
    ($t:ty, $d:ident, $wide:ty) => {
        impl Label for $t {
            const DTYPE: LabelDtype = LabelDtype::$d;
            #[inline(always)]
            fn to_bits(self) -> u64 {
                self as $wide as u64
            }
            #[inline]
            fn from_bits(bits: u64) -> Option<Self> {
                let v = bits as $wide as $t;
                (v.to_bits() == bits).then_some(v)
            }
        }
    };
}
impl_label!(u8, U8, u64);
impl_label!(u16, U16, u64);
impl_label!(u32, U32, u64);
impl_label!(u64, U64, u64);
impl_label!(i8, I8, i64);
impl_label!(i16, I16, i64);
impl_label!(i32, I32, i64);
impl_label!(i64, I64, i64);

/// A label volume in memory, of any supported dtype (standard C layout).
#[derive(Clone, Debug, PartialEq)]
pub enum LabelArray {
    /// `uint8`
    U8(ArrayD<u8>),
    /// `uint16`
    U16(ArrayD<u16>),
    /// `uint32`
    U32(ArrayD<u32>),
    /// `uint64`
    U64(ArrayD<u64>),
    /// `int8`
    I8(ArrayD<i8>),
    /// `int16`
    I16(ArrayD<i16>),
    /// `int32`
    I32(ArrayD<i32>),
    /// `int64`
    I64(ArrayD<i64>),
}

/// Runs `$body` with `$a` bound to the typed array inside a [`LabelArray`] (or any enum with the
/// same variants, e.g. [`LabelSlice`]).
#[macro_export]
macro_rules! with_labels {
    ($value:expr, $enum:ident, $a:ident => $body:expr) => {
        match $value {
            $enum::U8($a) => $body,
            $enum::U16($a) => $body,
            $enum::U32($a) => $body,
            $enum::U64($a) => $body,
            $enum::I8($a) => $body,
            $enum::I16($a) => $body,
            $enum::I32($a) => $body,
            $enum::I64($a) => $body,
        }
    };
}

/// A contiguous run of label voxels (C order), of any supported dtype.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LabelSlice<'a> {
    /// `uint8`
    U8(&'a [u8]),
    /// `uint16`
    U16(&'a [u16]),
    /// `uint32`
    U32(&'a [u32]),
    /// `uint64`
    U64(&'a [u64]),
    /// `int8`
    I8(&'a [i8]),
    /// `int16`
    I16(&'a [i16]),
    /// `int32`
    I32(&'a [i32]),
    /// `int64`
    I64(&'a [i64]),
}

impl<'a> LabelSlice<'a> {
    /// The dtype.
    pub fn dtype(&self) -> LabelDtype {
        with_labels!(self, LabelSlice, s => element_dtype(s))
    }

    /// Number of voxels.
    pub fn len(&self) -> usize {
        with_labels!(self, LabelSlice, s => s.len())
    }

    /// Whether there are no voxels.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The raw bytes (native endianness).
    pub fn as_bytes(&self) -> &'a [u8] {
        with_labels!(*self, LabelSlice, s => bytemuck::cast_slice(s))
    }

    /// The voxel at `i` as its 64-bit id.
    pub fn bits_at(&self, i: usize) -> u64 {
        with_labels!(self, LabelSlice, s => s[i].to_bits())
    }

    /// Voxels `range` of this slice.
    pub fn slice(&self, range: std::ops::Range<usize>) -> LabelSlice<'a> {
        with_labels!(*self, LabelSlice, s => LabelSlice::from(&s[range]))
    }
}

fn element_dtype<T: Label>(_: &[T]) -> LabelDtype {
    T::DTYPE
}

macro_rules! impl_from {
    ($t:ty, $d:ident) => {
        impl<'a> From<&'a [$t]> for LabelSlice<'a> {
            fn from(s: &'a [$t]) -> Self {
                LabelSlice::$d(s)
            }
        }
        impl From<ArrayD<$t>> for LabelArray {
            fn from(a: ArrayD<$t>) -> Self {
                LabelArray::$d(a)
            }
        }
    };
}
impl_from!(u8, U8);
impl_from!(u16, U16);
impl_from!(u32, U32);
impl_from!(u64, U64);
impl_from!(i8, I8);
impl_from!(i16, I16);
impl_from!(i32, I32);
impl_from!(i64, I64);

impl LabelArray {
    /// An array of `dtype` and `shape` from 64-bit ids (C order), or the first id that `dtype`
    /// cannot hold.
    ///
    /// ```
    /// use annomask::{LabelArray, LabelDtype};
    /// let a = LabelArray::from_ids(LabelDtype::I8, &[2], vec![5, u64::MAX]).unwrap();
    /// assert_eq!(a, LabelArray::from(ndarray::arr1(&[5i8, -1]).into_dyn()));
    /// assert_eq!(LabelArray::from_ids(LabelDtype::U8, &[1], vec![256]), Err(256));
    /// ```
    ///
    /// # Panics
    /// If `ids.len()` is not the product of `shape`.
    pub fn from_ids(dtype: LabelDtype, shape: &[usize], ids: Vec<u64>) -> Result<Self, u64> {
        fn typed<T: Label>(shape: &[usize], ids: Vec<u64>) -> Result<ArrayD<T>, u64> {
            let values = ids
                .into_iter()
                .map(|id| T::from_bits(id).ok_or(id))
                .collect::<Result<Vec<T>, u64>>()?;
            Ok(ArrayD::from_shape_vec(ndarray::IxDyn(shape), values).expect("ids fill the shape"))
        }
        Ok(match dtype {
            LabelDtype::U8 => typed::<u8>(shape, ids)?.into(),
            LabelDtype::U16 => typed::<u16>(shape, ids)?.into(),
            LabelDtype::U32 => typed::<u32>(shape, ids)?.into(),
            LabelDtype::U64 => typed::<u64>(shape, ids)?.into(),
            LabelDtype::I8 => typed::<i8>(shape, ids)?.into(),
            LabelDtype::I16 => typed::<i16>(shape, ids)?.into(),
            LabelDtype::I32 => typed::<i32>(shape, ids)?.into(),
            LabelDtype::I64 => typed::<i64>(shape, ids)?.into(),
        })
    }

    /// The dtype.
    pub fn dtype(&self) -> LabelDtype {
        self.as_slice().dtype()
    }

    /// Shape in voxels.
    pub fn shape(&self) -> &[usize] {
        with_labels!(self, LabelArray, a => a.shape())
    }

    /// The voxels in C order. Arrays built by annomask are always in standard layout; an array
    /// in another layout is copied into it when constructed through [`LabelArray::standard`].
    pub fn as_slice(&self) -> LabelSlice<'_> {
        with_labels!(self, LabelArray, a => LabelSlice::from(
            a.as_slice().expect("LabelArray is kept in standard layout")))
    }

    /// This array in standard (C) layout.
    pub fn standard(self) -> Self {
        with_labels!(self, LabelArray, a => {
            if a.is_standard_layout() {
                LabelArray::from(a)
            } else {
                LabelArray::from(a.as_standard_layout().into_owned())
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_sign_extend_and_invert() {
        assert_eq!((-1i8).to_bits(), u64::MAX);
        assert_eq!((-128i8).to_bits(), 0xFFFF_FFFF_FFFF_FF80);
        assert_eq!(255u8.to_bits(), 255);
        assert_eq!(i8::from_bits(u64::MAX), Some(-1));
        assert_eq!(i8::from_bits(255), None);
        assert_eq!(u8::from_bits(255), Some(255));
        assert_eq!(u8::from_bits(256), None);
        assert_eq!(u32::from_bits(1 << 32), None);
        assert_eq!(i64::from_bits(1 << 63), Some(i64::MIN));
        assert_eq!(i16::from_bits(0x7FFF), Some(i16::MAX));
        assert_eq!(i16::from_bits(0x8000), None);
    }

    #[test]
    fn dtype_names_round_trip() {
        for d in LabelDtype::ALL {
            assert_eq!(LabelDtype::from_name(d.name()), Some(d));
        }
        assert!("float32".parse::<LabelDtype>().is_err());
    }
}
