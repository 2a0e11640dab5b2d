//! Synthetic crops: deterministic label volumes with annotation metadata, written as zarr, for
//! the demo, tests and benchmarks.
//!
//! The labels are blocky "organelles": the volume is cut into cubes of 8 voxels per axis, each
//! cube takes an id from a palette (background included), and about one voxel in 16 takes a
//! random id of its own, so every id occurs next to every other.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use zarrs::array::ArraySubset;

use crate::error::{Cause, Error, StorageError};
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
    let full: Vec<u64> = shape.iter().map(|&s| s as u64).collect();
    synth_region(&full, &vec![0; shape.len()], shape, dtype, palette, seed)
}

/// The part of [`synth_labels`]`(volume_shape, ...)` that starts at voxel `start` and has
/// `shape`: lets a volume larger than memory be synthesised block by block.
///
/// ```
/// use annomask::{synth, LabelDtype};
/// let whole = synth::synth_labels(&[8, 8], LabelDtype::U8, &[0, 1, 2], 3);
/// let part = synth::synth_region(&[8, 8], &[2, 4], &[3, 4], LabelDtype::U8, &[0, 1, 2], 3);
/// let annomask::LabelArray::U8(whole) = whole else { unreachable!() };
/// let annomask::LabelArray::U8(part) = part else { unreachable!() };
/// assert_eq!(part, whole.slice(ndarray::s![2..5, 4..8]).into_dyn());
/// ```
pub fn synth_region(
    volume_shape: &[u64],
    start: &[u64],
    shape: &[usize],
    dtype: LabelDtype,
    palette: &[u64],
    seed: u64,
) -> LabelArray {
    let n: usize = shape.iter().product();
    let dims = shape.len();
    let id_at = |local: usize| -> u64 {
        // The voxel's global coordinates, then its flat index and 8-voxel cube in the volume.
        let (mut rest, mut coords) = (local, [0u64; 8]);
        for d in (0..dims).rev() {
            coords[d] = start[d] + (rest % shape[d]) as u64;
            rest /= shape[d];
        }
        let (mut flat, mut cube) = (0u64, 0u64);
        for d in 0..dims {
            flat = flat * volume_shape[d] + coords[d];
        }
        for d in (0..dims).rev() {
            cube = cube.wrapping_mul(1_000_003).wrapping_add(coords[d] / 8);
        }
        let h = splitmix64(seed ^ splitmix64(cube));
        let fine = splitmix64(seed.wrapping_add(flat));
        let pick = if fine.is_multiple_of(16) {
            fine >> 8
        } else {
            h
        };
        palette[(pick % palette.len() as u64) as usize]
    };
    use rayon::prelude::*;
    let ids: Vec<u64> = (0..n).into_par_iter().map(id_at).collect();
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

/// Labels, groupings and missing ids of the kernel benchmark (`annomask bench`, `benches/mask.rs`,
/// `reference_mask.py bench`) and of the `auto` engine's trial block: `size`³ labels uniform in
/// `0..40` (seed 0), `channels` channels where channel `c` groups ids `3c+1, 3c+2, 3c+3`, and ids
/// 4 and 11 missing.
pub fn bench_inputs(
    size: usize,
    dtype: LabelDtype,
    channels: usize,
) -> (LabelArray, Groupings, BTreeSet<u64>) {
    let palette: Vec<u64> = (0..40).collect();
    let labels = uniform_labels(&[size; 3], dtype, &palette, 0);
    let groupings = Groupings::new((0..channels).map(|c| {
        let c = c as u64;
        (format!("c{c}"), vec![3 * c + 1, 3 * c + 2, 3 * c + 3])
    }))
    .expect("generated names are unique");
    (labels, groupings, BTreeSet::from([4, 11]))
}

/// The benchmarks' memcpy ceiling: a parallel copy (all rayon threads, 1 MiB pieces) of `src`
/// into `dst`. Not part of the API; `annomask bench` and `benches/mask.rs` share it.
#[doc(hidden)]
pub fn parallel_copy(dst: &mut [u8], src: &[u8]) {
    use rayon::prelude::*;
    dst.par_chunks_mut(1 << 20)
        .zip(src.par_chunks(1 << 20))
        .for_each(|(d, s)| d.copy_from_slice(s));
}

/// A synthetic label array written chunk by chunk, never whole in memory: what
/// [`write_synth_volume`] writes.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthVolume {
    /// Shape in voxels.
    pub shape: Vec<u64>,
    /// Chunk shape.
    pub chunks: Vec<u64>,
    /// Label dtype.
    pub dtype: LabelDtype,
    /// Ids to draw from (0 for background).
    pub palette: Vec<u64>,
    /// Seed of [`synth_region`].
    pub seed: u64,
    /// Zarr format.
    pub format: ZarrFormat,
    /// Chunk compression.
    pub compression: Compression,
}

/// Writes `volume` at `path` with `attributes`, one chunk at a time (memory: one chunk), equal
/// to [`synth_labels`] of the whole shape. For volumes larger than memory.
///
/// ```
/// use annomask::{synth, LabelDtype, LabelVolume, ZarrFormat};
/// use annomask::zarr_array::Compression;
/// let dir = tempfile::tempdir()?;
/// let spec = synth::SynthVolume { shape: vec![10, 12], chunks: vec![4, 8], dtype: LabelDtype::U16,
///     palette: vec![0, 7, 9], seed: 1, format: ZarrFormat::V3, compression: Compression::Zstd };
/// synth::write_synth_volume(&dir.path().join("a"), &spec, Default::default())?;
/// let read = LabelVolume::open(dir.path().join("a"))?.read_region(&annomask::VoxelRegion {
///     start: vec![0, 0], shape: vec![10, 12] })?;
/// assert_eq!(read, synth::synth_labels(&[10, 12], LabelDtype::U16, &[0, 7, 9], 1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_synth_volume(
    path: &Path,
    volume: &SynthVolume,
    attributes: Map<String, Value>,
) -> Result<(), StorageError> {
    let mut spec = ArraySpec::new(
        volume.shape.clone(),
        volume.chunks.clone(),
        volume.dtype.name(),
        volume.format,
    );
    spec.compression = volume.compression;
    spec.attributes = attributes;
    let array = create_array(path, &spec)?;
    let fail = |e: zarrs::array::ArrayError| StorageError::Write {
        path: path.display().to_string(),
        what: "labels".into(),
        message: Cause::error(e),
    };
    let grid = crate::blocks::BlockGrid::new(volume.shape.clone(), volume.chunks.clone());
    for k in 0..grid.num_blocks() {
        let block = grid.block(k);
        let shape: Vec<usize> = block.shape.iter().map(|&s| s as usize).collect();
        let labels = synth_region(
            &volume.shape,
            &block.start,
            &shape,
            volume.dtype,
            &volume.palette,
            volume.seed,
        );
        let subset = ArraySubset::new_with_start_shape(block.start.clone(), block.shape.clone())
            .map_err(|e| StorageError::Write {
                path: path.display().to_string(),
                what: "labels".into(),
                message: Cause::error(e),
            })?;
        with_labels!(&labels, LabelArray, a => array.store_array_subset(&subset, a).map_err(fail))?;
    }
    Ok(())
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
        message: Cause::error(e),
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
    let mut attrs = Map::new();
    attrs.insert("labels".into(), demo_labels_attribute());
    attrs.insert("voxel_size".into(), json!([8, 8, 8]));
    attrs.insert("offset".into(), json!([0, 0, 0]));
    attrs.insert("axis_names".into(), json!(["z", "y", "x"]));
    attrs.insert("units".into(), json!(["nm", "nm", "nm"]));
    let chunk = size.clamp(1, 64) as u64;
    // Chunk by chunk, so a large demo needs no more memory than a small one.
    let volume = SynthVolume {
        shape: vec![size as u64; 3],
        chunks: vec![chunk; 3],
        dtype: LabelDtype::U64,
        palette: DEMO_PALETTE.to_vec(),
        seed: 42,
        format,
        compression: Compression::BloscLz4,
    };
    write_synth_volume(&path, &volume, attrs)?;
    Ok(path)
}
