//! The data layout shared by the crop-group GPU engine and its CPU twin: the `Params` uniform,
//! the plan words, where each class's values go in the `values` buffer, and block sizes. Both
//! engines call these functions, so the twin checks the host side of the GPU path too. Blocks,
//! the dispatch grid, uploads and scatter are those of the label kernel ([`crate::gpu::layout`]).

use bytemuck::{Pod, Zeroable};

use super::{WORKGROUP_SIZE, grid, quads, split};
use crate::cellmap::CropPlan;
use crate::cellmap::attrs::AnnotationKind;
use crate::label::LabelDtype;
use crate::labels::plan::ChannelSet;

/// Words per class record in the plan buffer (`CLASS_WORDS` in `shaders/cellmap.wgsl`).
pub const CLASS_WORDS: usize = 9;

/// Record flag: the class's values are signed.
pub const SIGNED: u32 = 1;
/// Record flag: instance segmentation.
pub const INSTANCE: u32 = 2;
/// Record flag: the encoding has an `absent` code.
pub const HAS_ABSENT: u32 = 4;
/// Record flag: the encoding has a `present` code.
pub const HAS_PRESENT: u32 = 8;
/// Record flag: the encoding has an `unknown` code.
pub const HAS_UNKNOWN: u32 = 16;

/// The `Params` uniform of `shaders/cellmap.wgsl`, field for field.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub(crate) struct Params {
    /// Real voxels in the block.
    pub voxels: u32,
    /// `ceil(voxels / 4)`: quads, and the stride of one channel in output words.
    pub quads: u32,
    /// Number of channels.
    pub channels: u32,
    /// Number of class arrays read.
    pub classes: u32,
    /// `u32` words per channel set.
    pub words_per_set: u32,
    /// 1 when targets are written after the masks.
    pub targets: u32,
    /// Quads per row of the dispatch grid.
    pub row_quads: u32,
    /// Padding.
    pub _pad0: u32,
}

/// `u32` words per quad (4 values) of a class of `dtype`: its size in bytes.
pub(crate) fn quad_words(dtype: LabelDtype) -> usize {
    dtype.size()
}

/// Word offsets per quad of each class in the `values` buffer: class `k` starts at word
/// `quads * prefix[k]`. The last entry is the total words per quad.
pub(crate) fn prefixes(dtypes: &[LabelDtype]) -> Vec<usize> {
    let mut out = Vec::with_capacity(dtypes.len() + 1);
    let mut sum = 0;
    out.push(0);
    for &d in dtypes {
        sum += quad_words(d);
        out.push(sum);
    }
    out
}

/// The plan buffer for classes of `dtypes` (one per plan class): zeroed channel set, class
/// records, class channel sets.
///
/// # Panics
/// If `dtypes.len() != plan.classes().len()`.
pub(crate) fn plan_words(plan: &CropPlan, dtypes: &[LabelDtype]) -> Vec<u32> {
    assert_eq!(dtypes.len(), plan.classes().len(), "one dtype per class");
    let w = plan.words_per_set();
    let mut zeroed = ChannelSet::new(plan.num_channels());
    for c in (0..plan.num_channels()).filter(|&c| plan.zeroed(c)) {
        zeroed.insert(c);
    }
    let prefix = prefixes(dtypes);
    let mut words = Vec::with_capacity(w + plan.classes().len() * (CLASS_WORDS + w));
    words.extend_from_slice(zeroed.words());
    for (k, (class, &dtype)) in plan.classes().iter().zip(dtypes).enumerate() {
        let e = &class.encoding;
        let flag = |on: bool, f: u32| if on { f } else { 0 };
        let flags = flag(dtype.is_signed(), SIGNED)
            | flag(class.kind == AnnotationKind::Instance, INSTANCE)
            | flag(e.absent.is_some(), HAS_ABSENT)
            | flag(e.present.is_some(), HAS_PRESENT)
            | flag(e.unknown.is_some(), HAS_UNKNOWN);
        words.extend_from_slice(&[prefix[k] as u32, 8 * dtype.size() as u32, flags]);
        for code in [e.absent, e.present, e.unknown] {
            words.extend_from_slice(&split(code.unwrap_or(0)));
        }
    }
    for class in plan.classes() {
        words.extend_from_slice(class.channels.words());
    }
    words
}

/// The uniform for a block of `voxels` voxels.
pub(crate) fn params(plan: &CropPlan, voxels: usize, targets: bool) -> Params {
    let q = quads(voxels);
    let (x, _) = grid(q);
    Params {
        voxels: voxels as u32,
        quads: q as u32,
        channels: plan.num_channels() as u32,
        classes: plan.classes().len() as u32,
        words_per_set: plan.words_per_set() as u32,
        targets: targets as u32,
        row_quads: x * WORKGROUP_SIZE,
        _pad0: 0,
    }
}

/// Bytes of the `out` buffer for a block of `quads` quads.
pub(crate) fn out_bytes(plan: &CropPlan, quads: usize, targets: bool) -> u64 {
    (4 * quads * plan.num_channels() * (1 + targets as usize)) as u64
}

/// Voxels per block: at most `cap`, and few enough that the `values` and `out` bindings stay
/// within `max_binding` bytes. A multiple of 4, at least 4.
pub(crate) fn block_voxels(
    max_binding: u64,
    cap: usize,
    plan: &CropPlan,
    dtypes: &[LabelDtype],
    targets: bool,
) -> usize {
    let limit = max_binding as usize;
    let value_bytes: usize = dtypes.iter().map(|d| d.size()).sum();
    let out_bytes = plan.num_channels() * (1 + targets as usize);
    let by_values = limit / value_bytes.max(1);
    let by_out = limit / out_bytes.max(1);
    (cap.min(by_values).min(by_out) / 4 * 4).max(4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cellmap::attrs::{ClassAnnotation, Encoding};
    use crate::groupings::ClassGroupings;

    #[test]
    fn params_match_the_wgsl_layout() {
        assert_eq!(std::mem::size_of::<Params>(), 32);
        assert_eq!(std::mem::offset_of!(Params, row_quads), 24);
    }

    #[test]
    fn plan_words_hold_records_and_sets() {
        let g = ClassGroupings::new([("a", vec!["x", "y"]), ("b", vec!["y"]), ("z", vec!["q"])])
            .unwrap();
        let ann = ClassAnnotation::new;
        let plan = CropPlan::new(
            &g,
            &[
                ann(
                    "x",
                    AnnotationKind::Semantic,
                    Encoding {
                        absent: Some(0),
                        present: Some(1),
                        unknown: Some(255),
                    },
                ),
                ann(
                    "y",
                    AnnotationKind::Instance,
                    Encoding {
                        absent: None,
                        present: None,
                        unknown: Some(u64::MAX),
                    },
                ),
            ],
        );
        let words = plan_words(&plan, &[LabelDtype::U8, LabelDtype::I64]);
        assert_eq!(words.len(), 1 + 2 * CLASS_WORDS + 2);
        assert_eq!(words[0], 0b100); // channel z is zeroed
        assert_eq!(
            &words[1..10],
            &[
                0,
                8,
                HAS_ABSENT | HAS_PRESENT | HAS_UNKNOWN,
                0,
                0,
                1,
                0,
                255,
                0
            ]
        );
        assert_eq!(
            &words[10..19],
            &[
                1,
                64,
                SIGNED | INSTANCE | HAS_UNKNOWN,
                0,
                0,
                0,
                0,
                u32::MAX,
                u32::MAX
            ]
        );
        assert_eq!(&words[19..], &[0b01, 0b11]);
        assert_eq!(
            prefixes(&[LabelDtype::U8, LabelDtype::I64, LabelDtype::U16]),
            [0, 1, 9, 11]
        );
    }

    #[test]
    fn blocks_respect_the_binding_limit() {
        let g = ClassGroupings::new([("a", vec!["x"])]).unwrap();
        let plan = CropPlan::new(&g, &[]);
        // No classes read (channel zeroed): only the output bounds the block.
        assert_eq!(block_voxels(1 << 10, usize::MAX, &plan, &[], true), 512);
        assert_eq!(block_voxels(1 << 10, 10, &plan, &[], false), 8);
        assert_eq!(
            block_voxels(1 << 10, usize::MAX, &plan, &[LabelDtype::U64; 3], false),
            40
        );
        assert_eq!(
            block_voxels(8, usize::MAX, &plan, &[LabelDtype::U64; 3], false),
            4
        );
    }
}
