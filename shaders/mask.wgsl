// annomask: the missing-annotation mask of one block of labels, all channels in one dispatch.
//
// Two entry points share the per-voxel test (background, then the sorted missing-id table of
// the per-voxel policy):
// - `main`: one invocation per quad of 4 voxels; it reads their labels once and writes one u32
//   per channel holding the 4 voxels' mask bytes. Channel c occupies words
//   [c * stride, (c + 1) * stride) with stride = quads, so the output is the (c, voxel) u8
//   array, each channel padded to a multiple of 4 voxels.
// - `main_packed`: one invocation per 32 voxels; it writes one u32 per channel whose bit b is
//   voxel 32 w + b (1 bit per voxel, stride = ceil(voxels / 32) words per channel).
// - `main_fused`: as `main`, and also the targets (DaCapo's BinarizeArray: label in the
//   channel's ids, or label != background for an empty id list) into words
//   [(channels + c) * stride, ...) of the same output, from the same label reads.
//
// Labels arrive as u32 words: 4 per word (8-bit), 2 per word (16-bit), 1 (32-bit), or two words
// per label, low word first (64-bit). Every label is compared as a 64-bit id held in a
// vec2<u32> (x = low word, y = high word); signed labels are sign-extended first.
//
// The CPU twin of this file is src/gpu/twin.rs: same names, same bindings, same steps.

// Bits per label (8, 16, 32 or 64) and signedness; set per pipeline.
override LABEL_BITS: u32 = 64u;
override SIGNED: bool = false;

struct Params {
    // Real voxels in this block (the last quad may be partly padding).
    voxels: u32,
    // Quads in this block: ceil(voxels / 4); also the stride of one channel, in words.
    quads: u32,
    channels: u32,
    // u32 words per channel set: ceil(channels / 32), at least 1.
    words_per_set: u32,
    // Entries in the missing-id table (0 under the whole-channel policy).
    table_len: u32,
    // Output words per channel: quads (main) or ceil(voxels / 32) (main_packed).
    stride: u32,
    // The background id as (low, high) words.
    background: vec2<u32>,
    // Invocations per row of the dispatch grid (workgroups in x * 256).
    row_width: u32,
    // Entries in the target table (`main_fused` only).
    target_len: u32,
    _pad2: u32,
    _pad3: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> labels: array<u32>;
// The plan: [zeroed channel set: words_per_set][table ids: 2 * table_len, sorted, (low, high)]
//           [table channel sets: table_len * words_per_set]
//           then, for `main_fused`: [any-foreground channel set: words_per_set]
//           [target ids: 2 * target_len, sorted][target channel sets: target_len * words_per_set]
@group(0) @binding(2) var<storage, read> plan: array<u32>;
@group(0) @binding(3) var<storage, read_write> mask: array<u32>;

// Label k (0..4) of quad q as a 64-bit id.
fn label(q: u32, k: u32) -> vec2<u32> {
    if (LABEL_BITS == 64u) {
        return vec2<u32>(labels[8u * q + 2u * k], labels[8u * q + 2u * k + 1u]);
    }
    var lo: u32;
    if (LABEL_BITS == 32u) {
        lo = labels[4u * q + k];
    } else {
        let bit = (4u * q + k) * LABEL_BITS;
        let word = labels[bit / 32u];
        let offset = bit % 32u;
        if (SIGNED) {
            lo = bitcast<u32>(extractBits(bitcast<i32>(word), offset, LABEL_BITS));
        } else {
            lo = extractBits(word, offset, LABEL_BITS);
        }
    }
    var hi = 0u;
    if (SIGNED && (lo >> 31u) == 1u) {
        hi = 0xffffffffu;
    }
    return vec2<u32>(lo, hi);
}

// Whether a < b as unsigned 64-bit ids.
fn less(a: vec2<u32>, b: vec2<u32>) -> bool {
    return a.y < b.y || (a.y == b.y && a.x < b.x);
}

// Id i of the sorted id list starting at plan word `base`.
fn id_at(base: u32, i: u32) -> vec2<u32> {
    return vec2<u32>(plan[base + 2u * i], plan[base + 2u * i + 1u]);
}

// 1 + the index of l in the sorted list of `len` ids at plan word `base`, or 0 if absent.
fn search(base: u32, len: u32, l: vec2<u32>) -> u32 {
    var lo = 0u;
    var hi = len;
    while (lo < hi) {
        let mid = (lo + hi) / 2u;
        if (less(id_at(base, mid), l)) {
            lo = mid + 1u;
        } else {
            hi = mid;
        }
    }
    if (lo < len && all(id_at(base, lo) == l)) {
        return lo + 1u;
    }
    return 0u;
}

// 1 + the index of l in the missing-id table, or 0 if l is not missing.
fn find(l: vec2<u32>) -> u32 {
    return search(params.words_per_set, params.table_len, l);
}

// Whether channel c is in the channel set starting at plan word `base`.
fn has_channel(base: u32, c: u32) -> bool {
    return ((plan[base + c / 32u] >> (c % 32u)) & 1u) == 1u;
}

// Whether voxel v (label l) is foreground, and 1 + its missing-table index (0: not missing).
fn classify(v: u32, l: vec2<u32>) -> vec2<u32> {
    let foreground = v < params.voxels && any(l != params.background);
    var hit = 0u;
    if (foreground && params.table_len > 0u) {
        hit = find(l);
    }
    return vec2<u32>(select(0u, 1u, foreground), hit);
}

// Whether a foreground voxel with table hit `hit` is knocked out of channel c.
fn knocked_out(hit: u32, c: u32) -> bool {
    let sets = params.words_per_set + 2u * params.table_len;
    return hit > 0u && has_channel(sets + (hit - 1u) * params.words_per_set, c);
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let q = gid.y * params.row_width + gid.x;
    if (q >= params.stride) {
        return;
    }
    var voxel: array<vec2<u32>, 4>;
    for (var k = 0u; k < 4u; k++) {
        voxel[k] = classify(4u * q + k, label(q, k));
    }
    for (var c = 0u; c < params.channels; c++) {
        var word = 0u;
        if (!has_channel(0u, c)) {
            for (var k = 0u; k < 4u; k++) {
                if (voxel[k].x == 1u && !knocked_out(voxel[k].y, c)) {
                    word |= 1u << (8u * k);
                }
            }
        }
        mask[c * params.stride + q] = word;
    }
}

@compute @workgroup_size(256)
fn main_packed(@builtin(global_invocation_id) gid: vec3<u32>) {
    let w = gid.y * params.row_width + gid.x;
    if (w >= params.stride) {
        return;
    }
    var foreground = 0u;
    var hit: array<u32, 32>;
    var any_hit = false;
    for (var b = 0u; b < 32u; b++) {
        let q = 8u * w + b / 4u;
        let voxel = classify(32u * w + b, label(q, b % 4u));
        foreground |= voxel.x << b;
        hit[b] = voxel.y;
        any_hit = any_hit || voxel.y > 0u;
    }
    for (var c = 0u; c < params.channels; c++) {
        var word = 0u;
        if (!has_channel(0u, c)) {
            word = foreground;
            if (any_hit) {
                for (var b = 0u; b < 32u; b++) {
                    if (knocked_out(hit[b], c)) {
                        word &= ~(1u << b);
                    }
                }
            }
        }
        mask[c * params.stride + w] = word;
    }
}

// Where the target section of the plan starts: the any-foreground channel set.
fn targets_base() -> u32 {
    return params.words_per_set * (1u + params.table_len) + 2u * params.table_len;
}

@compute @workgroup_size(256)
fn main_fused(@builtin(global_invocation_id) gid: vec3<u32>) {
    let q = gid.y * params.row_width + gid.x;
    if (q >= params.stride) {
        return;
    }
    let any_foreground = targets_base();
    let target_ids = any_foreground + params.words_per_set;
    let target_sets = target_ids + 2u * params.target_len;
    var voxel: array<vec2<u32>, 4>;
    var target_hit: array<u32, 4>;
    for (var k = 0u; k < 4u; k++) {
        let l = label(q, k);
        voxel[k] = classify(4u * q + k, l);
        target_hit[k] = 0u;
        if (4u * q + k < params.voxels) {
            target_hit[k] = search(target_ids, params.target_len, l);
        }
    }
    for (var c = 0u; c < params.channels; c++) {
        var word = 0u;
        var target_word = 0u;
        let zeroed = has_channel(0u, c);
        let foreground_channel = has_channel(any_foreground, c);
        for (var k = 0u; k < 4u; k++) {
            if (!zeroed && voxel[k].x == 1u && !knocked_out(voxel[k].y, c)) {
                word |= 1u << (8u * k);
            }
            let listed = target_hit[k] > 0u
                && has_channel(target_sets + (target_hit[k] - 1u) * params.words_per_set, c);
            if (listed || (foreground_channel && voxel[k].x == 1u)) {
                target_word |= 1u << (8u * k);
            }
        }
        mask[c * params.stride + q] = word;
        mask[(params.channels + c) * params.stride + q] = target_word;
    }
}
