//! Crop groups on disk (SPEC 1.4) through the array API: zarr v2 with blosc (the challenge's
//! layout) and v3, semantic and instance classes of several dtypes, classes the crop lacks,
//! encodings with and without `unknown`, scales, random ROIs, on the CPU and the GPU engine
//! (whose blocks are split small); the format detection; and every bad input as a typed error
//! naming the thing at fault.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use annomask::cellmap::attrs::{AnnotationKind, Encoding};
use annomask::cellmap::synth::{ClassSpec, CropSpec, write_crop};
use annomask::cellmap::{CropGroup, CropOptions, CropReport, CropSource};
use annomask::zarr_array::{ArraySpec, Compression, create_array, create_group};
use annomask::{
    ChannelGroupings, ClassGroupings, CropError, Engine, EngineChoice, Error, GeometryError,
    Groupings, GroupingsError, LabelArray, LabelDtype, MaskOptions, MissingAnnotationsMask, Roi,
    StorageError, ZarrFormat,
};
use common::crop::{CropCase, OracleClass, crop_case, write_case};
use ndarray::{ArrayD, IxDyn, Slice};
use proptest::prelude::*;
use serde_json::{Map, json};

fn cpu() -> MaskOptions {
    MaskOptions::default().engine(EngineChoice::Cpu)
}

/// The engines to check: the CPU, and the two GPU engines where there is an adapter.
fn engines() -> Vec<Engine> {
    let mut out = vec![Engine::cpu()];
    if let Some((a, b)) = common::gpus() {
        out.extend([Engine::gpu(a.clone()), Engine::gpu(b.clone())]);
    }
    out
}

/// A fixed crop: `shape` voxels, six classes of five dtypes, channels over them and over a
/// class the crop lacks.
fn fixture_case(shape: &[usize]) -> CropCase {
    let n: usize = shape.iter().product();
    let draw = |seed: u64, palette: &[u64]| -> Vec<u64> {
        (0..n as u64)
            .map(|i| {
                palette[(annomask::synth::splitmix64(seed ^ i) % palette.len() as u64) as usize]
            })
            .collect()
    };
    let class =
        |name: &str, dtype, instance, codes: (Option<u64>, Option<u64>, Option<u64>), raw| {
            OracleClass {
                name: name.into(),
                dtype,
                instance,
                absent: codes.0,
                present: codes.1,
                unknown: codes.2,
                raw,
            }
        };
    let sem = (Some(0), Some(1), Some(255));
    CropCase {
        shape: shape.to_vec(),
        classes: vec![
            class(
                "mito_mem",
                LabelDtype::U8,
                false,
                sem,
                draw(1, &[0, 0, 1, 255]),
            ),
            class(
                "mito_lum",
                LabelDtype::U8,
                false,
                sem,
                draw(2, &[0, 1, 1, 255]),
            ),
            class(
                "mito",
                LabelDtype::U64,
                true,
                (Some(0), None, Some(u64::MAX)),
                draw(3, &[0, 0, 5, 1 << 40, u64::MAX]),
            ),
            class(
                "er_mem",
                LabelDtype::U16,
                false,
                (Some(0), Some(1), None),
                draw(4, &[0, 1]),
            ),
            class(
                "nuc",
                LabelDtype::I32,
                true,
                (Some(0), None, None),
                draw(5, &[0, 3, u64::MAX - 6]),
            ),
            class(
                "ves_mem",
                LabelDtype::I8,
                false,
                (Some(0), Some(1), Some(u64::MAX)),
                draw(6, &[0, 1, u64::MAX, 255]),
            ),
        ],
        channels: vec![
            vec!["mito_mem".into(), "mito_lum".into()],
            vec!["er_mem".into(), "er_lum".into()],
            vec!["mito".into()],
            vec!["nuc".into(), "mito_lum".into(), "ves_mem".into()],
            vec!["er_mem".into()],
        ],
    }
}

const SHAPE: [usize; 3] = [9, 10, 7];

/// The fixture written once per format: (path, case).
fn fixture(format: ZarrFormat) -> &'static (PathBuf, CropCase) {
    static CROPS: OnceLock<[(PathBuf, CropCase); 2]> = OnceLock::new();
    let crops = CROPS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let case = fixture_case(&SHAPE);
        let v2 = write_case(
            &case,
            &dir.join("crop_v2"),
            ZarrFormat::V2,
            Compression::BloscLz4,
        );
        let v3 = write_case(
            &case,
            &dir.join("crop_v3"),
            ZarrFormat::V3,
            Compression::Zstd,
        );
        [(v2, case.clone()), (v3, case)]
    });
    &crops[(format == ZarrFormat::V3) as usize]
}

/// The channel-major oracle output cut to the box `start`, `size`.
fn sub_box(
    full: &[u8],
    channels: usize,
    shape: &[usize],
    start: &[usize],
    size: &[usize],
) -> Vec<u8> {
    let mut dims = vec![channels];
    dims.extend_from_slice(shape);
    let a = ArrayD::from_shape_vec(IxDyn(&dims), full.to_vec()).unwrap();
    let cut = a.slice_each_axis(|ax| match ax.axis.index() {
        0 => Slice::from(..),
        d => Slice::from(start[d - 1] as isize..(start[d - 1] + size[d - 1]) as isize),
    });
    cut.iter().copied().collect()
}

fn open(path: &Path, groupings: ClassGroupings, engine: Engine) -> MissingAnnotationsMask {
    let crop = CropGroup::open(path).unwrap();
    MissingAnnotationsMask::from_crop(
        crop,
        groupings,
        MaskOptions::default().verify(true),
        &CropOptions::default(),
        engine,
    )
    .unwrap()
}

#[test]
fn whole_crop_equals_the_oracle_v2_and_v3_every_engine() {
    for format in [ZarrFormat::V2, ZarrFormat::V3] {
        let (path, case) = fixture(format);
        let (want_mask, want_targets) = case.oracle();
        for engine in engines() {
            let name = engine.describe();
            let mask = open(path, case.groupings(), engine);
            assert_eq!(mask.axes(), ["c", "z", "y", "x"]);
            assert_eq!(mask.shape(), &[9, 10, 7]);
            assert_eq!(mask.voxel_size().as_slice(), &[8.0; 3]);
            assert_eq!(mask.num_channels(), 5);
            let (m, t) = mask.get_with_targets(&mask.roi()).unwrap();
            assert_eq!(m.shape(), &[5, 9, 10, 7]);
            assert_eq!(m.as_slice().unwrap(), &want_mask[..], "{format:?} {name}");
            assert_eq!(
                t.as_slice().unwrap(),
                &want_targets[..],
                "{format:?} {name}"
            );
            assert_eq!(mask.get(&mask.roi()).unwrap(), m);
            assert_eq!(mask.get_targets(&mask.roi()).unwrap(), t);
        }
    }
}

#[test]
fn open_detects_the_crop_and_reads_only_what_it_needs() {
    let (path, _) = fixture(ZarrFormat::V2);
    assert!(CropGroup::is_crop_group(path));
    let text = r#"[["mito", ["mito_mem", "mito_lum"]], ["er", ["er_mem", "er_lum"]]]"#;
    let groupings = ChannelGroupings::from_json_str(text, "g.json").unwrap();
    let mask = MissingAnnotationsMask::open(path, groupings, cpu()).unwrap();
    let source = mask.source_as::<CropSource>().unwrap();
    let read: Vec<&str> = source
        .plan()
        .classes()
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        read,
        ["mito_mem", "mito_lum"],
        "er is zeroed: er_mem is not read"
    );
    assert_eq!(source.class_volumes().len(), 2);
    assert!(source.class_volumes()[0].name().ends_with("mito_mem/s0"));
    assert!(mask.plan().zeroed(1) && !mask.plan().zeroed(0));
    assert_eq!(source.scale(), "s0");
    assert!(mask.source_as::<annomask::LabelSource>().is_none());
    assert_eq!(mask.source().format(), "CellMap crop group");
    assert_eq!(mask.name(), "crop_v2_missing_annotations_mask");
    assert_eq!(
        mask.attrs()["cellmap"]["annotation"]["class_names"][2],
        json!("mito")
    );
    let (m, t) = mask.get_with_targets(&mask.roi()).unwrap();
    let er_mask = m.index_axis(ndarray::Axis(0), 1);
    assert!(
        er_mask.iter().all(|&v| v == 0),
        "a lacking class zeroes its channel"
    );
    assert!(t.index_axis(ndarray::Axis(0), 1).iter().all(|&v| v == 0));
    let table = annomask::report::channel_table(&mask, &m);
    for want in [
        "channel  classes               trained voxels  why",
        "on where mito_mem != 255 and mito_lum != 255",
        "0 (0.0%)  off everywhere: not annotated in this crop: er_lum",
    ] {
        assert!(table.contains(want), "{want:?} not in\n{table}");
    }
    let plan_text = mask.plan().to_string();
    assert!(
        plan_text.contains("zeroed: not in the crop: er_lum"),
        "{plan_text}"
    );
}

/// The point of the issue: cellmap-data binarizes `value > 0`, so `unknown = 255` became a
/// positive target. Here it is neither trained nor positive.
#[test]
fn unknown_is_never_trained_nor_positive() {
    let dir = tempfile::tempdir().unwrap();
    let values =
        LabelArray::from(ArrayD::from_shape_vec(IxDyn(&[1, 4]), vec![0u8, 1, 255, 1]).unwrap());
    let mut spec = CropSpec::new(vec![ClassSpec::new(
        "mito_mem",
        AnnotationKind::Semantic,
        annomask::cellmap::synth::SEMANTIC,
        values,
    )]);
    spec.format = ZarrFormat::V2;
    let path = write_crop(&dir.path().join("crop"), &spec).unwrap();
    let g = ClassGroupings::new([("mito", vec!["mito_mem"])]).unwrap();
    for engine in engines() {
        let mask = open(&path, g.clone(), engine);
        let (m, t) = mask.get_with_targets(&mask.roi()).unwrap();
        assert_eq!(m.as_slice().unwrap(), &[1, 1, 0, 1]);
        assert_eq!(t.as_slice().unwrap(), &[0, 1, 0, 1]);
    }
}

#[test]
fn scales_have_their_own_geometry() {
    let dir = tempfile::tempdir().unwrap();
    let path = annomask::cellmap::synth::write_demo_crop(dir.path(), 12, ZarrFormat::V3).unwrap();
    let g = annomask::cellmap::synth::demo_groupings();
    let s1 = MissingAnnotationsMask::open_with(
        &path,
        g.clone(),
        cpu(),
        &CropOptions::default().scale("s1"),
    )
    .unwrap();
    assert_eq!(s1.shape(), &[6, 6, 6]);
    assert_eq!(s1.voxel_size().as_slice(), &[16.0; 3]);
    assert_eq!(s1.roi().offset().as_slice(), &[4.0; 3]);
    let classes = s1.source_as::<CropSource>().unwrap().class_volumes();
    assert!(classes[0].name().ends_with("s1"));
    // s1 is every second voxel of s0: so is its mask.
    let s0 = MissingAnnotationsMask::open(&path, g, cpu()).unwrap();
    let (m0, t0) = s0.get_with_targets(&s0.roi()).unwrap();
    let (m1, t1) = s1.get_with_targets(&s1.roi()).unwrap();
    let every_second = |a: &ArrayD<u8>| {
        a.slice_each_axis(|ax| match ax.axis.index() {
            0 => Slice::from(..),
            _ => Slice::new(0, None, 2),
        })
        .to_owned()
    };
    assert_eq!(m1, every_second(&m0));
    assert_eq!(t1, every_second(&t0));
    assert!(m0.iter().any(|&v| v == 1) && m0.iter().any(|&v| v == 0));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Random voxel-aligned ROIs of the fixture through `get_with_targets`, every engine.
    #[test]
    fn random_rois_equal_the_oracle(
        v3 in any::<bool>(),
        corner in prop::collection::vec(0usize..10, 3),
        extent in prop::collection::vec(1usize..11, 3),
    ) {
        let format = if v3 { ZarrFormat::V3 } else { ZarrFormat::V2 };
        let (path, case) = fixture(format);
        let start: Vec<usize> = corner.iter().zip(SHAPE).map(|(&c, s)| c % s).collect();
        let size: Vec<usize> = extent.iter().zip(&start).zip(SHAPE).map(|((&e, &b), s)| e.min(s - b)).collect();
        let roi = Roi::new(
            start.iter().map(|&b| 8.0 * b as f64).collect::<Vec<_>>(),
            size.iter().map(|&s| 8.0 * s as f64).collect::<Vec<_>>(),
        );
        let (full_mask, full_targets) = case.oracle();
        let want_mask = sub_box(&full_mask, 5, &SHAPE, &start, &size);
        let want_targets = sub_box(&full_targets, 5, &SHAPE, &start, &size);
        for engine in engines() {
            let mask = open(path, case.groupings(), engine);
            let (m, t) = mask.get_with_targets(&roi).unwrap();
            prop_assert_eq!(m.as_slice().unwrap(), &want_mask[..]);
            prop_assert_eq!(t.as_slice().unwrap(), &want_targets[..]);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    /// Random crops (every dtype, any encoding) written to disk and read back whole.
    #[test]
    fn random_crops_round_trip(case in crop_case(), v3 in any::<bool>()) {
        prop_assume!(!case.classes.is_empty() && !case.channels.is_empty());
        let dir = tempfile::tempdir().unwrap();
        let (format, compression) = if v3 { (ZarrFormat::V3, Compression::Gzip) } else { (ZarrFormat::V2, Compression::BloscZstd) };
        let path = write_case(&case, &dir.path().join("crop"), format, compression);
        let (want_mask, want_targets) = case.oracle();
        let engine = engines().pop().unwrap();
        let mask = open(&path, case.groupings(), engine);
        let (m, t) = mask.get_with_targets(&mask.roi()).unwrap();
        prop_assert_eq!(m.as_slice().unwrap(), &want_mask[..]);
        prop_assert_eq!(t.as_slice().unwrap(), &want_targets[..]);
    }
}

#[test]
fn read_block_and_compute_block_split_io_from_compute() {
    let (path, case) = fixture(ZarrFormat::V2);
    let mask = open(path, case.groupings(), Engine::cpu());
    let region = annomask::VoxelRegion {
        start: vec![1, 2, 3],
        shape: vec![4, 5, 2],
    };
    let block = mask.read_block(&region).unwrap();
    assert_eq!(block.shape(), &[4, 5, 2]);
    let mut m = vec![9u8; 5 * 40];
    let mut t = vec![9u8; 5 * 40];
    mask.compute_block_with_targets(&block, &mut m, &mut t)
        .unwrap();
    let (full_mask, full_targets) = case.oracle();
    assert_eq!(m, sub_box(&full_mask, 5, &SHAPE, &[1, 2, 3], &[4, 5, 2]));
    assert_eq!(t, sub_box(&full_targets, 5, &SHAPE, &[1, 2, 3], &[4, 5, 2]));
    let mut m2 = vec![9u8; 5 * 40];
    mask.compute_block(&block, &mut m2).unwrap();
    assert_eq!(m2, m);
}

/// Every channel zeroed: no class is read, the geometry comes from the crop's first class.
#[test]
fn all_channels_zeroed_reads_nothing() {
    let (path, _) = fixture(ZarrFormat::V3);
    let g = ClassGroupings::new([("er", vec!["er_lum"]), ("x", vec!["mito", "ghost"])]).unwrap();
    let mask = MissingAnnotationsMask::open(path, g, cpu()).unwrap();
    assert!(
        mask.source_as::<CropSource>()
            .unwrap()
            .class_volumes()
            .is_empty()
    );
    assert_eq!(mask.shape(), &[9, 10, 7]);
    let (m, t) = mask.get_with_targets(&mask.roi()).unwrap();
    assert!(m.iter().chain(t.iter()).all(|&v| v == 0));
    let outside = annomask::VoxelRegion {
        start: vec![0, 0, 0],
        shape: vec![10, 1, 1],
    };
    let err = mask.read_block(&outside).unwrap_err();
    assert!(
        matches!(err, Error::Storage(StorageError::Read { .. })),
        "{err}"
    );
}

#[test]
fn inspect_report_lists_classes_plan_and_warnings() {
    let (path, case) = fixture(ZarrFormat::V2);
    let crop = CropGroup::open(path).unwrap();
    let report = CropReport::new(&crop, Some(&case.groupings()), &CropOptions::default());
    let text = report.to_string();
    for want in [
        "mito_mem  semantic  uint8",
        "mito      instance  uint64",
        "{absent: 0, present: 1, unknown: 255}",
        "er_lum",
        "no (not in the crop)",
        "zeroed: not in the crop: er_lum",
        "class \"er_lum\" of the groupings is not in this crop (not annotated): channel(s) ch1 zeroed",
    ] {
        assert!(text.contains(want), "{want:?} not in\n{text}");
    }
    let json = report.to_json();
    let rows = json["classes"].as_array().unwrap();
    assert_eq!(rows.len(), 7);
    assert_eq!(
        rows[0]["complement_counts"]["unknown"],
        json!(case.classes[0].raw.iter().filter(|&&v| v == 255).count())
    );
    assert_eq!(rows[6]["in_crop"], json!(false));
    assert_eq!(json["plan"]["classes_read"].as_array().unwrap().len(), 6);
    // ves_mem is int8 with unknown = -1 (2^64-1): representable. A code that is not:
    let mut bad = CropSpec::new(vec![ClassSpec::new(
        "a",
        AnnotationKind::Semantic,
        Encoding {
            absent: Some(0),
            present: Some(1),
            unknown: Some(255),
        },
        LabelArray::from(ArrayD::from_shape_vec(IxDyn(&[2, 2]), vec![0i8, 1, -1, 1]).unwrap()),
    )]);
    bad.format = ZarrFormat::V3;
    let dir = tempfile::tempdir().unwrap();
    let p = write_crop(&dir.path().join("c"), &bad).unwrap();
    let crop = CropGroup::open(&p).unwrap();
    let g = ClassGroupings::new([("a", vec!["a"])]).unwrap();
    let report = CropReport::new(&crop, Some(&g), &CropOptions::default().scale("s7"));
    let text = report.to_string();
    assert!(
        text.contains("class \"a\" has no scale \"s7\" (its scales: s0)"),
        "{text}"
    );
    let report = CropReport::new(&crop, Some(&g), &CropOptions::default());
    assert!(
        report
            .to_string()
            .contains("unknown code 255 cannot occur in its int8 array")
    );
}

// ---------------------------------------------------------------- errors

fn open_err(path: &Path, groupings: impl Into<ChannelGroupings>) -> Error {
    MissingAnnotationsMask::open(path, groupings, cpu()).unwrap_err()
}

fn mito() -> ClassGroupings {
    ClassGroupings::new([("mito", vec!["mito_mem"])]).unwrap()
}

/// A crop whose listed classes are `listed`, with class groups `groups` of shape/voxel/offset.
fn crop_with(dir: &Path, name: &str, listed: &[&str], groups: Vec<ClassSpec>) -> PathBuf {
    let mut spec = CropSpec::new(groups);
    spec.class_names = listed.iter().map(|s| s.to_string()).collect();
    write_crop(&dir.join(name), &spec).unwrap()
}

fn u8_class(name: &str, shape: &[usize]) -> ClassSpec {
    let n = shape.iter().product();
    ClassSpec::new(
        name,
        AnnotationKind::Semantic,
        annomask::cellmap::synth::SEMANTIC,
        LabelArray::from(ArrayD::from_shape_vec(IxDyn(shape), vec![1u8; n]).unwrap()),
    )
}

#[test]
fn mismatched_class_arrays_name_both_arrays() {
    let dir = tempfile::tempdir().unwrap();
    let g = ClassGroupings::new([("mito", vec!["mito_mem", "mito_lum"])]).unwrap();
    let mut voxel = u8_class("mito_lum", &[4, 4, 4]);
    voxel.voxel_size = vec![4.0, 8.0, 8.0];
    let mut offset = u8_class("mito_lum", &[4, 4, 4]);
    offset.offset = vec![0.0, 8.0, 0.0];
    let cases = [
        (
            u8_class("mito_lum", &[4, 4, 5]),
            "shape: [4, 4, 4] vs [4, 4, 5]",
        ),
        (voxel, "voxel size: (8, 8, 8) vs (4, 8, 8)"),
        (offset, "offset: (0, 0, 0) vs (0, 8, 0)"),
    ];
    for (i, (lum, want)) in cases.into_iter().enumerate() {
        let path = crop_with(
            dir.path(),
            &format!("c{i}"),
            &["mito_mem", "mito_lum"],
            vec![u8_class("mito_mem", &[4, 4, 4]), lum],
        );
        let err = open_err(&path, g.clone());
        let msg = err.to_string();
        assert!(
            matches!(err, Error::Crop(CropError::GeometryMismatch { .. })),
            "{msg}"
        );
        assert!(
            msg.contains(&path.join("mito_mem/s0").display().to_string())
                && msg.contains(&path.join("mito_lum/s0").display().to_string())
                && msg.contains(want),
            "{msg}"
        );
        // inspect reports it instead of failing.
        let report = CropReport::new(
            &CropGroup::open(&path).unwrap(),
            Some(&g),
            &CropOptions::default(),
        );
        assert!(
            report.warnings.iter().any(|w| w.contains(want)),
            "{:?}",
            report.warnings
        );
        // A channel that reads only one of them is fine.
        MissingAnnotationsMask::open(&path, mito(), cpu()).unwrap();
    }
}

#[test]
fn missing_scale_names_class_and_scales() {
    let (path, _) = fixture(ZarrFormat::V2);
    let err =
        MissingAnnotationsMask::open_with(path, mito(), cpu(), &CropOptions::default().scale("s1"))
            .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(&err, Error::Crop(CropError::MissingScale { class, scale, .. }) if class == "mito_mem" && scale == "s1"),
        "{msg}"
    );
    assert!(
        msg.contains("class \"mito_mem\" has no scale \"s1\" (its scales: s0)"),
        "{msg}"
    );
    assert!(
        msg.contains(&path.join("mito_mem").display().to_string()),
        "{msg}"
    );
}

#[test]
fn malformed_crop_and_class_attributes() {
    let dir = tempfile::tempdir().unwrap();
    // The crop's own attributes.
    let bad_crop = dir.path().join("bad_crop");
    let attrs = json!({"cellmap": {"annotation": {"class_names": "mito_mem"}}});
    create_group(&bad_crop, ZarrFormat::V2, attrs.as_object().unwrap()).unwrap();
    let err = open_err(&bad_crop, mito());
    assert!(
        matches!(err, Error::Crop(CropError::CropAttribute { .. })),
        "{err}"
    );
    assert!(
        err.to_string().contains("cellmap.annotation.class_names"),
        "{err}"
    );
    // A listed class without a sub-group.
    let ghost = crop_with(
        dir.path(),
        "ghost",
        &["mito_mem", "ghost"],
        vec![u8_class("mito_mem", &[2, 2])],
    );
    let err = open_err(&ghost, mito());
    assert!(
        matches!(&err, Error::Crop(CropError::MissingClassGroup { class, .. }) if class == "ghost"),
        "{err}"
    );
    // Asking a crop for a class it does not list.
    let (fixture_path, _) = fixture(ZarrFormat::V2);
    let err = CropGroup::open(fixture_path)
        .unwrap()
        .open_class("er_lum", "s0")
        .unwrap_err();
    assert!(
        matches!(&err, Error::Crop(CropError::NotListed { class, .. }) if class == "er_lum"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("is not in cellmap.annotation.class_names (mito_mem, mito_lum, mito,"),
        "{err}"
    );
    // A class whose encoding is malformed: rewrite its group attributes.
    let bad_class = crop_with(
        dir.path(),
        "bad_class",
        &["mito_mem"],
        vec![u8_class("mito_mem", &[2, 2])],
    );
    let mut attrs = Map::new();
    attrs.insert(
        "cellmap".into(),
        json!({"annotation": {"class_name": "mito_mem",
            "annotation_type": {"type": "semantic_segmentation", "encoding": {"unknown": "255"}}}}),
    );
    create_group(bad_class.join("mito_mem"), ZarrFormat::V2, &attrs).unwrap();
    let err = open_err(&bad_class, mito());
    let msg = err.to_string();
    assert!(
        matches!(err, Error::Crop(CropError::ClassAttribute { .. })),
        "{msg}"
    );
    assert!(
        msg.contains("class \"mito_mem\"")
            && msg.contains("cellmap.annotation.annotation_type.encoding.unknown")
            && msg.contains("\"255\" is not an integer code"),
        "{msg}"
    );
    // No class at all: no geometry.
    let empty = crop_with(dir.path(), "empty", &[], vec![]);
    let err = open_err(&empty, mito());
    assert!(
        matches!(err, Error::Crop(CropError::NoClasses { .. })),
        "{err}"
    );
}

#[test]
fn unsupported_class_dtype_names_the_array() {
    let dir = tempfile::tempdir().unwrap();
    let path = crop_with(
        dir.path(),
        "f",
        &["mito_mem"],
        vec![u8_class("mito_mem", &[2, 2])],
    );
    let array = path.join("mito_mem/s0");
    std::fs::remove_dir_all(&array).unwrap();
    create_array(
        &array,
        &ArraySpec::new(vec![2, 2], vec![2, 2], "float32", ZarrFormat::V2),
    )
    .unwrap();
    let err = open_err(&path, mito());
    let msg = err.to_string();
    assert!(
        matches!(err, Error::Storage(StorageError::UnsupportedDtype { .. })),
        "{msg}"
    );
    assert!(
        msg.contains("mito_mem/s0") && msg.contains("float32"),
        "{msg}"
    );
}

#[test]
fn groupings_of_the_wrong_kind_and_targets_of_a_label_array() {
    let (path, _) = fixture(ZarrFormat::V3);
    let ids = Groupings::new([("mito", vec![3])]).unwrap();
    let err = open_err(path, ids.clone());
    assert!(
        matches!(err, Error::Groupings(GroupingsError::WrongKind { .. })),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("a CellMap crop group needs groupings by class name"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let labels = annomask::synth::write_demo_crop(dir.path(), 4, ZarrFormat::V2).unwrap();
    let err = open_err(&labels, mito());
    assert!(
        err.to_string()
            .contains("a label array needs groupings by label id"),
        "{err}"
    );
}

#[test]
fn rois_outside_the_crop_are_rejected() {
    let (path, case) = fixture(ZarrFormat::V2);
    let mask = open(path, case.groupings(), Engine::cpu());
    for roi in [
        Roi::new([0.0, 0.0, 0.0], [80.0, 8.0, 8.0]),
        Roi::new([4.0, 0.0, 0.0], [8.0, 8.0, 8.0]),
    ] {
        let err = mask.get_with_targets(&roi).unwrap_err();
        assert!(
            matches!(err, Error::Geometry(GeometryError::Roi { .. })),
            "{err}"
        );
        assert!(err.to_string().contains("mito_mem/s0"), "{err}");
    }
}
