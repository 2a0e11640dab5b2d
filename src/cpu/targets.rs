//! The targets half of the fused CPU kernel: per channel, `label in ids(c)`, or
//! `label != background` for a channel with an empty id list (DaCapo's `BinarizeArray`), from the
//! same block of labels and the same foreground bytes as the mask.

use super::stream::Store;
use crate::label::Label;
use crate::labels::plan::MaskPlan;

/// Id lists up to this long are tested with one compare per id, unrolled; longer ones are
/// binary-searched per voxel.
const UNROLLED_MAX: usize = 8;

/// What one channel's target is.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum TargetRule<T> {
    /// 0 everywhere (the channel's ids cannot occur in this dtype).
    Zero,
    /// `l != background` (an empty id list).
    Foreground,
    /// `l` is one of these (sorted, at most [`UNROLLED_MAX`]).
    AnyOf(Vec<T>),
    /// `l` is in this sorted list.
    Search(Vec<T>),
}

/// The target rules of every channel, ids converted to `T` (ids `T` cannot hold dropped).
pub(super) fn target_rules<T: Label>(plan: &MaskPlan) -> Vec<TargetRule<T>> {
    (0..plan.num_channels())
        .map(|c| {
            if plan.any_foreground().contains(c) {
                return TargetRule::Foreground;
            }
            let ids: Vec<T> = plan
                .target_table()
                .iter()
                .filter(|t| t.channels.contains(c))
                .filter_map(|t| T::from_bits(t.id))
                .collect();
            match ids.len() {
                0 => TargetRule::Zero,
                n if n <= UNROLLED_MAX => TargetRule::AnyOf(ids),
                _ => TargetRule::Search(ids),
            }
        })
        .collect()
}

/// Writes each channel's target of a block into `outs`; `fg` holds `labels != background`.
#[inline(always)]
pub(super) fn write_targets<T: Label>(
    rules: &[TargetRule<T>],
    labels: &[T],
    fg: &[u8],
    outs: &mut [&mut [u8]],
    store: Store,
    channel: &mut Vec<u8>,
) {
    for (rule, out) in rules.iter().zip(outs.iter_mut()) {
        match rule {
            TargetRule::Zero => store.zero(out),
            TargetRule::Foreground => store.copy(out, fg),
            TargetRule::AnyOf(ids) => {
                channel.clear();
                channel.resize(labels.len(), 0);
                any_of(labels, ids, channel);
                store.copy(out, channel);
            }
            TargetRule::Search(ids) => {
                channel.clear();
                channel.extend(labels.iter().map(|l| ids.binary_search(l).is_ok() as u8));
                store.copy(out, channel);
            }
        }
    }
}

/// `out[v] = labels[v] in ids`, with the number of ids a constant so the loop vectorises.
#[inline(always)]
fn any_of<T: Label>(labels: &[T], ids: &[T], out: &mut [u8]) {
    #[inline(always)]
    fn fixed<T: Label, const K: usize>(labels: &[T], ids: &[T], out: &mut [u8]) {
        let ids: [T; K] = ids.try_into().expect("K ids");
        for (o, &l) in out.iter_mut().zip(labels) {
            let mut hit = 0u8;
            for &id in &ids {
                hit |= (l == id) as u8;
            }
            *o = hit;
        }
    }
    match ids.len() {
        1 => fixed::<T, 1>(labels, ids, out),
        2 => fixed::<T, 2>(labels, ids, out),
        3 => fixed::<T, 3>(labels, ids, out),
        4 => fixed::<T, 4>(labels, ids, out),
        5 => fixed::<T, 5>(labels, ids, out),
        6 => fixed::<T, 6>(labels, ids, out),
        7 => fixed::<T, 7>(labels, ids, out),
        8 => fixed::<T, 8>(labels, ids, out),
        n => unreachable!("unrolled id lists have 1 to {UNROLLED_MAX} ids, not {n}"),
    }
}
