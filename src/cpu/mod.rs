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
//! use annomask::engine::{Engine, Outputs};
//! use annomask::{Groupings, LabelArray, MaskOptions, MaskPlan};
//! let labels = LabelArray::from(ndarray::arr2(&[[0u16, 3], [4, 9]]).into_dyn());
//! let groupings = Groupings::new([("mito", vec![3, 4]), ("all", vec![])])?;
//! let plan = MaskPlan::new(&groupings, &BTreeSet::from([4]), &MaskOptions::default());
//! let mut mask = vec![0u8; 2 * 4];
//! Engine::cpu().run(&plan, &[labels.as_slice()], labels.shape(), Outputs::bytes(&mut mask), false)?;
//! assert_eq!(mask, [0, 0, 0, 0,   0, 1, 1, 1]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use rayon::prelude::*;

pub mod stream;
mod targets;

use crate::bits::Outputs;
use crate::label::{Label, LabelSlice};
use crate::labels::plan::MaskPlan;
use crate::with_labels;
use stream::Store;
use targets::TargetRule;

use crate::bits::{self, MaskLayout};

/// Voxels per block of parallel work: 32 Ki voxels (256 KiB of u64 labels), small enough that a
/// block's labels and its scratch stay in L2 while the channels are written.
pub const BLOCK_VOXELS: usize = 1 << 15;

/// What one channel does with a block.
#[derive(Clone, Debug, PartialEq)]
enum Rule<T> {
    /// 0 everywhere.
    Zero,
    /// `l != background`.
    Foreground,
    /// `l != background` and `l` is none of the small-table entries whose bits are set here.
    KnockOut(u8),
    /// `l != background` and `l` not in this sorted list (tables too long for a bitmask).
    Except(Vec<T>),
}

/// Tables up to this long are matched with one fused pass that records, per voxel, which entry
/// it equals as one bit of a `u8`; longer ones are binary-searched per channel.
const SMALL_TABLE_MAX: usize = 8;

/// The plan with every id converted to the label type `T`. Ids that `T` cannot hold are
/// dropped: no voxel can equal them.
#[derive(Clone, Debug)]
struct TypedPlan<T> {
    /// `None` when no value of `T` equals the background: every voxel is foreground.
    background: Option<T>,
    /// The per-voxel table's ids, when it has at most [`SMALL_TABLE_MAX`] entries.
    small_table: Vec<T>,
    rules: Vec<Rule<T>>,
    /// Per channel, how its target is computed (used only by the fused kernel).
    target_rules: Vec<TargetRule<T>>,
}

impl<T: Label> TypedPlan<T> {
    fn new(plan: &MaskPlan) -> Self {
        let table: Vec<(T, &crate::labels::plan::ChannelSet)> = plan
            .voxel_table()
            .iter()
            .filter_map(|m| T::from_bits(m.id).map(|id| (id, &m.channels)))
            .collect();
        let small = table.len() <= SMALL_TABLE_MAX;
        let rules: Vec<Rule<T>> = (0..plan.num_channels())
            .map(|c| {
                if plan.zeroed(c) {
                    return Rule::Zero;
                }
                let hits = table
                    .iter()
                    .enumerate()
                    .filter(|(_, (_, set))| set.contains(c));
                if small {
                    match hits.fold(0u8, |bits, (i, _)| bits | 1 << i) {
                        0 => Rule::Foreground,
                        bits => Rule::KnockOut(bits),
                    }
                } else {
                    let mut ids: Vec<T> = hits.map(|(_, (id, _))| *id).collect();
                    ids.sort_unstable();
                    if ids.is_empty() {
                        Rule::Foreground
                    } else {
                        Rule::Except(ids)
                    }
                }
            })
            .collect();
        let needs_hits = rules.iter().any(|r| matches!(r, Rule::KnockOut(_)));
        Self {
            background: T::from_bits(plan.background()),
            small_table: if needs_hits {
                table.iter().map(|(id, _)| *id).collect()
            } else {
                Vec::new()
            },
            rules,
            target_rules: targets::target_rules(plan),
        }
    }

    /// [`TypedPlan::block`] compiled for AVX2 (the loops are the same; the compiler widens them).
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn block_avx2(
        &self,
        labels: &[T],
        outs: &mut BlockOut,
        sink: Sink,
        scratch: &mut Scratch,
    ) {
        self.block(labels, outs, sink, scratch)
    }

    /// [`TypedPlan::block`] in the version `tuning` asks for.
    fn run_block(
        &self,
        tuning: Tuning,
        layout: MaskLayout,
        labels: &[T],
        outs: &mut BlockOut,
        scratch: &mut Scratch,
    ) {
        let sink = Sink {
            store: tuning.store,
            layout,
        };
        #[cfg(target_arch = "x86_64")]
        if tuning.avx2 && avx2_detected() {
            // SAFETY: the CPU was just detected to support AVX2.
            return unsafe { self.block_avx2(labels, outs, sink, scratch) };
        }
        self.block(labels, outs, sink, scratch)
    }

    /// Computes one block: `outs[c]` receives channel `c` of `labels`.
    #[inline(always)]
    fn block(&self, labels: &[T], outs: &mut BlockOut, sink: Sink, scratch: &mut Scratch) {
        let Scratch {
            fg,
            hits,
            channel,
            packed,
            fg_packed,
        } = scratch;
        fg.clear();
        fg.resize(labels.len(), 0);
        if self.small_table.is_empty() {
            match self.background {
                Some(bg) => fg
                    .iter_mut()
                    .zip(labels)
                    .for_each(|(f, &l)| *f = (l != bg) as u8),
                None => fg.fill(1),
            }
        } else {
            hits.clear();
            hits.resize(labels.len(), 0);
            classify(labels, self.background, &self.small_table, fg, hits);
        }
        // Bit-packed output: the foreground is packed once and copied to every channel that is
        // just the foreground.
        let mut fg_packed_ready = false;
        for (rule, out) in self.rules.iter().zip(outs.mask.iter_mut()) {
            match rule {
                Rule::Zero => sink.store.zero(out),
                Rule::Foreground if sink.layout == MaskLayout::Bits => {
                    if !fg_packed_ready {
                        fg_packed.resize(bits::packed_len(fg.len()), 0);
                        bits::pack_into(fg, fg_packed);
                        fg_packed_ready = true;
                    }
                    sink.store.copy(out, fg_packed);
                }
                Rule::Foreground => sink.emit(out, fg, packed),
                Rule::KnockOut(bits) => {
                    channel.clear();
                    channel.extend(
                        fg.iter()
                            .zip(hits.iter())
                            .map(|(&f, &h)| f & ((h & bits) == 0) as u8),
                    );
                    sink.emit(out, channel, packed);
                }
                Rule::Except(ids) => {
                    channel.clear();
                    channel.extend(
                        fg.iter()
                            .zip(labels)
                            .map(|(&f, l)| f & ids.binary_search(l).is_err() as u8),
                    );
                    sink.emit(out, channel, packed);
                }
            }
        }
        if let Some(targets) = outs.targets.as_mut() {
            let rules = &self.target_rules;
            targets::write_targets(rules, labels, fg, targets, sink.store, channel);
        }
        sink.store.fence();
    }
}

/// One pass over a block: `fg[v] = labels[v] != background` and bit `i` of `hits[v]` set when
/// `labels[v] == table[i]`. Dispatches to a version with the table length as a constant, so
/// the per-voxel loop has no inner loop and vectorises.
#[inline(always)]
fn classify<T: Label>(
    labels: &[T],
    background: Option<T>,
    table: &[T],
    fg: &mut [u8],
    hits: &mut [u8],
) {
    #[inline(always)]
    fn fixed<T: Label, const K: usize>(
        labels: &[T],
        background: Option<T>,
        table: &[T],
        fg: &mut [u8],
        hits: &mut [u8],
    ) {
        let table: [T; K] = table.try_into().expect("table length is K");
        // A background no value can equal: compare against a table id instead and force 1.
        let (bg, any) = match background {
            Some(bg) => (bg, 0u8),
            None => (table[0], 1u8),
        };
        for ((f, h), &l) in fg.iter_mut().zip(hits.iter_mut()).zip(labels) {
            *f = (l != bg) as u8 | any;
            let mut bits = 0u8;
            for (i, &id) in table.iter().enumerate() {
                bits |= ((l == id) as u8) << i;
            }
            *h = bits;
        }
    }
    match table.len() {
        1 => fixed::<T, 1>(labels, background, table, fg, hits),
        2 => fixed::<T, 2>(labels, background, table, fg, hits),
        3 => fixed::<T, 3>(labels, background, table, fg, hits),
        4 => fixed::<T, 4>(labels, background, table, fg, hits),
        5 => fixed::<T, 5>(labels, background, table, fg, hits),
        6 => fixed::<T, 6>(labels, background, table, fg, hits),
        7 => fixed::<T, 7>(labels, background, table, fg, hits),
        8 => fixed::<T, 8>(labels, background, table, fg, hits),
        n => unreachable!("small tables have 1 to {SMALL_TABLE_MAX} entries, not {n}"),
    }
}

/// One block's slices of the outputs: a slice per channel of the mask, and of the targets when
/// the fused kernel runs.
struct BlockOut<'a> {
    mask: Vec<&'a mut [u8]>,
    targets: Option<Vec<&'a mut [u8]>>,
}

/// Where a block's channel bytes go: stored as bytes, or packed to bits first.
#[derive(Clone, Copy, Debug)]
struct Sink {
    store: Store,
    layout: MaskLayout,
}

impl Sink {
    /// Writes one channel's 0/1 bytes of a block to `out`; `packed` is scratch for the bits.
    #[inline(always)]
    fn emit(self, out: &mut [u8], bytes: &[u8], packed: &mut Vec<u8>) {
        match self.layout {
            MaskLayout::Bytes => self.store.copy(out, bytes),
            MaskLayout::Bits => {
                packed.resize(bits::packed_len(bytes.len()), 0);
                bits::pack_into(bytes, packed);
                self.store.copy(out, packed);
            }
        }
    }
}

/// Per-thread buffers of the block kernel, reused between blocks.
#[derive(Default)]
struct Scratch {
    /// A channel packed to bits.
    packed: Vec<u8>,
    /// The foreground packed to bits.
    fg_packed: Vec<u8>,
    /// `labels != background`, one byte per voxel.
    fg: Vec<u8>,
    /// Bit `i`: the voxel equals small-table entry `i`.
    hits: Vec<u8>,
    /// One channel's bytes before they are stored.
    channel: Vec<u8>,
}

/// Whether this CPU runs AVX2 code (detected once, then cached by the standard library).
fn avx2_detected() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::is_x86_feature_detected!("avx2");
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}

/// How the CPU engine runs: which stores, which instruction set. [`Tuning::auto`] picks the
/// best for the output size and the CPU; the tests run every variant this CPU supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuning {
    /// Plain or streaming stores.
    pub store: Store,
    /// Use the AVX2 build of the block kernel (ignored where the CPU lacks AVX2).
    pub avx2: bool,
}

impl Tuning {
    /// Streaming stores for large outputs, AVX2 where available.
    pub fn auto(output_bytes: usize) -> Self {
        Self {
            store: Store::for_output(output_bytes),
            avx2: avx2_detected(),
        }
    }

    /// Every variant this CPU can run.
    pub fn all() -> Vec<Self> {
        let simd: &[bool] = if avx2_detected() {
            &[false, true]
        } else {
            &[false]
        };
        [Store::Plain, Store::Streaming]
            .into_iter()
            .flat_map(|store| simd.iter().map(move |&avx2| Self { store, avx2 }))
            .collect()
    }
}

/// Computes the mask of `labels` (C order) into `out` (see [`Outputs`]), with the tuning
/// [`Tuning::auto`] picks for the output size: what [`crate::Engine::run`] does with a
/// [`MaskPlan`] on the CPU.
///
/// With targets, one pass writes both (the feeder's fused kernel): the target of channel `c`
/// is `label in ids(c)`, or `label != background` if `ids(c)` is empty (DaCapo's
/// `BinarizeArray`). Missing ids do not change targets; the mask says where to train them.
///
/// ```
/// use std::collections::BTreeSet;
/// use annomask::engine::{Engine, Outputs};
/// use annomask::{bits, Groupings, LabelSlice, MaskOptions, MaskPlan, MaskPolicy};
/// let groupings = Groupings::new([("mito", vec![3, 4]), ("all", vec![])])?;
/// let plan = MaskPlan::new(&groupings, &BTreeSet::from([4]),
///     &MaskOptions::default().policy(MaskPolicy::PerVoxel));
/// let labels = [0u32, 3, 4, 9];
/// let input = [LabelSlice::from(&labels[..])];
/// let (mut mask, mut targets) = (vec![0u8; 8], vec![0u8; 8]);
/// let out = Outputs::bytes(&mut mask).with_targets(&mut targets);
/// Engine::cpu().run(&plan, &input, &[4], out, false)?;
/// assert_eq!(mask,    [0, 1, 0, 1,   0, 1, 1, 1]);
/// assert_eq!(targets, [0, 1, 1, 0,   0, 1, 1, 1]);
/// // Bit-packed: channel `c` takes bytes `c * packed_len(n) ..`, voxel `i` at bit `i % 8`.
/// let mut packed = vec![0u8; 2 * bits::packed_len(4)];
/// Engine::cpu().run(&plan, &input, &[4], Outputs::bits(&mut packed), false)?;
/// assert_eq!(packed, [0b1010, 0b1110]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Panics
/// If an output does not hold `plan.num_channels() * out.layout.channel_len(labels.len())`
/// bytes, or targets are asked with [`MaskLayout::Bits`].
pub(crate) fn run(plan: &MaskPlan, labels: LabelSlice<'_>, out: Outputs<'_>) {
    let bytes = out.mask.len() + out.targets.as_ref().map_or(0, |t| t.len());
    run_tuned(plan, labels, out, Tuning::auto(bytes))
}

/// [`run`] with an explicit [`Tuning`] (every tuning gives the same bytes; the tests run each).
#[doc(hidden)]
pub fn run_tuned(plan: &MaskPlan, labels: LabelSlice<'_>, out: Outputs<'_>, tuning: Tuning) {
    let Outputs {
        mask,
        layout,
        targets,
    } = out;
    if let Some(targets) = &targets {
        assert_eq!(
            targets.len(),
            mask.len(),
            "targets and mask have the same size"
        );
        assert_eq!(
            layout,
            MaskLayout::Bytes,
            "targets are computed with the Bytes layout only"
        );
    }
    with_labels!(labels, LabelSlice, s => compute_typed(plan, s, mask, targets, layout, tuning))
}

/// A channel-major output of `n` bytes per channel cut into blocks of `block` bytes: for each
/// block, its run in every channel, in channel order. `n` and `block` must be positive.
pub(crate) fn channel_blocks(out: &mut [u8], n: usize, block: usize) -> Vec<Vec<&mut [u8]>> {
    let mut channels: Vec<_> = out.chunks_mut(n).map(|c| c.chunks_mut(block)).collect();
    (0..n.div_ceil(block))
        .map(|_| {
            channels
                .iter_mut()
                .map(|c| c.next().expect("every channel has n bytes"))
                .collect()
        })
        .collect()
}

fn compute_typed<T: Label>(
    plan: &MaskPlan,
    labels: &[T],
    out: &mut [u8],
    targets: Option<&mut [u8]>,
    layout: MaskLayout,
    tuning: Tuning,
) {
    let n = labels.len();
    let channel_len = layout.channel_len(n);
    assert_eq!(
        out.len(),
        plan.num_channels() * channel_len,
        "output holds {} bytes, the {layout:?} mask needs {} channels x {channel_len}",
        out.len(),
        plan.num_channels(),
    );
    if n == 0 || plan.num_channels() == 0 {
        return;
    }
    let typed = TypedPlan::<T>::new(plan);
    let block_out = layout.channel_len(BLOCK_VOXELS);
    let mask_blocks = channel_blocks(out, channel_len, block_out);
    let mut target_blocks = targets.map(|t| channel_blocks(t, channel_len, block_out).into_iter());
    let blocks: Vec<(&[T], BlockOut)> = labels
        .chunks(BLOCK_VOXELS)
        .zip(mask_blocks)
        .map(|(block, mask)| {
            let targets = target_blocks
                .as_mut()
                .map(|t| t.next().expect("one per block"));
            (block, BlockOut { mask, targets })
        })
        .collect();
    blocks.into_par_iter().for_each(|(block, mut outs)| {
        SCRATCH
            .with_borrow_mut(|scratch| typed.run_block(tuning, layout, block, &mut outs, scratch))
    });
}

thread_local! {
    /// Each worker thread's scratch buffers, kept between blocks and between calls (a small
    /// mask should not pay for allocating and faulting them in every time).
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
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
        run(
            &plan,
            LabelSlice::from(&labels[..]),
            Outputs::bytes(&mut out),
        );
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
        run(
            &plan,
            LabelSlice::from(&labels[..]),
            Outputs::bytes(&mut out),
        );
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
        run(
            &plan,
            LabelSlice::from(&labels[..]),
            Outputs::bytes(&mut out),
        );
        for (i, &l) in labels.iter().enumerate() {
            assert_eq!(out[i], (l == 1) as u8, "a at {i}");
            assert_eq!(out[n + i], (l != 0) as u8, "b at {i}");
        }
    }
}
