//! The CPU twin of `shaders/mask.wgsl`: the same names, bindings and steps, one invocation at a
//! time. It is the readable specification of the shader, and the tests run it on the same
//! buffers as the GPU (`compute_into` uses the engine's own layout functions), so a mismatch
//! points at the shader or at the host side.

use crate::bits::MaskLayout;
use crate::gpu::layout::{self, Kernel, Params, WORKGROUP_SIZE};
use crate::label::LabelSlice;
use crate::labels::plan::MaskPlan;

/// The shader's bindings: `params`, `labels`, `plan`, `mask`.
pub(crate) struct Bindings<'a> {
    /// `@binding(0)`
    pub params: &'a Params,
    /// `@binding(1)`
    pub labels: &'a [u32],
    /// `@binding(2)`
    pub plan: &'a [u32],
    /// `@binding(3)`
    pub mask: &'a mut [u32],
}

/// The pipeline constants.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Constants {
    /// `LABEL_BITS`
    pub label_bits: u32,
    /// `SIGNED`
    pub signed: bool,
}

/// Out-of-range reads return 0, like the robust buffer access a GPU gives a shader.
pub(crate) fn at(buffer: &[u32], i: u32) -> u32 {
    buffer.get(i as usize).copied().unwrap_or(0)
}

/// `extractBits` of WGSL, for u32 (zero-extended) and i32 (sign-extended).
pub(crate) fn extract_bits(word: u32, offset: u32, count: u32, signed: bool) -> u32 {
    let field = (word >> offset) & (u32::MAX >> (32 - count));
    if signed && (field >> (count - 1)) & 1 == 1 {
        field | !(u32::MAX >> (32 - count))
    } else {
        field
    }
}

/// `fn label(q, k)`.
fn label(consts: &Constants, b: &Bindings, q: u32, k: u32) -> [u32; 2] {
    if consts.label_bits == 64 {
        return [at(b.labels, 8 * q + 2 * k), at(b.labels, 8 * q + 2 * k + 1)];
    }
    let lo = if consts.label_bits == 32 {
        at(b.labels, 4 * q + k)
    } else {
        let bit = (4 * q + k) * consts.label_bits;
        let word = at(b.labels, bit / 32);
        let offset = bit % 32;
        extract_bits(word, offset, consts.label_bits, consts.signed)
    };
    let hi = if consts.signed && lo >> 31 == 1 {
        u32::MAX
    } else {
        0
    };
    [lo, hi]
}

/// `fn less(a, b)`.
fn less(a: [u32; 2], b: [u32; 2]) -> bool {
    a[1] < b[1] || (a[1] == b[1] && a[0] < b[0])
}

/// `fn id_at(base, i)`.
fn id_at(b: &Bindings, base: u32, i: u32) -> [u32; 2] {
    [at(b.plan, base + 2 * i), at(b.plan, base + 2 * i + 1)]
}

/// `fn search(base, len, l)`.
fn search(b: &Bindings, base: u32, len: u32, l: [u32; 2]) -> u32 {
    let (mut lo, mut hi) = (0, len);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if less(id_at(b, base, mid), l) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if lo < len && id_at(b, base, lo) == l {
        lo + 1
    } else {
        0
    }
}

/// `fn find(l)`.
fn find(b: &Bindings, l: [u32; 2]) -> u32 {
    search(b, b.params.words_per_set, b.params.table_len, l)
}

/// `fn has_channel(base, c)`.
fn has_channel(b: &Bindings, base: u32, c: u32) -> bool {
    (at(b.plan, base + c / 32) >> (c % 32)) & 1 == 1
}

/// `fn classify(v, l)`: (foreground, 1 + table index or 0).
fn classify(b: &Bindings, v: u32, l: [u32; 2]) -> [u32; 2] {
    let foreground = v < b.params.voxels && l != b.params.background;
    let hit = if foreground && b.params.table_len > 0 {
        find(b, l)
    } else {
        0
    };
    [foreground as u32, hit]
}

/// `fn knocked_out(hit, c)`.
fn knocked_out(b: &Bindings, hit: u32, c: u32) -> bool {
    let sets = b.params.words_per_set + 2 * b.params.table_len;
    hit > 0 && has_channel(b, sets + (hit - 1) * b.params.words_per_set, c)
}

/// `fn main(gid)`: one invocation, 4 voxels, one byte each.
pub(crate) fn main(consts: &Constants, b: &mut Bindings, gid: [u32; 3]) {
    let q = gid[1] * b.params.row_width + gid[0];
    if q >= b.params.stride {
        return;
    }
    let mut voxel = [[0u32; 2]; 4];
    for k in 0..4 {
        voxel[k as usize] = classify(b, 4 * q + k, label(consts, b, q, k));
    }
    for c in 0..b.params.channels {
        let mut word = 0u32;
        if !has_channel(b, 0, c) {
            for (k, v) in voxel.iter().enumerate() {
                if v[0] == 1 && !knocked_out(b, v[1], c) {
                    word |= 1 << (8 * k);
                }
            }
        }
        b.mask[(c * b.params.stride + q) as usize] = word;
    }
}

/// `fn main_packed(gid)`: one invocation, 32 voxels, one bit each.
pub(crate) fn main_packed(consts: &Constants, b: &mut Bindings, gid: [u32; 3]) {
    let w = gid[1] * b.params.row_width + gid[0];
    if w >= b.params.stride {
        return;
    }
    let mut foreground = 0u32;
    let mut hit = [0u32; 32];
    let mut any_hit = false;
    for bit in 0..32 {
        let q = 8 * w + bit / 4;
        let voxel = classify(b, 32 * w + bit, label(consts, b, q, bit % 4));
        foreground |= voxel[0] << bit;
        hit[bit as usize] = voxel[1];
        any_hit = any_hit || voxel[1] > 0;
    }
    for c in 0..b.params.channels {
        let mut word = 0u32;
        if !has_channel(b, 0, c) {
            word = foreground;
            if any_hit {
                for bit in 0..32 {
                    if knocked_out(b, hit[bit as usize], c) {
                        word &= !(1 << bit);
                    }
                }
            }
        }
        b.mask[(c * b.params.stride + w) as usize] = word;
    }
}

/// `fn targets_base()`.
fn targets_base(b: &Bindings) -> u32 {
    b.params.words_per_set * (1 + b.params.table_len) + 2 * b.params.table_len
}

/// `fn main_fused(gid)`: one invocation, 4 voxels, their mask and target bytes.
pub(crate) fn main_fused(consts: &Constants, b: &mut Bindings, gid: [u32; 3]) {
    let q = gid[1] * b.params.row_width + gid[0];
    if q >= b.params.stride {
        return;
    }
    let any_foreground = targets_base(b);
    let target_ids = any_foreground + b.params.words_per_set;
    let target_sets = target_ids + 2 * b.params.target_len;
    let mut voxel = [[0u32; 2]; 4];
    let mut target_hit = [0u32; 4];
    for k in 0..4 {
        let l = label(consts, b, q, k);
        voxel[k as usize] = classify(b, 4 * q + k, l);
        if 4 * q + k < b.params.voxels {
            target_hit[k as usize] = search(b, target_ids, b.params.target_len, l);
        }
    }
    for c in 0..b.params.channels {
        let (mut word, mut target_word) = (0u32, 0u32);
        let zeroed = has_channel(b, 0, c);
        let foreground_channel = has_channel(b, any_foreground, c);
        for k in 0..4usize {
            if !zeroed && voxel[k][0] == 1 && !knocked_out(b, voxel[k][1], c) {
                word |= 1 << (8 * k);
            }
            let listed = target_hit[k] > 0
                && has_channel(
                    b,
                    target_sets + (target_hit[k] - 1) * b.params.words_per_set,
                    c,
                );
            if listed || (foreground_channel && voxel[k][0] == 1) {
                target_word |= 1 << (8 * k);
            }
        }
        b.mask[(c * b.params.stride + q) as usize] = word;
        b.mask[((b.params.channels + c) * b.params.stride + q) as usize] = target_word;
    }
}

/// Runs every invocation of a dispatch of `grid` workgroups of `kernel`'s entry point.
pub(crate) fn dispatch(consts: &Constants, b: &mut Bindings, kernel: Kernel, grid: (u32, u32)) {
    let entry = match kernel {
        Kernel::Mask(MaskLayout::Bytes) => main,
        Kernel::Mask(MaskLayout::Bits) => main_packed,
        Kernel::Fused => main_fused,
    };
    for y in 0..grid.1 {
        for x in 0..grid.0 * WORKGROUP_SIZE {
            entry(consts, b, [x, y, 0]);
        }
    }
}

/// The whole engine with the twin in place of the GPU: the same blocks, uploads, params and
/// scatter as [`crate::gpu::GpuEngine`], blocks of at most `max_block_voxels`. `out` is laid out as
/// `layout` says (bytes, or bits as in [`crate::bits`]).
pub fn compute_into(
    plan: &MaskPlan,
    labels: LabelSlice<'_>,
    out: &mut [u8],
    layout: MaskLayout,
    max_block_voxels: usize,
) {
    run(
        plan,
        labels,
        &mut [out],
        Kernel::Mask(layout),
        max_block_voxels,
    )
}

/// The mask and the targets through the twin of `main_fused` (see
/// [`crate::engine::Outputs`] for what they hold).
pub fn compute_fused_into(
    plan: &MaskPlan,
    labels: LabelSlice<'_>,
    mask: &mut [u8],
    targets: &mut [u8],
    max_block_voxels: usize,
) {
    run(
        plan,
        labels,
        &mut [mask, targets],
        Kernel::Fused,
        max_block_voxels,
    )
}

/// The block loop of the twin engine: `outs` holds one output per section of `kernel`.
fn run(
    plan: &MaskPlan,
    labels: LabelSlice<'_>,
    outs: &mut [&mut [u8]],
    kernel: Kernel,
    max_block_voxels: usize,
) {
    let n = labels.len();
    let layout = kernel.layout();
    assert_eq!(outs.len(), kernel.sections(), "one output per section");
    for out in outs.iter() {
        assert_eq!(
            out.len(),
            layout.channel_len(n) * plan.num_channels(),
            "output size"
        );
    }
    if n == 0 || plan.num_channels() == 0 {
        return;
    }
    let (label_bits, signed) = layout::label_constants(labels.dtype());
    let constants = Constants { label_bits, signed };
    let plan_words = layout::plan_words(plan);
    for (start, voxels) in layout::blocks(n, max_block_voxels) {
        let block = labels.slice(start..start + voxels);
        let params = layout::params(plan, voxels, kernel);
        let (prefix, tail) = layout::label_upload(&block);
        let mut words: Vec<u32> = prefix
            .chunks_exact(4)
            .map(|w| u32::from_ne_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        words.extend(tail.map(u32::from_ne_bytes));
        words.resize(layout::label_bytes(voxels, block.dtype(), layout) / 4, 0);
        let section = plan.num_channels() * params.stride as usize;
        let mut mask = vec![0u32; kernel.sections() * section];
        let mut b = Bindings {
            params: &params,
            labels: &words,
            plan: &plan_words,
            mask: &mut mask,
        };
        dispatch(
            &constants,
            &mut b,
            kernel,
            layout::grid(params.stride as usize),
        );
        let bytes: &[u8] = bytemuck::cast_slice(&mask);
        for (out, part) in outs.iter_mut().zip(bytes.chunks(4 * section)) {
            layout::scatter(out, n, start, voxels, layout, part);
        }
    }
}
