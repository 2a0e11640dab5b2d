//! The metadata documents of the output: the array's attributes (the geometry, and the rules
//! the source supplies through [`MaskSource::output_attributes`](crate::source::MaskSource::output_attributes)),
//! the OME-NGFF group around it, and the zarr v2 / v3 files that hold them.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use zarrs::array::{Array, ArrayMetadataOptions};
use zarrs::storage::store::MemoryStore;
use zarrs::storage::{ListableStorageTraits, ReadableStorageTraits};

use super::Document;
use crate::mask::MissingAnnotationsMask;
use crate::volume::ZarrFormat;

/// The attributes of the mask array (see the module docs).
pub(super) fn array_attributes(
    mask: &MissingAnnotationsMask,
    offset: &[f64],
    voxel_size: &[f64],
) -> Map<String, Value> {
    let geometry = mask.volume().geometry();
    // The source: the label array, or the crop group (not the class array its geometry is from).
    let input = mask.source().path();
    let input = input
        .canonicalize()
        .unwrap_or_else(|_| input.to_path_buf())
        .display()
        .to_string();
    let mut attrs = Map::new();
    attrs.insert("channels".into(), json!(mask.channels()));
    attrs.extend(mask.source().output_attributes());
    let mut axis_names = vec!["c^".to_string()];
    axis_names.extend(geometry.axis_names.iter().cloned());
    attrs.insert("input".into(), json!(input));
    attrs.insert("voxel_size".into(), numbers(voxel_size));
    attrs.insert("offset".into(), numbers(offset));
    attrs.insert("axis_names".into(), json!(axis_names));
    attrs.insert("units".into(), json!(geometry.units));
    attrs
}

/// Whole numbers as JSON integers (`8`, not `8.0`), others as floats.
fn numbers(values: &[f64]) -> Value {
    Value::Array(
        values
            .iter()
            .map(|&v| {
                if v.fract() == 0.0 && v.abs() < 9.0e15 {
                    json!(v as i64)
                } else {
                    json!(v)
                }
            })
            .collect(),
    )
}

/// OME-NGFF multiscales for the group holding the mask: a channel axis `c`, then the input's
/// spatial axes; one dataset with the input's voxel size and the output's offset.
pub(super) fn ome_group_attributes(
    mask: &MissingAnnotationsMask,
    dataset: &str,
    format: ZarrFormat,
    offset: &[f64],
    voxel_size: &[f64],
) -> Map<String, Value> {
    let geometry = mask.volume().geometry();
    let mut axes = vec![json!({"name": "c", "type": "channel"})];
    for (name, unit) in geometry.axis_names.iter().zip(&geometry.units) {
        let mut axis = json!({"name": name, "type": "space"});
        if !unit.is_empty() {
            axis["unit"] = json!(unit);
        }
        axes.push(axis);
    }
    let mut scale = vec![1.0];
    scale.extend_from_slice(voxel_size);
    let mut translation = vec![0.0];
    translation.extend_from_slice(offset);
    let mut multiscale = json!({
        "name": mask.name(),
        "axes": axes,
        "datasets": [{"path": dataset, "coordinateTransformations": [
            {"type": "scale", "scale": numbers(&scale)},
            {"type": "translation", "translation": numbers(&translation)},
        ]}],
    });
    let mut attrs = Map::new();
    match format {
        ZarrFormat::V2 => {
            multiscale["version"] = json!("0.4");
            attrs.insert("multiscales".into(), json!([multiscale]));
        }
        ZarrFormat::V3 => {
            attrs.insert(
                "ome".into(),
                json!({"version": "0.5", "multiscales": [multiscale]}),
            );
        }
    }
    attrs
}

fn document(key: &str, value: Value) -> Document {
    let bytes = serde_json::to_vec_pretty(&value).expect("JSON values serialise");
    Document {
        key: key.to_string(),
        bytes,
        value,
    }
}

/// The group documents at the output's root.
pub(super) fn group_documents(format: ZarrFormat, attrs: Map<String, Value>) -> Vec<Document> {
    match format {
        ZarrFormat::V2 => vec![
            document(".zgroup", json!({"zarr_format": 2})),
            document(".zattrs", Value::Object(attrs)),
        ],
        ZarrFormat::V3 => vec![document(
            "zarr.json",
            json!({"zarr_format": 3, "node_type": "group", "attributes": attrs}),
        )],
    }
}

/// The metadata files of the array as `zarrs` writes them (rendered into memory), keyed below
/// `dataset` (the array's key prefix in the output: `""` or `s0/`).
pub(super) fn array_documents(
    dataset: &str,
    metadata: zarrs::array::ArrayMetadata,
) -> Result<Vec<Document>, String> {
    let store = Arc::new(MemoryStore::new());
    let array =
        Array::new_with_metadata(store.clone(), "/", metadata).map_err(|e| e.to_string())?;
    array
        .store_metadata_opt(&ArrayMetadataOptions::default().with_include_zarrs_metadata(false))
        .map_err(|e| e.to_string())?;
    let mut docs = Vec::new();
    let mut keys = store.list().map_err(|e| e.to_string())?;
    // `.zarray` before `.zattrs`: a reader that finds the array finds a complete one sooner.
    keys.sort_by_key(|k| k.as_str() != ".zarray");
    for key in keys {
        let bytes = store
            .get(&key)
            .map_err(|e| e.to_string())?
            .ok_or("metadata vanished")?
            .to_vec();
        let value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        docs.push(Document {
            key: format!("{dataset}{}", key.as_str()),
            bytes,
            value,
        });
    }
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_numbers_stay_integers() {
        assert_eq!(numbers(&[8.0, 5.24, -4.0]), json!([8, 5.24, -4]));
    }
}
