//! The CPU engine for crop groups (SPEC 1.4, 5): one fused pass over the class arrays writes
//! every channel's mask, and optionally its targets, in parallel over blocks of voxels (rayon).
//!
//! Per block, each class read by the plan is scanned once in its own dtype into two scratch
//! rows (`known`, `positive`) that stay in cache; every channel fed by the class then takes
//! `mask &= known` and `target |= positive`. Channels start at 1 (mask) and 0 (targets);
//! zeroed channels stay 0. Codes that the dtype cannot hold match no voxel.
//!
//! ```
//! use annomask::cellmap::{attrs::{AnnotationKind, ClassAnnotation, Encoding}, CropPlan};
//! use annomask::engine::{Engine, Outputs};
//! use annomask::{ClassGroupings, LabelSlice};
//! let mem = ClassAnnotation::new("mito_mem", AnnotationKind::Semantic,
//!     Encoding { absent: Some(0), present: Some(1), unknown: Some(255) });
//! let plan = CropPlan::new(&ClassGroupings::new([("mito", vec!["mito_mem"])])?, &[mem]);
//! let values: Vec<u8> = vec![0, 1, 255, 1];
//! let (mut mask, mut targets) = (vec![0u8; 4], vec![0u8; 4]);
//! let out = Outputs::bytes(&mut mask).with_targets(&mut targets);
//! Engine::cpu().run(&plan, &[LabelSlice::from(&values[..])], &[4], out, false)?;
//! assert_eq!(mask, [1, 1, 0, 1]);     // unknown (255) is not trained
//! assert_eq!(targets, [0, 1, 0, 1]);  // and never a positive target
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use rayon::prelude::*;

use super::attrs::AnnotationKind;
use super::plan::{ClassPlan, CropPlan};
use crate::cpu::{BLOCK_VOXELS, channel_blocks};
use crate::label::{Label, LabelSlice};
use crate::with_labels;

/// Which values of type `T` are positive.
enum Positive<T> {
    /// None (semantic without a `present` code the dtype can hold).
    Never,
    /// `value == present` (semantic).
    Equal(T),
    /// `value` is none of these codes (instance; only codes the dtype can hold).
    NotIn(Vec<T>),
}

/// Fills `known` and (when asked) `positive` for one class's values.
fn scan<T: Label>(
    class: &ClassPlan,
    values: &[T],
    known: &mut Vec<u8>,
    positive: Option<&mut Vec<u8>>,
) {
    known.clear();
    match class.encoding.unknown.and_then(T::from_bits) {
        Some(u) => known.extend(values.iter().map(|&v| (v != u) as u8)),
        None => known.resize(values.len(), 1),
    }
    let Some(positive) = positive else { return };
    positive.clear();
    let rule = match class.kind {
        AnnotationKind::Semantic => match class.encoding.present.and_then(T::from_bits) {
            Some(p) => Positive::Equal(p),
            None => Positive::Never,
        },
        AnnotationKind::Instance => Positive::NotIn(
            class
                .encoding
                .codes()
                .filter_map(|(_, c)| T::from_bits(c))
                .collect(),
        ),
    };
    match rule {
        Positive::Never => positive.resize(values.len(), 0),
        Positive::Equal(p) => positive.extend(values.iter().map(|&v| (v == p) as u8)),
        Positive::NotIn(codes) => not_in(values, &codes, positive),
    }
}

/// `positive[i] = values[i]` is none of `codes`: branch-free for up to three codes (absent,
/// unknown and one more cover the instance encodings), so the compiler vectorises it.
fn not_in<T: Label>(values: &[T], codes: &[T], positive: &mut Vec<u8>) {
    let out = values.iter();
    match *codes {
        [] => positive.resize(values.len(), 1),
        [a] => positive.extend(out.map(|&v| (v != a) as u8)),
        [a, b] => positive.extend(out.map(|&v| ((v != a) & (v != b)) as u8)),
        [a, b, c] => positive.extend(out.map(|&v| ((v != a) & (v != b) & (v != c)) as u8)),
        _ => positive.extend(out.map(|v| !codes.contains(v) as u8)),
    }
}

/// Scratch rows of one worker.
#[derive(Default)]
struct Scratch {
    known: Vec<u8>,
    positive: Vec<u8>,
}

/// Computes one block: `masks[c]` / `targets[c]` receive channel `c` of the block whose class
/// values are `values[k]` (one per plan class). A channel's first class writes its rows
/// (`mask = known`, `target = positive`), the next combine (`&=`, `|=`); channels no class
/// feeds get 1 (0 when zeroed) and targets 0.
fn block(
    plan: &CropPlan,
    values: &[LabelSlice<'_>],
    masks: &mut [&mut [u8]],
    mut targets: Option<&mut [&mut [u8]]>,
    scratch: &mut Scratch,
) {
    let Scratch { known, positive } = scratch;
    // Classes come in plan order, so a channel's first class is the lowest in its class set.
    let first_class = |c: usize| plan.class_set(c).iter().next();
    for (k, (class, values)) in plan.classes().iter().zip(values).enumerate() {
        let want_positive = targets.is_some().then_some(&mut *positive);
        with_labels!(values, LabelSlice, v => scan(class, v, known, want_positive));
        for c in class.channels.iter() {
            let first = first_class(c) == Some(k);
            match first {
                true => masks[c].copy_from_slice(known),
                false => masks[c]
                    .iter_mut()
                    .zip(known.iter())
                    .for_each(|(m, &x)| *m &= x),
            }
            if let Some(t) = targets.as_deref_mut() {
                match first {
                    true => t[c].copy_from_slice(positive),
                    false => t[c]
                        .iter_mut()
                        .zip(positive.iter())
                        .for_each(|(t, &p)| *t |= p),
                }
            }
        }
    }
    for c in (0..masks.len()).filter(|&c| first_class(c).is_none()) {
        masks[c].fill(!plan.zeroed(c) as u8);
        if let Some(t) = targets.as_deref_mut() {
            t[c].fill(0);
        }
    }
}

/// Computes the mask (and, with `targets`, the targets) of a crop-group region into
/// channel-major outputs (what [`crate::Engine::run`] does with a [`CropPlan`] on the CPU): channel `c` of voxel `i` is `mask[c * n + i]`, where `n` is the
/// number of voxels. `classes[k]` holds the values of `plan.classes()[k]` (C order), any dtype.
///
/// # Panics
/// If `classes.len() != plan.classes().len()`, if a class does not hold `n` voxels, or if an
/// output does not hold `plan.num_channels() * n` bytes.
pub(crate) fn compute_into(
    plan: &CropPlan,
    classes: &[LabelSlice<'_>],
    mask: &mut [u8],
    targets: Option<&mut [u8]>,
) {
    let channels = plan.num_channels();
    let n = check_sizes(plan, classes, mask.len(), targets.as_ref().map(|t| t.len()));
    if n == 0 || channels == 0 {
        return;
    }
    let mask_blocks = channel_blocks(mask, n, BLOCK_VOXELS);
    let target_blocks = match targets {
        Some(t) => channel_blocks(t, n, BLOCK_VOXELS)
            .into_iter()
            .map(Some)
            .collect(),
        None => (0..mask_blocks.len()).map(|_| None).collect::<Vec<_>>(),
    };
    mask_blocks
        .into_iter()
        .zip(target_blocks)
        .enumerate()
        .collect::<Vec<_>>()
        .into_par_iter()
        .for_each_init(Scratch::default, |scratch, (b, (mut m, mut t))| {
            let range = b * BLOCK_VOXELS..(b * BLOCK_VOXELS + BLOCK_VOXELS).min(n);
            let values: Vec<LabelSlice<'_>> =
                classes.iter().map(|c| c.slice(range.clone())).collect();
            block(plan, &values, &mut m, t.as_deref_mut(), scratch);
        });
}

/// Checks the sizes of a call and returns the number of voxels `n` (0 when there are no
/// channels).
///
/// # Panics
/// On any mismatch, with a message naming it.
pub(crate) fn check_sizes(
    plan: &CropPlan,
    classes: &[LabelSlice<'_>],
    mask_len: usize,
    targets_len: Option<usize>,
) -> usize {
    let channels = plan.num_channels();
    assert_eq!(
        classes.len(),
        plan.classes().len(),
        "the plan reads {} class arrays, {} were given",
        plan.classes().len(),
        classes.len()
    );
    let n = mask_len.checked_div(channels).unwrap_or(0);
    assert_eq!(
        mask_len,
        channels * n,
        "mask holds {mask_len} bytes, not a multiple of {channels} channels"
    );
    if let Some(len) = targets_len {
        assert_eq!(
            len, mask_len,
            "targets hold {len} bytes, the mask {mask_len}"
        );
    }
    for (class, values) in plan.classes().iter().zip(classes) {
        assert!(
            channels == 0 || values.len() == n,
            "class {} holds {} voxels, the mask {n}",
            class.name,
            values.len()
        );
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cellmap::attrs::{ClassAnnotation, Encoding};
    use crate::groupings::ClassGroupings;

    #[test]
    fn blocks_cover_every_voxel_and_mixed_dtypes() {
        let g = ClassGroupings::new([
            ("both", vec!["s", "i"]),
            ("i", vec!["i"]),
            ("gone", vec!["x"]),
        ])
        .unwrap();
        let sem = Encoding {
            absent: Some(0),
            present: Some(1),
            unknown: Some(255),
        };
        let inst = Encoding {
            absent: Some(0),
            present: None,
            unknown: Some(u64::MAX),
        };
        let plan = CropPlan::new(
            &g,
            &[
                ClassAnnotation::new("s", AnnotationKind::Semantic, sem),
                ClassAnnotation::new("i", AnnotationKind::Instance, inst),
            ],
        );
        let n = 2 * BLOCK_VOXELS + 5;
        let s: Vec<u8> = (0..n).map(|i| [0, 1, 255][i % 3]).collect();
        let i: Vec<i64> = (0..n as i64)
            .map(|v| [0, -1, 7, 1 << 40][(v % 4) as usize])
            .collect();
        let mut mask = vec![9u8; 3 * n];
        let mut targets = vec![9u8; 3 * n];
        compute_into(
            &plan,
            &[LabelSlice::from(&s[..]), LabelSlice::from(&i[..])],
            &mut mask,
            Some(&mut targets),
        );
        for v in 0..n {
            let (sk, sp) = (s[v] != 255, s[v] == 1);
            let (ik, ip) = (i[v] != -1, i[v] != 0 && i[v] != -1);
            assert_eq!(mask[v], (sk && ik) as u8, "both at {v}");
            assert_eq!(targets[v], (sp || ip) as u8, "both at {v}");
            assert_eq!(mask[n + v], ik as u8, "i at {v}");
            assert_eq!(targets[n + v], ip as u8, "i at {v}");
            assert_eq!((mask[2 * n + v], targets[2 * n + v]), (0, 0), "gone at {v}");
        }
    }

    #[test]
    #[should_panic(expected = "class s holds 3 voxels, the mask 4")]
    fn size_mismatch_panics_with_a_message() {
        let g = ClassGroupings::new([("a", vec!["s"])]).unwrap();
        let plan = CropPlan::new(
            &g,
            &[ClassAnnotation::new(
                "s",
                AnnotationKind::Semantic,
                Encoding::default(),
            )],
        );
        let s = [0u8; 3];
        compute_into(&plan, &[LabelSlice::from(&s[..])], &mut [0u8; 4], None);
    }
}
