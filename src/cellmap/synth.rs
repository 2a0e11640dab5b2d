//! Writing CellMap crop groups in the challenge layout (zarr v2 with blosc, or v3), for tests,
//! the demo and the docs:
//!
//! ```text
//! crop1/                     group: cellmap.annotation {version, class_names, ...}
//!   mito_mem/                group: cellmap.annotation {class_name, annotation_type}, multiscales (OME-NGFF 0.4)
//!     s0/                    array: cellmap.annotation {..., complement_counts}
//!     s1/                    every second voxel of s0, voxel size x2
//!   ...
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ndarray::{ArrayD, IxDyn, Slice};
use serde_json::{Map, Value, json};

use super::attrs::{AnnotationKind, Encoding};
use crate::error::Error;
use crate::groupings::ClassGroupings;
use crate::label::LabelArray;
use crate::synth::{splitmix64, write_labels};
use crate::volume::ZarrFormat;
use crate::with_labels;
use crate::zarr_array::{Compression, create_group};

/// One class of a crop to write.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassSpec {
    /// Class name (the sub-group's name).
    pub name: String,
    /// Semantic or instance.
    pub kind: AnnotationKind,
    /// Its codes.
    pub encoding: Encoding,
    /// The values at `s0` (any label dtype, 2-D to 5-D).
    pub values: LabelArray,
    /// Voxel size at `s0`, one per axis.
    pub voxel_size: Vec<f64>,
    /// Offset (OME-NGFF translation) at `s0`, one per axis.
    pub offset: Vec<f64>,
    /// Number of scales written: `s0` and, for `n > 1`, `s1`..: every second voxel of the level
    /// before, voxel size doubled, translation moved by half a voxel of the level before.
    pub scales: usize,
    /// Chunk shape of every level.
    pub chunks: Vec<u64>,
}

impl ClassSpec {
    /// A class of `values` with voxel size 8 nm, offset 0, one scale, chunks of up to 64.
    pub fn new(
        name: impl Into<String>,
        kind: AnnotationKind,
        encoding: Encoding,
        values: LabelArray,
    ) -> Self {
        let dims = values.shape().len();
        let chunks = values
            .shape()
            .iter()
            .map(|&s| s.clamp(1, 64) as u64)
            .collect();
        Self {
            name: name.into(),
            kind,
            encoding,
            values,
            voxel_size: vec![8.0; dims],
            offset: vec![0.0; dims],
            scales: 1,
            chunks,
        }
    }
}

/// A crop to write: the classes its `class_names` list, and the sub-groups written. A name
/// listed without a spec gives a crop with a missing sub-group; a spec not listed gives a
/// sub-group the crop ignores.
#[derive(Clone, Debug, PartialEq)]
pub struct CropSpec {
    /// `cellmap.annotation.class_names`.
    pub class_names: Vec<String>,
    /// The class sub-groups to write.
    pub classes: Vec<ClassSpec>,
    /// Zarr v2 (the challenge's format) or v3.
    pub format: ZarrFormat,
    /// Chunk compression (the challenge uses blosc).
    pub compression: Compression,
}

impl CropSpec {
    /// A crop listing exactly `classes`, in zarr v2 with blosc-lz4, as the challenge stores them.
    pub fn new(classes: Vec<ClassSpec>) -> Self {
        Self {
            class_names: classes.iter().map(|c| c.name.clone()).collect(),
            classes,
            format: ZarrFormat::V2,
            compression: Compression::BloscLz4,
        }
    }
}

/// The `cellmap.annotation` attributes of a crop group listing `class_names`.
pub fn crop_attributes(name: &str, class_names: &[String]) -> Map<String, Value> {
    let annotation = json!({
        "version": "0.1.1",
        "name": name,
        "description": "synthetic crop written by annomask",
        "created_by": [],
        "created_with": ["annomask"],
        "start_date": null,
        "end_date": null,
        "duration_days": null,
        "protocol_uri": null,
        "class_names": class_names,
    });
    wrap(annotation)
}

fn wrap(annotation: Value) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("cellmap".into(), json!({ "annotation": annotation }));
    m
}

/// `annotation_type` of a class.
fn annotation_type(kind: AnnotationKind, encoding: &Encoding) -> Value {
    let codes: Map<String, Value> = encoding
        .codes()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({"type": kind.name(), "encoding": codes})
}

/// The attributes of a class group: `cellmap.annotation` and OME-NGFF 0.4 multiscales with one
/// dataset per level `(path, voxel size, translation)`.
pub fn class_group_attributes(
    name: &str,
    kind: AnnotationKind,
    encoding: &Encoding,
    levels: &[(String, Vec<f64>, Vec<f64>)],
) -> Map<String, Value> {
    let dims = levels.first().map_or(0, |l| l.1.len());
    let axes: Vec<Value> = crate::geometry::default_axis_names(dims)
        .into_iter()
        .map(|a| json!({"name": a, "type": "space", "unit": "nanometer"}))
        .collect();
    let datasets: Vec<Value> = levels
        .iter()
        .map(|(path, scale, translation)| {
            json!({"path": path, "coordinateTransformations": [
                {"type": "scale", "scale": scale},
                {"type": "translation", "translation": translation}]})
        })
        .collect();
    let mut attrs = wrap(json!({
        "class_name": name,
        "annotation_type": annotation_type(kind, encoding),
    }));
    attrs.insert(
        "multiscales".into(),
        json!([{"version": "0.4", "name": name, "axes": axes, "datasets": datasets}]),
    );
    attrs
}

/// Every second voxel along each axis.
fn downsample(values: &LabelArray) -> LabelArray {
    with_labels!(values, LabelArray, a => LabelArray::from(
        a.slice_each_axis(|_| Slice::new(0, None, 2)).to_owned()).standard())
}

/// Voxels per code (`absent`, `unknown`) of `values`.
fn complement_counts(values: &LabelArray, encoding: &Encoding) -> BTreeMap<String, u64> {
    let s = values.as_slice();
    [("absent", encoding.absent), ("unknown", encoding.unknown)]
        .into_iter()
        .filter_map(|(k, code)| {
            let code = code?;
            let n = (0..s.len()).filter(|&i| s.bits_at(i) == code).count() as u64;
            Some((k.to_string(), n))
        })
        .collect()
}

/// Writes a crop group at `path` and returns the path.
///
/// ```
/// use annomask::cellmap::attrs::{AnnotationKind, Encoding};
/// use annomask::cellmap::synth::{write_crop, ClassSpec, CropSpec, SEMANTIC};
/// use annomask::{cellmap::CropGroup, LabelArray};
/// let values = |v: Vec<u8>| LabelArray::from(ndarray::ArrayD::from_shape_vec(vec![2, 2], v).unwrap());
/// let mut spec = CropSpec::new(vec![
///     ClassSpec::new("mito_mem", AnnotationKind::Semantic, SEMANTIC, values(vec![0, 1, 255, 1])),
///     ClassSpec::new("ecs", AnnotationKind::Semantic,
///         Encoding { absent: Some(0), present: Some(1), unknown: None }, values(vec![1, 0, 0, 0])),
/// ]);
/// spec.class_names.push("er_mem".into()); // listed without a sub-group: opening fails
/// let dir = tempfile::tempdir()?;
/// let path = write_crop(&dir.path().join("crop7"), &spec)?;
/// let err = CropGroup::open(&path).unwrap_err();
/// assert!(err.to_string().contains("class \"er_mem\" is listed"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_crop(path: &Path, spec: &CropSpec) -> Result<PathBuf, Error> {
    let name = path
        .file_name()
        .map_or_else(String::new, |f| f.to_string_lossy().into_owned());
    create_group(
        path,
        spec.format,
        &crop_attributes(&name, &spec.class_names),
    )?;
    for class in &spec.classes {
        let mut levels: Vec<(String, Vec<f64>, Vec<f64>)> = Vec::new();
        let mut values = class.values.clone();
        let (mut voxel_size, mut offset) = (class.voxel_size.clone(), class.offset.clone());
        for level in 0..class.scales.max(1) {
            if level > 0 {
                values = downsample(&values);
                offset = offset
                    .iter()
                    .zip(&voxel_size)
                    .map(|(o, v)| o + v / 2.0)
                    .collect();
                voxel_size = voxel_size.iter().map(|v| v * 2.0).collect();
            }
            let scale = format!("s{level}");
            let counts = complement_counts(&values, &class.encoding);
            let array_attrs = wrap(json!({
                "class_name": class.name,
                "annotation_type": annotation_type(class.kind, &class.encoding),
                "complement_counts": counts,
            }));
            let chunks: Vec<u64> = class
                .chunks
                .iter()
                .zip(values.shape())
                .map(|(&c, &s)| c.min(s.max(1) as u64))
                .collect();
            write_labels(
                &path.join(&class.name).join(&scale),
                &values,
                &chunks,
                spec.format,
                spec.compression,
                array_attrs,
            )?;
            levels.push((scale, voxel_size.clone(), offset.clone()));
        }
        create_group(
            path.join(&class.name),
            spec.format,
            &class_group_attributes(&class.name, class.kind, &class.encoding, &levels),
        )?;
    }
    Ok(path.to_path_buf())
}

/// The demo's encodings: semantic `uint8` with `unknown = 255`.
pub const SEMANTIC: Encoding = Encoding {
    absent: Some(0),
    present: Some(1),
    unknown: Some(255),
};

/// The demo crop's class groupings: `mito` (membrane and lumen), `er` (its lumen is not
/// annotated in the crop: zeroed), and `mito_instances` (the instance class `mito`).
pub fn demo_groupings() -> ClassGroupings {
    ClassGroupings::new([
        ("mito", vec!["mito_mem", "mito_lum"]),
        ("er", vec!["er_mem", "er_lum"]),
        ("mito_instances", vec!["mito"]),
    ])
    .expect("demo groupings are valid")
}

/// Writes the demo crop, `dir/crop1`: a `size`³ crop (8 nm voxels, zarr `format`, blosc-lz4,
/// scales `s0` and `s1`) listing `mito_mem`, `mito_lum` (semantic `uint8`, unknown `255` in the
/// slab `z < size / 4`), `mito` (instance `uint64`, absent 0, unknown 2^64-1 in the same slab)
/// and `er_mem` (semantic `uint8` without an unknown code); `er_lum` is not annotated.
pub fn write_demo_crop(dir: &Path, size: usize, format: ZarrFormat) -> Result<PathBuf, Error> {
    write_crop(&dir.join("crop1"), &demo_crop_spec(size, format))
}

/// The demo crop of [`write_demo_crop`] as a spec (offset 0), to place or change before writing.
pub fn demo_crop_spec(size: usize, format: ZarrFormat) -> CropSpec {
    let shape = [size; 3];
    let n = size * size * size;
    let mut mito = vec![0u64; n];
    let mut mem = vec![0u8; n];
    let mut lum = vec![0u8; n];
    let mut er = vec![0u8; n];
    for (i, ((mi, (me, lu)), e)) in mito
        .iter_mut()
        .zip(mem.iter_mut().zip(lum.iter_mut()))
        .zip(er.iter_mut())
        .enumerate()
    {
        let (z, y, x) = (i / (size * size), i / size % size, i % size);
        let cube = ((z / 4) * 1_000_003 + (y / 4)) * 1_000_003 + x / 4;
        let h = splitmix64(cube as u64 ^ 42);
        let surface = [z, y, x].iter().any(|c| c % 4 == 0 || c % 4 == 3);
        let unknown = z < size / 4;
        if h.is_multiple_of(3) {
            *mi = cube as u64 + 1;
            *me = surface as u8;
            *lu = !surface as u8;
        }
        *e = (h % 5 == 1) as u8;
        if unknown {
            (*mi, *me, *lu) = (u64::MAX, 255, 255);
        }
    }
    let array =
        |v: Vec<u8>| LabelArray::from(ArrayD::from_shape_vec(IxDyn(&shape), v).expect("n voxels"));
    let mut classes = vec![
        ClassSpec::new("mito_mem", AnnotationKind::Semantic, SEMANTIC, array(mem)),
        ClassSpec::new("mito_lum", AnnotationKind::Semantic, SEMANTIC, array(lum)),
        ClassSpec::new(
            "mito",
            AnnotationKind::Instance,
            Encoding {
                absent: Some(0),
                present: None,
                unknown: Some(u64::MAX),
            },
            LabelArray::from(ArrayD::from_shape_vec(IxDyn(&shape), mito).expect("n voxels")),
        ),
        ClassSpec::new(
            "er_mem",
            AnnotationKind::Semantic,
            Encoding {
                absent: Some(0),
                present: Some(1),
                unknown: None,
            },
            array(er),
        ),
    ];
    for c in &mut classes {
        c.scales = 2;
    }
    let mut spec = CropSpec::new(classes);
    spec.format = format;
    spec
}

/// A dataset in the CellMap challenge layout, as [`write_challenge_dataset`] writes it.
#[derive(Clone, Debug, PartialEq)]
pub struct ChallengeDataset {
    /// The dataset, `<dir>/<name>.zarr`.
    pub root: PathBuf,
    /// The raw OME-NGFF multiscale group, `<root>/recon-1/em/fibsem-uint8` (levels `s0`, `s1`).
    pub raw: PathBuf,
    /// The crop group, `<root>/recon-1/labels/groundtruth/crop1`.
    pub crop: PathBuf,
    /// Voxel size at `s0` (nm), of the raw and the crop alike.
    pub voxel_size: Vec<f64>,
    /// Where the crop starts in the raw's `s0` voxels (its translation is this times the
    /// voxel size).
    pub crop_offset: Vec<u64>,
    /// Shape of the raw at `s0`.
    pub raw_shape: Vec<u64>,
}

/// Raw voxels of the synthetic EM: smooth-ish grey values, 64..=191, no structure.
fn synthetic_raw(shape: [usize; 3]) -> LabelArray {
    let n = shape.iter().product::<usize>();
    let values: Vec<u8> = (0..n)
        .map(|i| {
            let (z, y, x) = (
                i / (shape[1] * shape[2]),
                i / shape[2] % shape[1],
                i % shape[2],
            );
            let coarse = splitmix64(((z / 8) * 4099 + y / 8) as u64 * 4099 + (x / 8) as u64);
            64 + (coarse % 96) as u8 + (splitmix64(i as u64) % 32) as u8
        })
        .collect();
    LabelArray::from(ArrayD::from_shape_vec(IxDyn(&shape), values).expect("n voxels"))
}

/// Writes a small dataset in the CellMap segmentation challenge's layout (zarr v2, blosc-lz4,
/// 64^3 chunks, OME-NGFF 0.4 multiscales, 8 nm voxels), what cellmap-data's
/// `CellMapDataSplit` reads:
///
/// ```text
/// <dir>/<name>.zarr/recon-1/em/fibsem-uint8/        raw: uint8 (size + 2 margin)^3, s0 and s1
/// <dir>/<name>.zarr/recon-1/labels/groundtruth/crop1/  the demo crop group (`write_demo_crop`),
///                                                   size^3, translated by margin voxels
/// ```
///
/// The crop's translation lies on the raw's `s0` grid (`margin` voxels of 8 nm on every axis),
/// so the raw covers the crop with `margin` voxels to spare on each side.
///
/// ```
/// use annomask::cellmap::synth::write_challenge_dataset;
/// use annomask::{MissingAnnotationsMask, MaskOptions};
/// let dir = tempfile::tempdir()?;
/// let d = write_challenge_dataset(dir.path(), "jrc_synth", 16, 4)?;
/// assert_eq!(d.crop_offset, vec![4, 4, 4]);
/// assert_eq!(d.raw_shape, vec![24, 24, 24]);
/// assert!(d.raw.join("s1/.zarray").is_file());
/// let mask = MissingAnnotationsMask::open(&d.crop, annomask::cellmap::synth::demo_groupings(),
///     MaskOptions::default())?;
/// assert_eq!(mask.shape(), &[16, 16, 16]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_challenge_dataset(
    dir: &Path,
    name: &str,
    size: usize,
    margin: usize,
) -> Result<ChallengeDataset, Error> {
    let format = ZarrFormat::V2;
    let voxel = 8.0;
    let root = dir.join(format!("{name}.zarr"));
    let empty = Map::new();
    for group in [
        "",
        "recon-1",
        "recon-1/em",
        "recon-1/labels",
        "recon-1/labels/groundtruth",
    ] {
        create_group(root.join(group), format, &empty)?;
    }
    // The raw: s0 and s1 (every second voxel, voxel size x2, translation half a voxel of s0).
    let raw = root.join("recon-1/em/fibsem-uint8");
    let edge = size + 2 * margin;
    let mut values = synthetic_raw([edge; 3]);
    let (mut scale, mut translation) = (vec![voxel; 3], vec![0.0; 3]);
    let mut datasets = Vec::new();
    for level in 0..2 {
        if level > 0 {
            values = downsample(&values);
            translation = translation
                .iter()
                .zip(&scale)
                .map(|(t, v)| t + v / 2.0)
                .collect();
            scale = scale.iter().map(|v| v * 2.0).collect();
        }
        let chunks: Vec<u64> = values
            .shape()
            .iter()
            .map(|&s| s.clamp(1, 64) as u64)
            .collect();
        let path = format!("s{level}");
        write_labels(
            &raw.join(&path),
            &values,
            &chunks,
            format,
            Compression::BloscLz4,
            Map::new(),
        )?;
        datasets.push(json!({"path": path, "coordinateTransformations": [
            {"type": "scale", "scale": scale},
            {"type": "translation", "translation": translation}]}));
    }
    let axes: Vec<Value> = ["z", "y", "x"]
        .iter()
        .map(|a| json!({"name": a, "type": "space", "unit": "nanometer"}))
        .collect();
    let mut attrs = Map::new();
    attrs.insert(
        "multiscales".into(),
        json!([{"version": "0.4", "name": "fibsem-uint8", "axes": axes, "datasets": datasets}]),
    );
    create_group(&raw, format, &attrs)?;
    // The crop, translated onto the raw's grid.
    let mut spec = demo_crop_spec(size, format);
    for class in &mut spec.classes {
        class.voxel_size = vec![voxel; 3];
        class.offset = vec![margin as f64 * voxel; 3];
    }
    let crop = write_crop(&root.join("recon-1/labels/groundtruth/crop1"), &spec)?;
    Ok(ChallengeDataset {
        root,
        raw,
        crop,
        voxel_size: vec![voxel; 3],
        crop_offset: vec![margin as u64; 3],
        raw_shape: vec![edge as u64; 3],
    })
}
