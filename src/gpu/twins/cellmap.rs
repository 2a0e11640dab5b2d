//! The CPU twin of `shaders/cellmap.wgsl`: the same names, bindings and steps, one invocation at
//! a time. It is the readable specification of the shader; the tests run it on the same buffers
//! as the GPU (`compute_into` uses the engine's own layout functions), so a mismatch points at
//! the shader or at the host side.

use super::mask::{at, extract_bits};
use crate::bits::MaskLayout;
use crate::cellmap::CropPlan;
use crate::gpu::layout::cellmap::{
    self as layout, CLASS_WORDS, HAS_ABSENT, HAS_PRESENT, HAS_UNKNOWN, INSTANCE, Params, SIGNED,
};
use crate::gpu::layout::{WORKGROUP_SIZE, blocks, grid, label_upload, scatter};
use crate::label::{LabelDtype, LabelSlice};

/// The shader's bindings: `params`, `values`, `plan`, `out`.
pub(crate) struct Bindings<'a> {
    /// `@binding(0)`
    pub params: &'a Params,
    /// `@binding(1)`
    pub values: &'a [u32],
    /// `@binding(2)`
    pub plan: &'a [u32],
    /// `@binding(3)`
    pub out: &'a mut [u32],
}

/// `fn record(k)`.
fn record(b: &Bindings, k: u32) -> u32 {
    b.params.words_per_set + CLASS_WORDS as u32 * k
}

/// `fn code(k, at)`.
fn code(b: &Bindings, k: u32, offset: u32) -> [u32; 2] {
    let r = record(b, k);
    [at(b.plan, r + offset), at(b.plan, r + offset + 1)]
}

/// `fn value(k, q, j)`.
fn value(b: &Bindings, k: u32, q: u32, j: u32) -> [u32; 2] {
    let r = record(b, k);
    let base = b.params.quads * at(b.plan, r);
    let bits = at(b.plan, r + 1);
    let signed = at(b.plan, r + 2) & SIGNED != 0;
    let i = 4 * q + j;
    if bits == 64 {
        return [at(b.values, base + 2 * i), at(b.values, base + 2 * i + 1)];
    }
    let lo = if bits == 32 {
        at(b.values, base + i)
    } else {
        let bit = i * bits;
        let word = at(b.values, base + bit / 32);
        extract_bits(word, bit % 32, bits, signed)
    };
    let hi = if signed && lo >> 31 == 1 { u32::MAX } else { 0 };
    [lo, hi]
}

/// `fn is_code(k, flag, at, v)`.
fn is_code(b: &Bindings, k: u32, flag: u32, offset: u32, v: [u32; 2]) -> bool {
    at(b.plan, record(b, k) + 2) & flag != 0 && code(b, k, offset) == v
}

/// `fn is_unknown(k, v)`.
fn is_unknown(b: &Bindings, k: u32, v: [u32; 2]) -> bool {
    is_code(b, k, HAS_UNKNOWN, 7, v)
}

/// `fn is_positive(k, v)`.
fn is_positive(b: &Bindings, k: u32, v: [u32; 2]) -> bool {
    if at(b.plan, record(b, k) + 2) & INSTANCE != 0 {
        return !is_code(b, k, HAS_ABSENT, 3, v)
            && !is_code(b, k, HAS_PRESENT, 5, v)
            && !is_unknown(b, k, v);
    }
    is_code(b, k, HAS_PRESENT, 5, v)
}

/// `fn has_channel(base, c)`.
fn has_channel(b: &Bindings, base: u32, c: u32) -> bool {
    (at(b.plan, base + c / 32) >> (c % 32)) & 1 == 1
}

/// `fn main(gid)`: one invocation.
pub(crate) fn main(b: &mut Bindings, gid: [u32; 3]) {
    let p = *b.params;
    let q = gid[1] * p.row_quads + gid[0];
    if q >= p.quads {
        return;
    }
    let mut real = 0u32;
    for j in 0..4 {
        if 4 * q + j < p.voxels {
            real |= 1 << (8 * j);
        }
    }
    let targets = p.channels * p.quads;
    for c in 0..p.channels {
        let word = if has_channel(b, 0, c) { 0 } else { real };
        b.out[(c * p.quads + q) as usize] = word;
        if p.targets == 1 {
            b.out[(targets + c * p.quads + q) as usize] = 0;
        }
    }
    let sets = p.words_per_set + CLASS_WORDS as u32 * p.classes;
    for k in 0..p.classes {
        let mut unknown = 0u32;
        let mut positive = 0u32;
        for j in 0..4 {
            if 4 * q + j < p.voxels {
                let v = value(b, k, q, j);
                if is_unknown(b, k, v) {
                    unknown |= 1 << (8 * j);
                }
                if p.targets == 1 && is_positive(b, k, v) {
                    positive |= 1 << (8 * j);
                }
            }
        }
        for w in 0..p.words_per_set {
            let mut bits = at(b.plan, sets + k * p.words_per_set + w);
            while bits != 0 {
                let c = 32 * w + bits.trailing_zeros();
                bits &= bits - 1;
                b.out[(c * p.quads + q) as usize] &= !unknown;
                if p.targets == 1 {
                    b.out[(targets + c * p.quads + q) as usize] |= positive;
                }
            }
        }
    }
}

/// Runs every invocation of a dispatch of `grid` workgroups.
pub(crate) fn dispatch(b: &mut Bindings, grid: (u32, u32)) {
    for y in 0..grid.1 {
        for x in 0..grid.0 * WORKGROUP_SIZE {
            main(b, [x, y, 0]);
        }
    }
}

/// The `values` buffer of one block: each class's upload at word `quads * prefix[k]`.
pub(crate) fn values_words(classes: &[LabelSlice<'_>], quads: usize) -> Vec<u32> {
    let dtypes: Vec<LabelDtype> = classes.iter().map(LabelSlice::dtype).collect();
    let prefix = layout::prefixes(&dtypes);
    let mut words = vec![0u32; quads * prefix[classes.len()]];
    for (k, class) in classes.iter().enumerate() {
        let (whole, tail) = label_upload(class);
        let start = quads * prefix[k];
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut words[start..]);
        bytes[..whole.len()].copy_from_slice(whole);
        if let Some(word) = tail {
            bytes[whole.len()..whole.len() + 4].copy_from_slice(&word);
        }
    }
    words
}

/// The whole engine with the twin in place of the GPU: the same blocks, uploads, params and
/// scatter as the GPU kernel (`GpuEngine::crop_into`), blocks of at most
/// `max_block_voxels`.
///
/// # Panics
/// As the CPU engine (see [`crate::engine::EnginePlan`]).
pub fn compute_into(
    plan: &CropPlan,
    classes: &[LabelSlice<'_>],
    mask: &mut [u8],
    mut targets: Option<&mut [u8]>,
    max_block_voxels: usize,
) {
    let n = crate::cellmap::cpu::check_sizes(
        plan,
        classes,
        mask.len(),
        targets.as_ref().map(|t| t.len()),
    );
    if n == 0 || plan.num_channels() == 0 {
        return;
    }
    let dtypes: Vec<LabelDtype> = classes.iter().map(LabelSlice::dtype).collect();
    let plan_words = layout::plan_words(plan, &dtypes);
    for (start, voxels) in blocks(n, max_block_voxels) {
        let block: Vec<LabelSlice<'_>> = classes
            .iter()
            .map(|c| c.slice(start..start + voxels))
            .collect();
        let params = layout::params(plan, voxels, targets.is_some());
        let values = values_words(&block, params.quads as usize);
        let out_bytes = layout::out_bytes(plan, params.quads as usize, targets.is_some());
        let mut out = vec![0u32; out_bytes as usize / 4];
        let mut b = Bindings {
            params: &params,
            values: &values,
            plan: &plan_words,
            out: &mut out,
        };
        dispatch(&mut b, grid(params.quads as usize));
        let bytes: &[u8] = bytemuck::cast_slice(&out);
        let (mask_part, target_part) =
            bytes.split_at(bytes.len() / (1 + targets.is_some() as usize));
        scatter(mask, n, start, voxels, MaskLayout::Bytes, mask_part);
        if let Some(t) = targets.as_deref_mut() {
            scatter(t, n, start, voxels, MaskLayout::Bytes, target_part);
        }
    }
}
