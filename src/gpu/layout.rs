//! The data layout shared by the GPU engine and its CPU twin: the `Params` uniform, the plan
//! words, label words, blocks and the dispatch grid. Everything here is plain data; both
//! engines call the same functions, so the twin checks the host side of the GPU path too.

use bytemuck::{Pod, Zeroable};

use crate::label::{LabelDtype, LabelSlice};
use crate::plan::MaskPlan;

/// Invocations per workgroup (`@workgroup_size` in `shaders/mask.wgsl`).
pub const WORKGROUP_SIZE: u32 = 256;

/// The most workgroups a dispatch may have along one dimension (WebGPU's limit).
pub const MAX_WORKGROUPS_PER_DIMENSION: u32 = 65535;

/// The `Params` uniform of `shaders/mask.wgsl`, field for field.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct Params {
    /// Real voxels in the block.
    pub voxels: u32,
    /// `ceil(voxels / 4)`: quads, and the stride of one channel in output words.
    pub quads: u32,
    /// Number of channels.
    pub channels: u32,
    /// `u32` words per channel set.
    pub words_per_set: u32,
    /// Entries of the missing-id table the block applies.
    pub table_len: u32,
    /// Padding.
    pub _pad0: u32,
    /// Background id, (low, high).
    pub background: [u32; 2],
    /// Quads per row of the dispatch grid.
    pub row_quads: u32,
    /// Padding.
    pub _pad1: u32,
    /// Padding.
    pub _pad2: u32,
    /// Padding.
    pub _pad3: u32,
}

/// The pipeline constants of a label dtype: `(LABEL_BITS, SIGNED)`.
pub fn label_constants(dtype: LabelDtype) -> (u32, bool) {
    (8 * dtype.size() as u32, dtype.is_signed())
}

/// The plan buffer: zeroed set, sorted table ids as (low, high), table channel sets.
pub fn plan_words(plan: &MaskPlan) -> Vec<u32> {
    let w = plan.words_per_set();
    let table = plan.voxel_table();
    let mut zeroed = crate::plan::ChannelSet::new(plan.num_channels());
    for c in (0..plan.num_channels()).filter(|&c| plan.zeroed(c)) {
        zeroed.insert(c);
    }
    let mut words = Vec::with_capacity(w + table.len() * (2 + w));
    words.extend_from_slice(zeroed.words());
    for m in table {
        words.extend_from_slice(&split(m.id));
    }
    for m in table {
        words.extend_from_slice(m.channels.words());
    }
    words
}

/// A 64-bit id as (low, high) words.
pub fn split(id: u64) -> [u32; 2] {
    [id as u32, (id >> 32) as u32]
}

/// Number of quads of a block of `voxels`.
pub fn quads(voxels: usize) -> usize {
    voxels.div_ceil(4)
}

/// The dispatch grid `(x, y)` in workgroups for `quads` quads: x at most 65535.
pub fn grid(quads: usize) -> (u32, u32) {
    let groups = quads.div_ceil(WORKGROUP_SIZE as usize).max(1);
    let x = groups.min(MAX_WORKGROUPS_PER_DIMENSION as usize);
    (x as u32, groups.div_ceil(x) as u32)
}

/// The uniform for a block of `voxels` voxels.
pub fn params(plan: &MaskPlan, voxels: usize) -> Params {
    let q = quads(voxels);
    let (x, _) = grid(q);
    Params {
        voxels: voxels as u32,
        quads: q as u32,
        channels: plan.num_channels() as u32,
        words_per_set: plan.words_per_set() as u32,
        table_len: plan.voxel_table().len() as u32,
        background: split(plan.background()),
        row_quads: x * WORKGROUP_SIZE,
        ..Params::default()
    }
}

/// Bytes of one quad of labels of `dtype`.
pub fn quad_bytes(dtype: LabelDtype) -> usize {
    4 * dtype.size()
}

/// The blocks `(start, voxels)` that cover `n` voxels, each at most `max_voxels` (rounded
/// down to a multiple of 4, at least 4), so every block but the last is whole quads.
pub fn blocks(n: usize, max_voxels: usize) -> impl Iterator<Item = (usize, usize)> {
    let step = (max_voxels / 4 * 4).max(4);
    (0..n)
        .step_by(step)
        .map(move |start| (start, step.min(n - start)))
}

/// The bytes of `labels` to upload for a block, split into a prefix whose length is a multiple
/// of 4 and, when the block's bytes do not end on a word, a zero-padded last word.
pub fn label_upload<'a>(labels: &LabelSlice<'a>) -> (&'a [u8], Option<[u8; 4]>) {
    let bytes = labels.as_bytes();
    let whole = bytes.len() / 4 * 4;
    let tail = (whole < bytes.len()).then(|| {
        let mut word = [0u8; 4];
        word[..bytes.len() - whole].copy_from_slice(&bytes[whole..]);
        word
    });
    (&bytes[..whole], tail)
}

/// Copies a block's mask (channel-major, each channel `4 * quads` bytes) into the whole
/// channel-major output of `n` voxels per channel, at voxel `start`.
pub fn scatter(out: &mut [u8], n: usize, start: usize, voxels: usize, block_mask: &[u8]) {
    let stride = 4 * quads(voxels);
    for (c, channel) in out.chunks_mut(n).enumerate() {
        channel[start..start + voxels]
            .copy_from_slice(&block_mask[c * stride..c * stride + voxels]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_match_the_wgsl_layout() {
        assert_eq!(std::mem::size_of::<Params>(), 48);
        assert_eq!(std::mem::offset_of!(Params, background), 24);
        assert_eq!(std::mem::offset_of!(Params, row_quads), 32);
    }

    #[test]
    fn grid_stays_within_limits() {
        assert_eq!(grid(1), (1, 1));
        assert_eq!(grid(256 * 65535), (65535, 1));
        assert_eq!(grid(256 * 65535 + 1), (65535, 2));
    }

    #[test]
    fn blocks_are_whole_quads_but_the_last() {
        let b: Vec<_> = blocks(23, 10).collect();
        assert_eq!(b, [(0, 8), (8, 8), (16, 7)]);
        assert_eq!(blocks(3, 1).collect::<Vec<_>>(), [(0, 3)]);
        assert_eq!(blocks(0, 8).count(), 0);
    }

    #[test]
    fn upload_pads_the_last_word() {
        let v = [1u8, 2, 3, 4, 5, 6];
        let (prefix, tail) = label_upload(&LabelSlice::from(&v[..]));
        assert_eq!((prefix, tail), (&v[..4], Some([5, 6, 0, 0])));
        let w = [1u16, 2];
        assert_eq!(label_upload(&LabelSlice::from(&w[..])).1, None);
    }
}
