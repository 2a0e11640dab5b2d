//! Test helpers for CellMap crop groups: a naive oracle of SPEC 1.4 that shares no code with the
//! engines or the plan (it reads raw draws and dtype widths, not the crate's label conversions),
//! and proptest strategies for random crops.
#![allow(dead_code)]

use annomask::cellmap::CropPlan;
use annomask::cellmap::attrs::{AnnotationKind, ClassAnnotation, Encoding};
use annomask::{ClassGroupings, LabelArray, LabelDtype};
use proptest::prelude::*;

/// One class of a crop, as the oracle sees it.
#[derive(Debug, Clone)]
pub struct OracleClass {
    pub name: String,
    pub dtype: LabelDtype,
    pub instance: bool,
    pub absent: Option<u64>,
    pub present: Option<u64>,
    pub unknown: Option<u64>,
    /// Raw 64-bit draws; the voxel is the draw cut to the dtype's width.
    pub raw: Vec<u64>,
}

/// What a voxel of `dtype` drawn as `raw` reads as, as a 64-bit pattern: the low bits of the
/// draw, sign-extended for signed dtypes.
pub fn voxel_bits(dtype: LabelDtype, raw: u64) -> u64 {
    let bits = 8 * dtype.size() as u32;
    if bits == 64 {
        return raw;
    }
    let low = raw & ((1u64 << bits) - 1);
    let negative = dtype.is_signed() && (low >> (bits - 1)) & 1 == 1;
    if negative {
        low | (u64::MAX << bits)
    } else {
        low
    }
}

/// SPEC 1.4 word for word. `channels[c]` lists class names; a name that no class of `crop`
/// has zeroes the channel (mask and targets 0). Elsewhere `mask = 1` iff every class of the
/// channel is not `unknown` at the voxel, `target = 1` iff some class is positive: `== present`
/// (semantic) or none of the codes (instance). Returns channel-major (mask, targets).
pub fn crop_oracle(crop: &[OracleClass], channels: &[Vec<String>], n: usize) -> (Vec<u8>, Vec<u8>) {
    let mut mask = Vec::new();
    let mut targets = Vec::new();
    for names in channels {
        let classes: Vec<Option<&OracleClass>> = names
            .iter()
            .map(|name| crop.iter().find(|c| &c.name == name))
            .collect();
        if classes.iter().any(|c| c.is_none()) {
            mask.extend(std::iter::repeat_n(0u8, n));
            targets.extend(std::iter::repeat_n(0u8, n));
            continue;
        }
        for v in 0..n {
            let mut trained = true;
            let mut positive = false;
            for class in classes.iter().flatten() {
                let value = voxel_bits(class.dtype, class.raw[v]);
                if class.unknown == Some(value) {
                    trained = false;
                }
                let is_positive = if class.instance {
                    class.absent != Some(value)
                        && class.present != Some(value)
                        && class.unknown != Some(value)
                } else {
                    class.present == Some(value)
                };
                if is_positive {
                    positive = true;
                }
            }
            mask.push(trained as u8);
            targets.push(positive as u8);
        }
    }
    (mask, targets)
}

/// A random crop-group case.
#[derive(Debug, Clone)]
pub struct CropCase {
    pub shape: Vec<usize>,
    /// The crop's classes (its `class_names`), in crop order.
    pub classes: Vec<OracleClass>,
    /// Channels of class names, some of them not in the crop.
    pub channels: Vec<Vec<String>>,
}

impl CropCase {
    pub fn voxels(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn annotations(&self) -> Vec<ClassAnnotation> {
        self.classes.iter().map(annotation).collect()
    }

    pub fn groupings(&self) -> ClassGroupings {
        ClassGroupings::new(
            self.channels
                .iter()
                .enumerate()
                .map(|(i, c)| (format!("ch{i}"), c.clone())),
        )
        .unwrap()
    }

    pub fn plan(&self) -> CropPlan {
        CropPlan::new(&self.groupings(), &self.annotations())
    }

    /// The arrays of the classes `plan` reads, in plan order.
    pub fn plan_arrays(&self, plan: &CropPlan) -> Vec<LabelArray> {
        plan.classes()
            .iter()
            .map(|p| {
                let c = self.classes.iter().find(|c| c.name == p.name).unwrap();
                super::labels_of(c.dtype, &self.shape, &c.raw)
            })
            .collect()
    }

    pub fn oracle(&self) -> (Vec<u8>, Vec<u8>) {
        crop_oracle(&self.classes, &self.channels, self.voxels())
    }
}

pub fn annotation(c: &OracleClass) -> ClassAnnotation {
    let kind = if c.instance {
        AnnotationKind::Instance
    } else {
        AnnotationKind::Semantic
    };
    let encoding = Encoding {
        absent: c.absent,
        present: c.present,
        unknown: c.unknown,
    };
    ClassAnnotation::new(c.name.clone(), kind, encoding)
}

/// Codes and voxel values that stress the comparisons: dtype borders, >= 2^32, all ones.
const VALUES: [u64; 12] = [
    0,
    1,
    2,
    127,
    128,
    255,
    65535,
    1 << 32,
    (1 << 32) + 1,
    1 << 63,
    u64::MAX,
    u64::MAX - 1,
];

fn class_strategy(name: String, n: usize) -> impl Strategy<Value = OracleClass> {
    (
        super::dtype(),
        any::<bool>(),
        prop::sample::subsequence(VALUES.to_vec(), 3),
        prop::collection::vec(any::<bool>(), 3),
        any::<bool>(),
    )
        .prop_flat_map(move |(dtype, instance, codes, has, shuffle)| {
            let mut codes = codes;
            if shuffle {
                codes.reverse();
            }
            let code = |i: usize| has[i].then_some(codes[i]);
            let (absent, present, unknown) = (code(0), code(1), code(2));
            let voxel = prop_oneof![
                4 => prop::sample::select(codes.clone()),
                2 => prop::sample::select(VALUES.to_vec()),
                1 => any::<u64>(),
            ];
            let name = name.clone();
            prop::collection::vec(voxel, n).prop_map(move |raw| OracleClass {
                name: name.clone(),
                dtype,
                instance,
                absent,
                present,
                unknown,
                raw,
            })
        })
}

/// Random crops: 1 to 4096 voxels (2-D to 4-D), 0 to 6 classes of any dtype and encoding,
/// channels (0 to 40) over the crop's classes and two classes the crop lacks.
pub fn crop_case() -> impl Strategy<Value = CropCase> {
    let shape = prop::collection::vec(1usize..9, 2..=4).prop_filter("at most 4096 voxels", |s| {
        s.iter().product::<usize>() <= 4096
    });
    let channel_count = prop_oneof![4 => 0usize..6, 1 => 6usize..40];
    (shape, 0usize..7, channel_count).prop_flat_map(|(shape, nclasses, nch)| {
        let n: usize = shape.iter().product();
        let classes: Vec<_> = (0..nclasses)
            .map(|k| class_strategy(format!("class{k}"), n))
            .collect();
        let mut pool: Vec<String> = (0..nclasses).map(|k| format!("class{k}")).collect();
        pool.extend(["lacking_a".to_string(), "lacking_b".to_string()]);
        let member = prop::sample::select(pool);
        let channel = prop::collection::vec(member, 1..4);
        (Just(shape), classes, prop::collection::vec(channel, nch)).prop_map(
            |(shape, classes, channels)| CropCase {
                shape,
                classes,
                channels,
            },
        )
    })
}

/// Writes `case` as a crop group at `path` (8 nm voxels, one scale) in `format`.
pub fn write_case(
    case: &CropCase,
    path: &std::path::Path,
    format: annomask::ZarrFormat,
    compression: annomask::zarr_array::Compression,
) -> std::path::PathBuf {
    use annomask::cellmap::synth::{ClassSpec, CropSpec, write_crop};
    let classes = case
        .classes
        .iter()
        .map(|c| {
            let a = annotation(c);
            let mut spec = ClassSpec::new(
                c.name.clone(),
                a.kind,
                a.encoding,
                super::labels_of(c.dtype, &case.shape, &c.raw),
            );
            spec.chunks = case
                .shape
                .iter()
                .map(|&s| s.div_ceil(2).max(1) as u64)
                .collect();
            spec
        })
        .collect();
    let mut spec = CropSpec::new(classes);
    spec.format = format;
    spec.compression = compression;
    write_crop(path, &spec).unwrap()
}
