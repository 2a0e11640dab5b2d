//! The CPU engine (SPEC 5): one fused pass over the labels writes every channel, in parallel
//! over blocks of voxels (rayon).
//!
//! Per block, the foreground test `l != background` is computed once into a small scratch
//! buffer that stays in cache; each channel is then a fill with zeros (zeroed channel), a copy
//! of the foreground (no per-voxel exclusions), or the foreground with the channel's missing ids
//! knocked out. Labels are compared in their own width: ids that the dtype cannot hold are
//! dropped from the typed plan, since no voxel can match them.
//!
//! ```
//! use std::collections::BTreeSet;
//! use annomask::{cpu, Groupings, LabelArray, MaskOptions, MaskPlan};
//! let labels = LabelArray::from(ndarray::arr2(&[[0u16, 3], [4, 9]]).into_dyn());
//! let groupings = Groupings::new([("mito", vec![3, 4]), ("all", vec![])])?;
//! let plan = MaskPlan::new(&groupings, &BTreeSet::from([4]), &MaskOptions::default());
//! let mask = cpu::compute(&plan, &labels);
//! assert_eq!(mask.shape(), &[2, 2, 2]);
//! assert_eq!(mask.as_slice().unwrap(), &[0, 0, 0, 0,   0, 1, 1, 1]);
//! # Ok::<(), annomask::GroupingsError>(())
//! ```

use ndarray::{ArrayD, IxDyn};
use rayon::prelude::*;

use crate::label::{Label, LabelArray, LabelSlice};
use crate::plan::MaskPlan;
use crate::with_labels;

/// Voxels per block of parallel work: 32 Ki voxels (256 KiB of u64 labels), small enough that a
/// block's labels and its scratch stay in L2 while the channels are written.
pub const BLOCK_VOXELS: usize = 1 << 15;

/// What one channel does with a block, with ids already in the label type.
#[derive(Clone, Debug, PartialEq)]
enum Rule<T> {
    /// 0 everywhere.
    Zero,
    /// `l != background`.
    Foreground,
    /// `l != background` and `l` not in the sorted list.
    Except(Vec<T>),
}

/// Lists up to this long are knocked out with one vectorised pass per id; longer ones are
/// searched per voxel.
const PASS_PER_ID_MAX: usize = 8;

/// The plan with every id converted to the label type `T`.
#[derive(Clone, Debug)]
struct TypedPlan<T> {
    /// `None` when no value of `T` equals the background: every voxel is foreground.
    background: Option<T>,
    rules: Vec<Rule<T>>,
}

impl<T: Label> TypedPlan<T> {
    fn new(plan: &MaskPlan) -> Self {
        let rules = (0..plan.num_channels())
            .map(|c| {
                if plan.zeroed(c) {
                    return Rule::Zero;
                }
                let mut ids: Vec<T> = plan
                    .voxel_table()
                    .iter()
                    .filter(|m| m.channels.contains(c))
                    .filter_map(|m| T::from_bits(m.id))
                    .collect();
                ids.sort_unstable();
                if ids.is_empty() {
                    Rule::Foreground
                } else {
                    Rule::Except(ids)
                }
            })
            .collect();
        Self {
            background: T::from_bits(plan.background()),
            rules,
        }
    }

    /// Computes one block: `outs[c]` receives channel `c` of `labels`.
    fn block(&self, labels: &[T], outs: &mut [&mut [u8]], fg: &mut Vec<u8>) {
        fg.clear();
        match self.background {
            Some(bg) => fg.extend(labels.iter().map(|&l| (l != bg) as u8)),
            None => fg.resize(labels.len(), 1),
        }
        for (rule, out) in self.rules.iter().zip(outs.iter_mut()) {
            match rule {
                Rule::Zero => out.fill(0),
                Rule::Foreground => out.copy_from_slice(fg),
                Rule::Except(ids) if ids.len() <= PASS_PER_ID_MAX => {
                    out.copy_from_slice(fg);
                    for &id in ids {
                        for (o, &l) in out.iter_mut().zip(labels) {
                            *o &= (l != id) as u8;
                        }
                    }
                }
                Rule::Except(ids) => {
                    for ((o, &f), l) in out.iter_mut().zip(fg.iter()).zip(labels) {
                        *o = f & ids.binary_search(l).is_err() as u8;
                    }
                }
            }
        }
    }
}

/// Computes the mask of `labels` (C order) into `out`, channel-major: channel `c` of voxel `i`
/// is `out[c * labels.len() + i]`.
///
/// # Panics
/// If `out.len() != plan.num_channels() * labels.len()`.
pub fn compute_into(plan: &MaskPlan, labels: LabelSlice<'_>, out: &mut [u8]) {
    with_labels!(labels, LabelSlice, s => compute_typed(plan, s, out))
}

fn compute_typed<T: Label>(plan: &MaskPlan, labels: &[T], out: &mut [u8]) {
    let n = labels.len();
    assert_eq!(
        out.len(),
        plan.num_channels() * n,
        "output holds {} bytes, the mask needs {} channels x {} voxels",
        out.len(),
        plan.num_channels(),
        n
    );
    if n == 0 || plan.num_channels() == 0 {
        return;
    }
    let typed = TypedPlan::<T>::new(plan);
    let blocks: Vec<(&[T], Vec<&mut [u8]>)> = labels
        .chunks(BLOCK_VOXELS)
        .zip(channel_blocks(out, n, BLOCK_VOXELS))
        .collect();
    blocks
        .into_par_iter()
        .for_each_init(Vec::new, |fg, (block, mut outs)| {
            typed.block(block, &mut outs, fg)
        });
}

/// A channel-major output of `n` voxels per channel cut into blocks of `block` voxels: for each
/// block, its run in every channel, in channel order. `n` and `block` must be positive.
pub(crate) fn channel_blocks(out: &mut [u8], n: usize, block: usize) -> Vec<Vec<&mut [u8]>> {
    let mut channels: Vec<_> = out.chunks_mut(n).map(|c| c.chunks_mut(block)).collect();
    (0..n.div_ceil(block))
        .map(|_| {
            channels
                .iter_mut()
                .map(|c| c.next().expect("every channel has n voxels"))
                .collect()
        })
        .collect()
}

/// The mask of `labels`: shape `(channels, *labels.shape())`.
pub fn compute(plan: &MaskPlan, labels: &LabelArray) -> ArrayD<u8> {
    let mut shape = vec![plan.num_channels()];
    shape.extend_from_slice(labels.shape());
    let mut out = vec![0u8; shape.iter().product()];
    compute_into(plan, labels.as_slice(), &mut out);
    ArrayD::from_shape_vec(IxDyn(&shape), out).expect("shape matches the buffer")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::groupings::Groupings;
    use crate::options::{MaskOptions, MaskPolicy};
    use std::collections::BTreeSet;

    #[test]
    fn long_exclusion_lists_use_the_search_path() {
        let ids: Vec<u64> = (1..=20).collect();
        let g = Groupings::new([("many", ids.clone())]).unwrap();
        let missing: BTreeSet<u64> = ids.iter().copied().filter(|i| i % 2 == 0).collect();
        let plan = MaskPlan::new(
            &g,
            &missing,
            &MaskOptions::default().policy(MaskPolicy::PerVoxel),
        );
        let labels: Vec<u32> = (0..25).collect();
        let mut out = vec![9u8; 25];
        compute_into(&plan, LabelSlice::from(&labels[..]), &mut out);
        let want: Vec<u8> = labels
            .iter()
            .map(|&l| (l != 0 && !(l <= 20 && l % 2 == 0)) as u8)
            .collect();
        assert_eq!(out, want);
    }

    #[test]
    fn unrepresentable_background_makes_everything_foreground() {
        let g = Groupings::new([("a", vec![])]).unwrap();
        let plan = MaskPlan::new(
            &g,
            &BTreeSet::new(),
            &MaskOptions::default().background(300),
        );
        let labels: Vec<u8> = vec![0, 44, 255];
        let mut out = vec![0u8; 3];
        compute_into(&plan, LabelSlice::from(&labels[..]), &mut out);
        assert_eq!(out, [1, 1, 1]);
    }

    #[test]
    fn blocks_cover_every_voxel() {
        let g = Groupings::new([("a", vec![2]), ("b", vec![])]).unwrap();
        let plan = MaskPlan::new(
            &g,
            &BTreeSet::from([2]),
            &MaskOptions::default().policy(MaskPolicy::PerVoxel),
        );
        let n = 3 * BLOCK_VOXELS + 17;
        let labels: Vec<u64> = (0..n as u64).map(|i| i % 3).collect();
        let mut out = vec![7u8; 2 * n];
        compute_into(&plan, LabelSlice::from(&labels[..]), &mut out);
        for (i, &l) in labels.iter().enumerate() {
            assert_eq!(out[i], (l == 1) as u8, "a at {i}");
            assert_eq!(out[n + i], (l != 0) as u8, "b at {i}");
        }
    }
}
