//! Synthetic crops: deterministic label volumes with annotation metadata, written as zarr, for
//! the demo, tests and benchmarks.
//!
//! The labels are blocky "organelles": the volume is cut into cubes of 8 voxels per axis, each
//! cube takes an id from a palette (background included), and about one voxel in 16 takes a
//! random id of its own, so every id occurs next to every other.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use zarrs::array::ArraySubset;

use crate::error::{Error, StorageError};
use crate::groupings::Groupings;
use crate::label::{LabelArray, LabelDtype};
use crate::volume::ZarrFormat;
use crate::with_labels;
use crate::zarr_array::{ArraySpec, Compression, create_array};

/// A small, fast, well-mixed hash (splitmix64): the only randomness synthetic crops need.
pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Labels of `shape` and `dtype` drawn from `palette` (ids, 0 for background), deterministic in
/// `seed`. Every palette id must fit the dtype.
///
/// ```
/// use annomask::{synth, LabelDtype};
/// let a = synth::synth_labels(&[16, 16], LabelDtype::U16, &[0, 3, 4], 7);
/// assert_eq!(a, synth::synth_labels(&[16, 16], LabelDtype::U16, &[0, 3, 4], 7));
/// assert_eq!(a.shape(), &[16, 16]);
/// ```
pub fn synth_labels(shape: &[usize], dtype: LabelDtype, palette: &[u64], seed: u64) -> LabelArray {
    let n: usize = shape.iter().product();
    let ids: Vec<u64> = (0..n)
        .map(|flat| {
            let (mut rest, mut cube) = (flat, 0u64);
            for &s in shape.iter().rev() {
                cube = cube
                    .wrapping_mul(1_000_003)
                    .wrapping_add((rest % s / 8) as u64);
                rest /= s;
            }
            let h = splitmix64(seed ^ splitmix64(cube));
            let fine = splitmix64(seed.wrapping_add(flat as u64));
            let pick = if fine.is_multiple_of(16) {
                fine >> 8
            } else {
                h
            };
            palette[(pick % palette.len() as u64) as usize]
        })
        .collect();
    LabelArray::from_ids(dtype, shape, ids).expect("palette ids fit the dtype")
}

/// Labels of `shape` and `dtype` drawn independently and uniformly from `palette` (like
/// `numpy.random.integers`), deterministic in `seed`, computed in parallel.
pub fn uniform_labels(
    shape: &[usize],
    dtype: LabelDtype,
    palette: &[u64],
    seed: u64,
) -> LabelArray {
    use rayon::prelude::*;
    let n: usize = shape.iter().product();
    let ids: Vec<u64> = (0..n as u64)
        .into_par_iter()
        .map(|i| palette[(splitmix64(seed ^ splitmix64(i)) % palette.len() as u64) as usize])
        .collect();
    LabelArray::from_ids(dtype, shape, ids).expect("palette ids fit the dtype")
}

/// Writes `labels` as a new zarr array at `path` with `chunks`, `format`, `compression` and
/// `attributes`.
pub fn write_labels(
    path: &Path,
    labels: &LabelArray,
    chunks: &[u64],
    format: ZarrFormat,
    compression: Compression,
    attributes: Map<String, Value>,
) -> Result<(), StorageError> {
    let shape: Vec<u64> = labels.shape().iter().map(|&s| s as u64).collect();
    let mut spec = ArraySpec::new(
        shape.clone(),
        chunks.to_vec(),
        labels.dtype().name(),
        format,
    );
    spec.compression = compression;
    spec.attributes = attributes;
    let array = create_array(path, &spec)?;
    let subset = ArraySubset::new_with_shape(shape);
    let fail = |e: zarrs::array::ArrayError| StorageError::Write {
        path: path.display().to_string(),
        what: "labels".into(),
        message: e.to_string(),
    };
    with_labels!(labels, LabelArray, a => array.store_array_subset(&subset, a).map_err(fail))
}

/// The demo's classes: `(id, name, annotationState)` in the three metadata formats.
pub fn demo_labels_attribute() -> Value {
    json!([
        {"value": 1, "name": "ecs", "annotationState": {"present": true, "annotated": true}},
        {"value": 3, "name": "mito_mem", "annotationState": {"present": true, "annotated": true}},
        {"value": 4, "name": "mito_lum", "annotationState": {"present": true, "annotated": true}},
        {"value": 5, "name": "mito_ribo", "annotationState": {"present": true, "annotated": false}},
        {"value": 16, "name": {"long": "endoplasmic reticulum membrane", "short": "er_mem"},
         "annotationState": {"present": true, "annotated": "dense"}, "count": 1000},
        {"value": 17, "name": {"long": "endoplasmic reticulum lumen", "short": "er_lum"},
         "annotationState": {"present": true, "annotated": "sparse"}, "count": 10},
        {"value": 20, "name": "nuc", "annotationState": {"present": true, "annotated": true, "sparse": false}},
        {"value": 21, "name": "nucleolus", "annotationState": {"present": true, "annotated": true, "sparse": false}},
        {"value": 30, "name": "ves", "annotationState": {"present": false, "annotated": false, "sparse": false}},
    ])
}

/// The ids the demo crop's labels are drawn from (0 is background, three times as likely).
pub const DEMO_PALETTE: [u64; 10] = [0, 0, 0, 1, 3, 4, 5, 16, 17, 20];

/// The demo's channels: `mito` (has a missing id), `er` (sparse id), `nucleus`, `ecs`, and
/// `all` (any foreground).
pub fn demo_groupings() -> Groupings {
    Groupings::new([
        ("mito", vec![3, 4, 5]),
        ("er", vec![16, 17]),
        ("nucleus", vec![20, 21]),
        ("ecs", vec![1]),
        ("all", vec![]),
    ])
    .expect("demo groupings are valid")
}

/// Writes the demo crop: `dir/demo_crop.zarr/labels`, a `size`³ `uint64` array (8 nm voxels,
/// blosc-lz4, 64³ chunks) with the demo metadata. Returns the array's path.
pub fn write_demo_crop(dir: &Path, size: usize, format: ZarrFormat) -> Result<PathBuf, Error> {
    let path = dir.join("demo_crop.zarr").join("labels");
    crate::zarr_array::create_group(path.parent().expect("has a parent"), format, &Map::new())?;
    let labels = synth_labels(&[size; 3], LabelDtype::U64, &DEMO_PALETTE, 42);
    let mut attrs = Map::new();
    attrs.insert("labels".into(), demo_labels_attribute());
    attrs.insert("voxel_size".into(), json!([8, 8, 8]));
    attrs.insert("offset".into(), json!([0, 0, 0]));
    attrs.insert("axis_names".into(), json!(["z", "y", "x"]));
    attrs.insert("units".into(), json!(["nm", "nm", "nm"]));
    let chunk = size.clamp(1, 64) as u64;
    write_labels(
        &path,
        &labels,
        &[chunk; 3],
        format,
        Compression::BloscLz4,
        attrs,
    )?;
    Ok(path)
}
