//! The CPU twin of `shaders/mask.wgsl`: the same names, bindings and steps, one invocation at a
//! time. It is the readable specification of the shader, and the tests run it on the same
//! buffers as the GPU (`compute_into` uses the engine's own layout functions), so a mismatch
//! points at the shader or at the host side.

use super::layout::{self, Params, WORKGROUP_SIZE};
use crate::label::LabelSlice;
use crate::plan::MaskPlan;

/// The shader's bindings: `params`, `labels`, `plan`, `mask`.
pub struct Bindings<'a> {
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
pub struct Constants {
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

/// `fn table_id(i)`.
fn table_id(b: &Bindings, i: u32) -> [u32; 2] {
    let base = b.params.words_per_set + 2 * i;
    [at(b.plan, base), at(b.plan, base + 1)]
}

/// `fn find(l)`.
fn find(b: &Bindings, l: [u32; 2]) -> u32 {
    let (mut lo, mut hi) = (0, b.params.table_len);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if less(table_id(b, mid), l) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if lo < b.params.table_len && table_id(b, lo) == l {
        lo + 1
    } else {
        0
    }
}

/// `fn has_channel(base, c)`.
fn has_channel(b: &Bindings, base: u32, c: u32) -> bool {
    (at(b.plan, base + c / 32) >> (c % 32)) & 1 == 1
}

/// `fn main(gid)`: one invocation.
pub fn main(consts: &Constants, b: &mut Bindings, gid: [u32; 3]) {
    let q = gid[1] * b.params.row_quads + gid[0];
    if q >= b.params.quads {
        return;
    }
    let mut foreground = [false; 4];
    let mut hit = [0u32; 4];
    for k in 0..4 {
        let l = label(consts, b, q, k);
        foreground[k as usize] = 4 * q + k < b.params.voxels && l != b.params.background;
        if foreground[k as usize] && b.params.table_len > 0 {
            hit[k as usize] = find(b, l);
        }
    }
    let sets = b.params.words_per_set + 2 * b.params.table_len;
    for c in 0..b.params.channels {
        let mut word = 0u32;
        if !has_channel(b, 0, c) {
            for k in 0..4usize {
                let knocked_out =
                    hit[k] > 0 && has_channel(b, sets + (hit[k] - 1) * b.params.words_per_set, c);
                if foreground[k] && !knocked_out {
                    word |= 1 << (8 * k);
                }
            }
        }
        b.mask[(c * b.params.quads + q) as usize] = word;
    }
}

/// Runs every invocation of a dispatch of `grid` workgroups.
pub fn dispatch(consts: &Constants, b: &mut Bindings, grid: (u32, u32)) {
    for y in 0..grid.1 {
        for x in 0..grid.0 * WORKGROUP_SIZE {
            main(consts, b, [x, y, 0]);
        }
    }
}

/// The whole engine with the twin in place of the GPU: the same blocks, uploads, params and
/// scatter as [`super::GpuEngine`], blocks of at most `max_block_voxels`.
pub fn compute_into(
    plan: &MaskPlan,
    labels: LabelSlice<'_>,
    out: &mut [u8],
    max_block_voxels: usize,
) {
    let n = labels.len();
    assert_eq!(out.len(), n * plan.num_channels(), "output size");
    if n == 0 || plan.num_channels() == 0 {
        return;
    }
    let (label_bits, signed) = layout::label_constants(labels.dtype());
    let constants = Constants { label_bits, signed };
    let plan_words = layout::plan_words(plan);
    for (start, voxels) in layout::blocks(n, max_block_voxels) {
        let block = labels.slice(start..start + voxels);
        let params = layout::params(plan, voxels);
        let (prefix, tail) = layout::label_upload(&block);
        let mut words: Vec<u32> = prefix
            .chunks_exact(4)
            .map(|w| u32::from_ne_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        words.extend(tail.map(u32::from_ne_bytes));
        let mut mask = vec![0u32; plan.num_channels() * params.quads as usize];
        let mut b = Bindings {
            params: &params,
            labels: &words,
            plan: &plan_words,
            mask: &mut mask,
        };
        dispatch(&constants, &mut b, layout::grid(params.quads as usize));
        layout::scatter(out, n, start, voxels, bytemuck::cast_slice(&mask));
    }
}
