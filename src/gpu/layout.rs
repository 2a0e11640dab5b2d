//! The data layout shared by the label-array kernel and its CPU twin: the `Params` uniform, the
//! plan words, label words, blocks and the dispatch grid. Everything here is plain data; both
//! engines call the same functions, so the twin checks the host side of the GPU path too. The
//! crop-group kernel's layout is [`cellmap`]; it reuses the blocks, grid, uploads and scatter
//! of this one.

use bytemuck::{Pod, Zeroable};

pub mod cellmap;

use crate::bits::{MaskLayout, packed_len};
use crate::label::{LabelDtype, LabelSlice};
use crate::labels::plan::MaskPlan;

/// Invocations per workgroup (`@workgroup_size` in `shaders/mask.wgsl`).
pub const WORKGROUP_SIZE: u32 = 256;

/// The most workgroups a dispatch may have along one dimension (WebGPU's limit).
pub(crate) const MAX_WORKGROUPS_PER_DIMENSION: u32 = 65535;

/// The `Params` uniform of `shaders/mask.wgsl`, field for field.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub(crate) struct Params {
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
    /// Output words per channel: `quads` (bytes) or `ceil(voxels / 32)` (bits).
    pub stride: u32,
    /// Background id, (low, high).
    pub background: [u32; 2],
    /// Invocations per row of the dispatch grid.
    pub row_width: u32,
    /// Entries of the target table (`main_fused` only).
    pub target_len: u32,
    /// Padding.
    pub _pad2: u32,
    /// Padding.
    pub _pad3: u32,
}

/// The pipeline constants of a label dtype: `(LABEL_BITS, SIGNED)`.
pub fn label_constants(dtype: LabelDtype) -> (u32, bool) {
    (8 * dtype.size() as u32, dtype.is_signed())
}

/// What one dispatch of `mask.wgsl` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kernel {
    /// The mask, one byte or one bit per voxel (`main`, `main_packed`).
    Mask(MaskLayout),
    /// The mask and the targets, one byte per voxel each (`main_fused`).
    Fused,
}

impl Kernel {
    /// The entry point.
    pub fn entry_point(self) -> &'static str {
        match self {
            Self::Mask(MaskLayout::Bytes) => "main",
            Self::Mask(MaskLayout::Bits) => "main_packed",
            Self::Fused => "main_fused",
        }
    }

    /// The layout of each output section.
    pub fn layout(self) -> MaskLayout {
        match self {
            Self::Mask(layout) => layout,
            Self::Fused => MaskLayout::Bytes,
        }
    }

    /// Output sections: 1 (mask) or 2 (mask, then targets).
    pub fn sections(self) -> usize {
        match self {
            Self::Mask(_) => 1,
            Self::Fused => 2,
        }
    }
}

impl From<MaskLayout> for Kernel {
    fn from(layout: MaskLayout) -> Self {
        Self::Mask(layout)
    }
}

/// The plan buffer: zeroed set, sorted table ids as (low, high), table channel sets; then the
/// any-foreground set, target ids and target channel sets (read by `main_fused` only).
pub(crate) fn plan_words(plan: &MaskPlan) -> Vec<u32> {
    let w = plan.words_per_set();
    let table = plan.voxel_table();
    let mut zeroed = crate::labels::plan::ChannelSet::new(plan.num_channels());
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
    words.extend_from_slice(plan.any_foreground().words());
    for t in plan.target_table() {
        words.extend_from_slice(&split(t.id));
    }
    for t in plan.target_table() {
        words.extend_from_slice(t.channels.words());
    }
    words
}

/// A 64-bit id as (low, high) words.
pub(crate) fn split(id: u64) -> [u32; 2] {
    [id as u32, (id >> 32) as u32]
}

/// Number of quads of a block of `voxels`.
pub(crate) fn quads(voxels: usize) -> usize {
    voxels.div_ceil(4)
}

/// The dispatch grid `(x, y)` in workgroups for `invocations` invocations: x at most 65535.
pub(crate) fn grid(invocations: usize) -> (u32, u32) {
    let groups = invocations.div_ceil(WORKGROUP_SIZE as usize).max(1);
    let x = groups.min(MAX_WORKGROUPS_PER_DIMENSION as usize);
    (x as u32, groups.div_ceil(x) as u32)
}

/// Output words per channel of a block of `voxels`: one per quad (bytes) or per 32 voxels
/// (bits). Also the number of invocations of the dispatch.
pub(crate) fn stride(voxels: usize, layout: MaskLayout) -> usize {
    match layout {
        MaskLayout::Bytes => quads(voxels),
        MaskLayout::Bits => voxels.div_ceil(32),
    }
}

/// Bytes of labels the kernel may read for a block of `voxels` (whole invocations: quads for
/// bytes, 32 voxels for bits). The buffer must hold this many bytes.
pub(crate) fn label_bytes(voxels: usize, dtype: LabelDtype, layout: MaskLayout) -> usize {
    let whole = match layout {
        MaskLayout::Bytes => 4 * quads(voxels),
        MaskLayout::Bits => 32 * stride(voxels, layout),
    };
    whole * dtype.size()
}

/// The uniform for a block of `voxels` voxels.
pub(crate) fn params(plan: &MaskPlan, voxels: usize, kernel: Kernel) -> Params {
    let invocations = stride(voxels, kernel.layout());
    let (x, _) = grid(invocations);
    Params {
        voxels: voxels as u32,
        quads: quads(voxels) as u32,
        channels: plan.num_channels() as u32,
        words_per_set: plan.words_per_set() as u32,
        table_len: plan.voxel_table().len() as u32,
        stride: invocations as u32,
        background: split(plan.background()),
        row_width: x * WORKGROUP_SIZE,
        target_len: plan.target_table().len() as u32,
        ..Params::default()
    }
}

/// Every block but the last is a multiple of this many voxels: whole quads, whole packed words.
pub(crate) const BLOCK_QUANTUM: usize = 32;

/// The blocks `(start, voxels)` that cover `n` voxels, each at most `max_voxels` (rounded
/// down to a multiple of [`BLOCK_QUANTUM`], at least one quantum).
pub(crate) fn blocks(n: usize, max_voxels: usize) -> impl Iterator<Item = (usize, usize)> {
    let step = (max_voxels / BLOCK_QUANTUM * BLOCK_QUANTUM).max(BLOCK_QUANTUM);
    (0..n)
        .step_by(step)
        .map(move |start| (start, step.min(n - start)))
}

/// The bytes of `labels` to upload for a block, split into a prefix whose length is a multiple
/// of 4 and, when the block's bytes do not end on a word, a zero-padded last word.
pub(crate) fn label_upload<'a>(labels: &LabelSlice<'a>) -> (&'a [u8], Option<[u8; 4]>) {
    let bytes = labels.as_bytes();
    let whole = bytes.len() / 4 * 4;
    let tail = (whole < bytes.len()).then(|| {
        let mut word = [0u8; 4];
        word[..bytes.len() - whole].copy_from_slice(&bytes[whole..]);
        word
    });
    (&bytes[..whole], tail)
}

/// Copies a block's mask (channel-major, each channel `4 * stride` bytes) into the whole
/// channel-major output of `n` voxels per channel, at voxel `start` (a multiple of 8).
pub(crate) fn scatter(
    out: &mut [u8],
    n: usize,
    start: usize,
    voxels: usize,
    layout: MaskLayout,
    block_mask: &[u8],
) {
    let block_stride = 4 * stride(voxels, layout);
    let (channel_len, at, len) = match layout {
        MaskLayout::Bytes => (n, start, voxels),
        MaskLayout::Bits => (packed_len(n), start / 8, packed_len(voxels)),
    };
    for (c, channel) in out.chunks_mut(channel_len).enumerate() {
        channel[at..at + len]
            .copy_from_slice(&block_mask[c * block_stride..c * block_stride + len]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_match_the_wgsl_layout() {
        assert_eq!(std::mem::size_of::<Params>(), 48);
        assert_eq!(std::mem::offset_of!(Params, background), 24);
        assert_eq!(std::mem::offset_of!(Params, row_width), 32);
    }

    #[test]
    fn grid_stays_within_limits() {
        assert_eq!(grid(1), (1, 1));
        assert_eq!(grid(256 * 65535), (65535, 1));
        assert_eq!(grid(256 * 65535 + 1), (65535, 2));
    }

    #[test]
    fn blocks_are_whole_quads_but_the_last() {
        let b: Vec<_> = blocks(75, 40).collect();
        assert_eq!(b, [(0, 32), (32, 32), (64, 11)]);
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
