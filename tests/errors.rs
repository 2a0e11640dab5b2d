//! Every bad input of SPEC 1-4 gives a typed error that names the thing at fault.

mod common;

use std::path::{Path, PathBuf};

use annomask::synth::write_labels;
use annomask::zarr_array::{ArraySpec, Compression, create_array};
use annomask::{
    CropError, EngineChoice, Error, GeometryError, Groupings, GroupingsError, LabelDtype,
    MaskOptions, MetadataError, MissingAnnotationsMask, Roi, StorageError, ZarrFormat,
};
use serde_json::{Value, json};

fn opts() -> MaskOptions {
    MaskOptions::default().engine(EngineChoice::Cpu)
}

fn g() -> Groupings {
    Groupings::new([("mito", vec![3])]).unwrap()
}

fn crop(dir: &Path, name: &str, attrs: Value) -> PathBuf {
    let path = dir.join(name);
    let labels = annomask::synth::synth_labels(&[4, 4, 4], LabelDtype::U8, &[0, 3], 1);
    write_labels(
        &path,
        &labels,
        &[2, 2, 2],
        ZarrFormat::V3,
        Compression::Zstd,
        attrs.as_object().cloned().unwrap_or_default(),
    )
    .unwrap();
    path
}

fn good_meta() -> Value {
    json!({"labels": [{"value": 3, "annotationState": {"present": true, "annotated": true}}]})
}

fn open_err(path: &Path) -> Error {
    MissingAnnotationsMask::open(path, g(), opts()).unwrap_err()
}

#[test]
fn unsupported_dtypes_name_path_and_dtype() {
    let dir = tempfile::tempdir().unwrap();
    for (dtype, format) in [
        ("float32", ZarrFormat::V3),
        ("float64", ZarrFormat::V2),
        ("bool", ZarrFormat::V3),
        ("bool", ZarrFormat::V2),
    ] {
        let path = dir.path().join(format!("{dtype}{}.zarr", format.number()));
        let mut spec = ArraySpec::new(vec![4, 4], vec![2, 2], dtype, format);
        spec.attributes = good_meta().as_object().unwrap().clone();
        create_array(&path, &spec).unwrap();
        let err = open_err(&path);
        let msg = err.to_string();
        assert!(
            matches!(err, Error::Storage(StorageError::UnsupportedDtype { .. })),
            "{msg}"
        );
        assert!(
            msg.contains(&path.display().to_string()) && msg.contains(dtype),
            "{msg}"
        );
    }
}

#[test]
fn dimensionality_outside_2_to_5() {
    let dir = tempfile::tempdir().unwrap();
    for shape in [vec![8u64], vec![2; 6]] {
        let path = dir.path().join(format!("d{}.zarr", shape.len()));
        create_array(
            &path,
            &ArraySpec::new(shape.clone(), shape.clone(), "uint8", ZarrFormat::V3),
        )
        .unwrap();
        let err = open_err(&path);
        assert!(
            matches!(err, Error::Storage(StorageError::Dimensionality { ndim, .. }) if ndim == shape.len()),
            "{err}"
        );
    }
}

#[test]
fn missing_path_and_not_an_array() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = dir.path().join("nowhere.zarr");
    let err = open_err(&nowhere);
    assert!(
        matches!(err, Error::Storage(StorageError::NotFound { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("nowhere.zarr"));
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let err = open_err(&empty);
    assert!(
        matches!(err, Error::Storage(StorageError::NotAnArray { .. })),
        "{err}"
    );
    assert!(
        err.to_string().contains(&empty.display().to_string()),
        "{err}"
    );
}

/// A zarr group without `cellmap` attributes, or zarr metadata that is truncated, is said to
/// be so (issue 12), not "not a zarr array: error parsing metadata ... expected string array".
#[test]
fn a_plain_group_or_truncated_metadata_is_named() {
    let dir = tempfile::tempdir().unwrap();
    for format in [ZarrFormat::V2, ZarrFormat::V3] {
        let group = dir.path().join(format!("group{}.zarr", format.number()));
        let attrs = json!({"note": "not cellmap"}).as_object().unwrap().clone();
        annomask::zarr_array::create_group(&group, format, &attrs).unwrap();
        let err = open_err(&group);
        assert!(
            matches!(&err, Error::Crop(CropError::NotACropGroup { path, .. }) if *path == group.display().to_string()),
            "{err}"
        );
        assert!(
            err.to_string().starts_with(&format!(
                "{}: a zarr group without CellMap crop-group attributes (cellmap.annotation)",
                group.display()
            )),
            "{err}"
        );
        // With an array inside, the message points at it.
        crop(&group, "labels", good_meta());
        let msg = open_err(&group).to_string();
        assert!(
            msg.ends_with(&format!(
                "give one of its arrays, e.g. {}",
                group.join("labels").display()
            )),
            "{msg}"
        );
    }
    // A label array and a crop group whose metadata file is cut short.
    let labels = crop(dir.path(), "cut.zarr", good_meta());
    let crop_group =
        annomask::cellmap::synth::write_demo_crop(&dir.path().join("crop"), 4, ZarrFormat::V3)
            .unwrap();
    for path in [labels, crop_group] {
        let file = path.join("zarr.json");
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, &text[..text.len() / 2]).unwrap();
        let err = open_err(&path);
        assert!(
            matches!(&err, Error::Crop(CropError::MetadataFile { path, .. }) if *path == file.display().to_string()),
            "{err}"
        );
        assert!(
            err.to_string().starts_with(&format!(
                "{}: zarr metadata is truncated or not valid JSON (",
                file.display()
            )),
            "{err}"
        );
    }
}

#[test]
fn metadata_errors_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let none = crop(dir.path(), "none.zarr", json!({}));
    let err = open_err(&none);
    assert!(
        matches!(err, Error::Metadata(MetadataError::MissingLabels { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("none.zarr"));
    let ok = MissingAnnotationsMask::open(&none, g(), opts().allow_missing_metadata(true)).unwrap();
    let source = ok.source_as::<annomask::LabelSource>().unwrap();
    assert!(source.plan().missing_table().is_empty());

    let bad = crop(
        dir.path(),
        "bad.zarr",
        json!({"labels": [
        {"value": 3, "annotationState": {"present": true, "annotated": true}},
        {"value": 4, "annotationState": {"present": 1, "annotated": true}}]}),
    );
    let err = open_err(&bad);
    let msg = err.to_string();
    assert!(
        matches!(&err, Error::Metadata(MetadataError::Entry { index: 1, field, .. }) if field == "annotationState.present"),
        "{msg}"
    );
    assert!(
        msg.contains("bad.zarr") && msg.contains("labels[1].annotationState.present"),
        "{msg}"
    );

    let conflict = crop(
        dir.path(),
        "conflict.zarr",
        json!({"labels": [
        {"value": 3, "annotationState": {"present": true, "annotated": true}},
        {"value": 3, "annotationState": {"present": true, "annotated": "empty"}}]}),
    );
    let msg = open_err(&conflict).to_string();
    assert!(
        msg.contains("labels[1].value") && msg.contains("labels[0]"),
        "{msg}"
    );

    let not_list = crop(dir.path(), "notlist.zarr", json!({"labels": {"3": "mito"}}));
    assert!(matches!(
        open_err(&not_list),
        Error::Metadata(MetadataError::NotAList { .. })
    ));
}

#[test]
fn geometry_attribute_errors_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let mut attrs = good_meta();
    attrs["voxel_size"] = json!([4, 4]);
    let path = crop(dir.path(), "vs.zarr", attrs);
    let err = open_err(&path);
    assert!(
        matches!(&err, Error::Geometry(GeometryError::Attribute { attribute, .. }) if attribute == "voxel_size"),
        "{err}"
    );
    assert!(err.to_string().contains("vs.zarr"));
}

#[test]
fn roi_errors_print_both_rois() {
    let dir = tempfile::tempdir().unwrap();
    let mut attrs = good_meta();
    attrs["voxel_size"] = json!([2, 2, 2]);
    let path = crop(dir.path(), "roi.zarr", attrs);
    let mask = MissingAnnotationsMask::open(&path, g(), opts()).unwrap();
    for roi in [
        Roi::new([1.0, 0.0, 0.0], [2.0, 2.0, 2.0]),
        Roi::new([0.0, 0.0, 0.0], [3.0, 2.0, 2.0]),
        Roi::new([0.0, 0.0, 0.0], [10.0, 2.0, 2.0]),
        Roi::new([-2.0, 0.0, 0.0], [2.0, 2.0, 2.0]),
        Roi::new([0.0, 0.0], [2.0, 2.0]),
    ] {
        let err = mask.get(&roi).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, Error::Geometry(GeometryError::Roi { .. })),
            "{msg}"
        );
        assert!(
            msg.contains(&roi.to_string()) && msg.contains("[0:8, 0:8, 0:8] (8, 8, 8)"),
            "{msg}"
        );
    }
}

#[test]
fn data_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = crop(dir.path(), "d.zarr", good_meta());
    let mask = MissingAnnotationsMask::open(&path, g(), opts()).unwrap();
    let err = mask.data().unwrap_err();
    assert!(matches!(err, Error::NoStoredData { .. }));
    assert!(err.to_string().contains("d.zarr_missing_annotations_mask"));
}

#[test]
fn corrupted_chunk_is_a_read_error_naming_the_array() {
    let dir = tempfile::tempdir().unwrap();
    let path = crop(dir.path(), "corrupt.zarr", good_meta());
    let chunk = ["0/0/0", "0/0/1", "0/1/0", "1/1/1"]
        .iter()
        .map(|c| path.join("c").join(c))
        .find(|p| p.exists())
        .expect("some chunk is stored");
    std::fs::write(chunk, b"this is not zstd").unwrap();
    let mask = MissingAnnotationsMask::open(&path, g(), opts()).unwrap();
    let err = mask.get(&mask.roi()).unwrap_err();
    assert!(
        matches!(err, Error::Storage(StorageError::Read { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("corrupt.zarr"), "{err}");
}

#[test]
fn groupings_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("g.json");
    std::fs::write(&file, r#"[["mito", [3, 4.5]]]"#).unwrap();
    let err = Groupings::from_file(&file).unwrap_err();
    assert!(
        matches!(err, GroupingsError::BadId { position: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("g.json"));
    let err = Groupings::new([("", vec![])]).unwrap_err();
    assert!(matches!(err, GroupingsError::EmptyName { index: 0, .. }));
}
