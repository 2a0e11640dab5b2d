//! Test helpers: the naive oracle and crop writers. The oracle follows SPEC 2
//! (docs/contract.md) word for word and shares no code with the engines or the plan.
#![allow(dead_code)]

pub mod crop;
pub mod s3;

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use annomask::gpu::GpuEngine;

use annomask::{Groupings, LabelDtype};
use proptest::prelude::*;
use serde_json::Value;

/// The mask straight from SPEC 2: for channel `c` and voxel label `l` (as a 64-bit id),
/// whole-channel: 0 if any id of `c` is missing, else `l != background`;
/// per-voxel: `l != background` and `l` is not a missing id of `c`.
/// Returns channel-major bytes, `channels.len() * labels.len()` long.
pub fn oracle(
    labels: &[u64],
    channels: &[Vec<u64>],
    missing: &BTreeSet<u64>,
    background: u64,
    per_voxel: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(channels.len() * labels.len());
    for ids in channels {
        let channel_missing: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|i| missing.contains(i))
            .collect();
        for &l in labels {
            let on = if per_voxel {
                l != background && !channel_missing.contains(&l)
            } else {
                channel_missing.is_empty() && l != background
            };
            out.push(on as u8);
        }
    }
    out
}

/// Targets straight from DaCapo's `BinarizeArray`: channel `c` is `label in ids(c)`, or
/// `label != background` when `ids(c)` is empty. Channel-major.
pub fn target_oracle(labels: &[u64], channels: &[Vec<u64>], background: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(channels.len() * labels.len());
    for ids in channels {
        for &l in labels {
            let on = if ids.is_empty() {
                l != background
            } else {
                ids.contains(&l)
            };
            out.push(on as u8);
        }
    }
    out
}

/// Missing ids the way `reference_mask.py` finds them: present, and annotated false or
/// "empty", or sparse when sparse counts as missing.
pub fn naive_missing(labels_attr: &Value, sparse_is_missing: bool) -> BTreeSet<u64> {
    let mut out = BTreeSet::new();
    for entry in labels_attr.as_array().unwrap() {
        let state = &entry["annotationState"];
        if state["present"] != Value::Bool(true) {
            continue;
        }
        let ann = &state["annotated"];
        let not_annotated = *ann == Value::Bool(false) || ann.as_str() == Some("empty");
        let sparse =
            ann.as_str() == Some("sparse") || state.get("sparse") == Some(&Value::Bool(true));
        if not_annotated || (sparse && sparse_is_missing) {
            out.insert(entry["value"].as_u64().unwrap());
        }
    }
    out
}

/// Channel id lists of groupings.
pub fn channel_ids(g: &annomask::Groupings) -> Vec<Vec<u64>> {
    g.channels().iter().map(|c| c.ids.clone()).collect()
}

/// Every voxel of a label array as its 64-bit id (signed values sign-extended), C order.
pub fn bits(labels: &annomask::LabelArray) -> Vec<u64> {
    let s = labels.as_slice();
    (0..s.len()).map(|i| s.bits_at(i)).collect()
}

/// Raw 64-bit draws truncated into `dtype` (so draws with high bits set give negative signed
/// labels), as a label array of `shape`.
pub fn labels_of(
    dtype: annomask::LabelDtype,
    shape: &[usize],
    raw: &[u64],
) -> annomask::LabelArray {
    use annomask::{LabelArray, LabelDtype};
    use ndarray::{ArrayD, IxDyn};
    macro_rules! make {
        ($t:ty) => {
            LabelArray::from(
                ArrayD::from_shape_vec(IxDyn(shape), raw.iter().map(|&r| r as $t).collect())
                    .unwrap(),
            )
        };
    }
    match dtype {
        LabelDtype::U8 => make!(u8),
        LabelDtype::U16 => make!(u16),
        LabelDtype::U32 => make!(u32),
        LabelDtype::U64 => make!(u64),
        LabelDtype::I8 => make!(i8),
        LabelDtype::I16 => make!(i16),
        LabelDtype::I32 => make!(i32),
        LabelDtype::I64 => make!(i64),
    }
}

/// A `labels` attribute listing `ids`, each in `format` (0 bool, 1 enum, 2 airtable), with a
/// state chosen by `state` (0 annotated, 1 not annotated, 2 sparse, 3 not present).
pub fn labels_attr(entries: &[(u64, usize, usize)]) -> Value {
    use serde_json::json;
    let list: Vec<Value> = entries
        .iter()
        .map(|&(id, format, state)| {
            let s = match (format, state) {
                (0, 0) => json!({"present": true, "annotated": true}),
                (0, 1) => json!({"present": true, "annotated": false}),
                (0, 2) => json!({"present": true, "annotated": true}),
                (1, 0) => json!({"present": true, "annotated": "dense"}),
                (1, 1) => json!({"present": true, "annotated": "empty"}),
                (1, 2) => json!({"present": true, "annotated": "sparse"}),
                (2, 0) => json!({"present": true, "annotated": true, "sparse": false}),
                (2, 1) => json!({"present": true, "annotated": false, "sparse": false}),
                (2, 2) => json!({"present": true, "annotated": true, "sparse": true}),
                (_, 3) => json!({"present": false, "annotated": false}),
                _ => unreachable!(),
            };
            let name = if format == 1 {
                json!({"long": format!("class {id}"), "short": format!("c{id}")})
            } else {
                json!(format!("c{id}"))
            };
            json!({"value": id, "name": name, "annotationState": s})
        })
        .collect();
    Value::Array(list)
}

/// Ids that stress the comparisons: small, dtype borders, >= 2^32, >= 2^63, all ones.
const SPECIAL: [u64; 12] = [
    0,
    1,
    2,
    127,
    128,
    255,
    256,
    65535,
    1 << 32,
    (1 << 32) + 1,
    1 << 63,
    u64::MAX,
];

pub fn id() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => prop::sample::select(SPECIAL.to_vec()),
        3 => 0u64..12,
        1 => any::<u64>(),
        1 => (0u64..4).prop_map(|k| u64::MAX - k),
    ]
}

pub fn dtype() -> impl Strategy<Value = LabelDtype> {
    prop::sample::select(LabelDtype::ALL.to_vec())
}

#[derive(Debug, Clone)]
pub struct Case {
    pub dtype: LabelDtype,
    pub shape: Vec<usize>,
    pub raw: Vec<u64>,
    pub channels: Vec<Vec<u64>>,
    pub missing: BTreeSet<u64>,
    pub background: u64,
    pub per_voxel: bool,
}

pub fn case() -> impl Strategy<Value = Case> {
    let shape = prop::collection::vec(1usize..9, 2..=5).prop_filter("at most 4096 voxels", |s| {
        s.iter().product::<usize>() <= 4096
    });
    let channel_count = prop_oneof![4 => 0usize..6, 1 => 6usize..70];
    (
        dtype(),
        shape,
        channel_count,
        prop::collection::vec(id(), 1..10),
    )
        .prop_flat_map(|(dtype, shape, nch, pool)| {
            let n: usize = shape.iter().product();
            // Negative signed values come from raw draws with the top bit set.
            let voxel = prop_oneof![
                4 => prop::sample::select(pool.clone()),
                1 => any::<u64>(),
                1 => (0u64..3).prop_map(|k| u64::MAX - k),
            ];
            let member = prop_oneof![3 => prop::sample::select(pool.clone()), 1 => id()];
            (
                Just(dtype),
                Just(shape),
                prop::collection::vec(voxel, n),
                prop::collection::vec(prop::collection::vec(member.clone(), 0..5), nch),
                prop::collection::btree_set(member, 0..6),
                prop_oneof![3 => Just(0u64), 1 => prop::sample::select(pool), 1 => any::<u64>()],
                any::<bool>(),
            )
        })
        .prop_map(
            |(dtype, shape, raw, channels, missing, background, per_voxel)| Case {
                dtype,
                shape,
                raw,
                channels,
                missing,
                background,
                per_voxel,
            },
        )
}

pub fn groupings(channels: &[Vec<u64>]) -> Groupings {
    Groupings::new(
        channels
            .iter()
            .enumerate()
            .map(|(i, ids)| (format!("c{i}"), ids.clone())),
    )
    .unwrap()
}

/// Packs each channel of a channel-major 0/1 mask (`n` voxels per channel) bit by bit, LSB
/// first, the way numpy's `packbits(bitorder="little")` does — written out without the crate.
pub fn pack_channels(mask: &[u8], n: usize) -> Vec<u8> {
    let per = n.div_ceil(8);
    let channels = mask.len().checked_div(n).unwrap_or(0);
    let mut out = vec![0u8; channels * per];
    for c in 0..channels {
        for i in 0..n {
            out[c * per + i / 8] |= mask[c * n + i] << (i % 8);
        }
    }
    out
}

/// Checks a plan's `first_equal_channels` against a mask the oracle computed (channel-major,
/// `n` voxels a channel): `None` channels are 0 everywhere, and `Some(f)` names a channel at or
/// before this one with the same bytes. Returns what is wrong.
pub fn check_equal_channels(mask: &[u8], n: usize, equal: &[Option<usize>]) -> Result<(), String> {
    let channel = |c: usize| &mask[c * n..(c + 1) * n];
    for (c, first) in equal.iter().enumerate() {
        match *first {
            None if channel(c).iter().any(|&v| v != 0) => {
                return Err(format!("channel {c} is said to be zeroed but has 1s"));
            }
            Some(f) if f > c => return Err(format!("channel {c} names a later channel {f}")),
            Some(f) if channel(f) != channel(c) => {
                return Err(format!(
                    "channel {c} is said to equal channel {f} but differs"
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The shared GPU engines of a test binary (default blocks, and blocks of 64 voxels), or `None`
/// with the reason printed. Panics under `REQUIRE_GPU=1` when there is no adapter.
pub fn gpus() -> Option<&'static (Arc<GpuEngine>, Arc<GpuEngine>)> {
    static GPUS: OnceLock<Option<(Arc<GpuEngine>, Arc<GpuEngine>)>> = OnceLock::new();
    GPUS.get_or_init(|| {
        let made =
            GpuEngine::new().and_then(|a| Ok((a, GpuEngine::new()?.with_max_block_voxels(64))));
        match made {
            Ok((a, b)) => {
                eprintln!("GPU tests on {}", a.context().describe());
                Some((Arc::new(a), Arc::new(b)))
            }
            Err(e) if std::env::var("REQUIRE_GPU").is_ok_and(|v| v == "1") => {
                panic!("REQUIRE_GPU=1 but no GPU engine: {e}")
            }
            Err(e) => {
                eprintln!("skipping GPU tests: {e} (set REQUIRE_GPU=1 to fail instead)");
                None
            }
        }
    })
    .as_ref()
}

// ---- Command-line and output helpers (tests/cli.rs, tests/resume.rs, tests/reference.rs) ----

/// The `annomask` binary under test.
pub fn annomask() -> assert_cmd::Command {
    assert_cmd::Command::new(env!("CARGO_BIN_EXE_annomask"))
}

/// Every file under `dir`, by path relative to it, with its bytes.
pub fn files(dir: &std::path::Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    fn walk(
        root: &std::path::Path,
        dir: &std::path::Path,
        out: &mut std::collections::BTreeMap<String, Vec<u8>>,
    ) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The whole `u8` array at `path` (v2 or v3) read back through zarrs: shape and C-order data.
pub fn read_mask(path: &std::path::Path) -> (Vec<u64>, Vec<u8>) {
    let store = std::sync::Arc::new(zarrs::filesystem::FilesystemStore::new(path).unwrap());
    let array = zarrs::array::Array::open(store, "/").unwrap();
    let shape = array.shape().to_vec();
    let subset = zarrs::array::ArraySubset::new_with_shape(shape.clone());
    let data: Vec<u8> = array.retrieve_array_subset(&subset).unwrap();
    (shape, data)
}

/// The oracle's mask of the label array at `labels` inside the voxel box `start..start+shape`
/// (`None`: all of it), with the metadata read the naive way: shape `(channels, *shape)`.
pub fn expected_mask(
    labels: &std::path::Path,
    channels: &[Vec<u64>],
    region: Option<(&[u64], &[u64])>,
    background: u64,
    per_voxel: bool,
    sparse_is_missing: bool,
) -> (Vec<u64>, Vec<u8>) {
    let volume = annomask::LabelVolume::open(labels).unwrap();
    let (start, shape) = match region {
        Some((s, n)) => (s.to_vec(), n.to_vec()),
        None => (vec![0; volume.shape().len()], volume.shape().to_vec()),
    };
    let data = volume
        .read_region(&annomask::VoxelRegion {
            start,
            shape: shape.clone(),
        })
        .unwrap();
    let missing = naive_missing(&volume.attributes()["labels"], sparse_is_missing);
    let mask = oracle(&bits(&data), channels, &missing, background, per_voxel);
    let mut full = vec![channels.len() as u64];
    full.extend(shape);
    (full, mask)
}

/// Writes a synthetic crop (labels drawn from `palette`) with the `labels` attribute `meta` and
/// `extra` attributes; returns its path.
#[allow(clippy::too_many_arguments)] // a test fixture: every argument is a property of the crop
pub fn write_crop(
    path: &std::path::Path,
    shape: &[u64],
    chunks: &[u64],
    dtype: LabelDtype,
    format: annomask::ZarrFormat,
    palette: &[u64],
    meta: Value,
    extra: Value,
) -> std::path::PathBuf {
    let mut attrs = extra.as_object().cloned().unwrap_or_default();
    attrs.insert("labels".into(), meta);
    let volume = annomask::synth::SynthVolume {
        shape: shape.to_vec(),
        chunks: chunks.to_vec(),
        dtype,
        palette: palette.to_vec(),
        seed: shape.iter().sum::<u64>() ^ palette.len() as u64,
        format,
        compression: annomask::zarr_array::Compression::Zstd,
    };
    annomask::synth::write_synth_volume(path, &volume, attrs).unwrap();
    path.to_path_buf()
}

/// The CPU engine's mask of `labels` (one request, one byte per voxel per channel).
pub fn cpu_mask(plan: &annomask::MaskPlan, labels: &annomask::LabelArray) -> Vec<u8> {
    let mut out = vec![0u8; plan.num_channels() * labels.as_slice().len()];
    let out_ref = annomask::engine::Outputs::bytes(&mut out);
    annomask::Engine::cpu()
        .run(plan, &[labels.as_slice()], labels.shape(), out_ref, false)
        .expect("the CPU engine does not fail");
    out
}
