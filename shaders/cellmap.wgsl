// annomask: the mask (and targets) of one block of a CellMap crop group, all channels in one
// dispatch (SPEC 1.4).
//
// Each invocation takes one quad of 4 consecutive voxels. It first sets its word of every
// channel: 0 for a zeroed channel, else 1 in the byte of each real voxel (targets start at 0).
// Then, class by class, it reads the quad's 4 values once, finds which are `unknown` and which
// are positive, and applies them to every channel the class feeds: mask &= !unknown,
// target |= positive. Channel c of the block occupies words [c * quads, (c + 1) * quads) of
// `out`; with targets, channel c's targets follow all masks, at (channels + c) * quads.
//
// The class arrays of a block arrive concatenated in `values`, each as u32 words and padded to
// whole quads: 4 values per word (8-bit), 2 (16-bit), 1 (32-bit), or two words per value, low
// word first (64-bit). Class k starts at word quads * prefix_k. Every value is compared as a
// 64-bit pattern in a vec2<u32> (x = low word, y = high word); signed values are
// sign-extended first.
//
// The CPU twin of this file is src/cellmap/twin.rs: same names, same bindings, same steps.

// Words per class record in `plan`.
const CLASS_WORDS: u32 = 9u;
// Record flags.
const SIGNED: u32 = 1u;
const INSTANCE: u32 = 2u;
const HAS_ABSENT: u32 = 4u;
const HAS_PRESENT: u32 = 8u;
const HAS_UNKNOWN: u32 = 16u;

struct Params {
    // Real voxels in this block (the last quad may be partly padding).
    voxels: u32,
    // Quads in this block: ceil(voxels / 4); also the stride of one channel, in words.
    quads: u32,
    channels: u32,
    // Class arrays in `values` (records in `plan`).
    classes: u32,
    // u32 words per channel set: ceil(channels / 32), at least 1.
    words_per_set: u32,
    // 1: write targets after the masks; 0: masks only.
    targets: u32,
    // Quads per row of the dispatch grid (workgroups in x * 256).
    row_quads: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> values: array<u32>;
// The plan: [zeroed channel set: words_per_set]
//           [class records: classes * CLASS_WORDS: prefix (words per quad of the classes
//            before), bits, flags, absent (lo, hi), present (lo, hi), unknown (lo, hi)]
//           [class channel sets: classes * words_per_set]
@group(0) @binding(2) var<storage, read> plan: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;

// First word of class k's record.
fn record(k: u32) -> u32 {
    return params.words_per_set + CLASS_WORDS * k;
}

// Code `at` (3: absent, 5: present, 7: unknown) of class k.
fn code(k: u32, at: u32) -> vec2<u32> {
    let r = record(k);
    return vec2<u32>(plan[r + at], plan[r + at + 1u]);
}

// Value j (0..4) of quad q of class k as a 64-bit pattern.
fn value(k: u32, q: u32, j: u32) -> vec2<u32> {
    let r = record(k);
    let base = params.quads * plan[r];
    let bits = plan[r + 1u];
    let signed = (plan[r + 2u] & SIGNED) != 0u;
    let i = 4u * q + j;
    if (bits == 64u) {
        return vec2<u32>(values[base + 2u * i], values[base + 2u * i + 1u]);
    }
    var lo: u32;
    if (bits == 32u) {
        lo = values[base + i];
    } else {
        let bit = i * bits;
        let word = values[base + bit / 32u];
        let offset = bit % 32u;
        if (signed) {
            lo = bitcast<u32>(extractBits(bitcast<i32>(word), offset, bits));
        } else {
            lo = extractBits(word, offset, bits);
        }
    }
    var hi = 0u;
    if (signed && (lo >> 31u) == 1u) {
        hi = 0xffffffffu;
    }
    return vec2<u32>(lo, hi);
}

// Whether class k has the code flagged `flag` and it equals v.
fn is_code(k: u32, flag: u32, at: u32, v: vec2<u32>) -> bool {
    return (plan[record(k) + 2u] & flag) != 0u && all(code(k, at) == v);
}

// Whether value v of class k is `unknown`.
fn is_unknown(k: u32, v: vec2<u32>) -> bool {
    return is_code(k, HAS_UNKNOWN, 7u, v);
}

// Whether value v of class k holds the class: == present (semantic), or none of the codes
// (instance). `unknown` never does.
fn is_positive(k: u32, v: vec2<u32>) -> bool {
    if ((plan[record(k) + 2u] & INSTANCE) != 0u) {
        return !is_code(k, HAS_ABSENT, 3u, v) && !is_code(k, HAS_PRESENT, 5u, v) && !is_unknown(k, v);
    }
    return is_code(k, HAS_PRESENT, 5u, v);
}

// Whether channel c is in the channel set starting at plan word `base`.
fn has_channel(base: u32, c: u32) -> bool {
    return ((plan[base + c / 32u] >> (c % 32u)) & 1u) == 1u;
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let q = gid.y * params.row_quads + gid.x;
    if (q >= params.quads) {
        return;
    }
    var real = 0u;
    for (var j = 0u; j < 4u; j++) {
        if (4u * q + j < params.voxels) {
            real |= 1u << (8u * j);
        }
    }
    let targets = params.channels * params.quads;
    for (var c = 0u; c < params.channels; c++) {
        var word = real;
        if (has_channel(0u, c)) {
            word = 0u;
        }
        out[c * params.quads + q] = word;
        if (params.targets == 1u) {
            out[targets + c * params.quads + q] = 0u;
        }
    }
    let sets = params.words_per_set + CLASS_WORDS * params.classes;
    for (var k = 0u; k < params.classes; k++) {
        var unknown = 0u;
        var positive = 0u;
        for (var j = 0u; j < 4u; j++) {
            if (4u * q + j < params.voxels) {
                let v = value(k, q, j);
                if (is_unknown(k, v)) {
                    unknown |= 1u << (8u * j);
                }
                if (params.targets == 1u && is_positive(k, v)) {
                    positive |= 1u << (8u * j);
                }
            }
        }
        for (var w = 0u; w < params.words_per_set; w++) {
            var bits = plan[sets + k * params.words_per_set + w];
            while (bits != 0u) {
                let c = 32u * w + firstTrailingBit(bits);
                bits &= bits - 1u;
                out[c * params.quads + q] &= ~unknown;
                if (params.targets == 1u) {
                    out[targets + c * params.quads + q] |= positive;
                }
            }
        }
    }
}
