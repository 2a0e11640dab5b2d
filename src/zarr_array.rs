//! Creating zarr arrays (v2 or v3, with raw, blosc, zstd or gzip compression, optionally sharded)
//! for mask outputs and synthetic crops.
//!
//! `zarrs`' builder writes v3 only, so both formats are created from metadata JSON written here
//! and handed to `Array::new_with_metadata`.

use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value, json};
use zarrs::array::{Array, ArrayMetadata};
use zarrs::filesystem::FilesystemStore;

use crate::error::{Cause, StorageError};
use crate::volume::ZarrFormat;

/// Chunk compression.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Compression {
    /// No compression.
    Raw,
    /// Blosc with LZ4 and byte shuffle (the CellMap/DaCapo default).
    #[default]
    BloscLz4,
    /// Blosc with zstd and byte shuffle.
    BloscZstd,
    /// Zstandard, level 3.
    Zstd,
    /// Gzip, level 5.
    Gzip,
}

impl Compression {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::BloscLz4 => "blosc-lz4",
            Self::BloscZstd => "blosc-zstd",
            Self::Zstd => "zstd",
            Self::Gzip => "gzip",
        }
    }

    fn v2(self) -> Value {
        match self {
            Self::Raw => Value::Null,
            Self::BloscLz4 => {
                json!({"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0})
            }
            Self::BloscZstd => {
                json!({"id": "blosc", "cname": "zstd", "clevel": 5, "shuffle": 1, "blocksize": 0})
            }
            Self::Zstd => json!({"id": "zstd", "level": 3}),
            Self::Gzip => json!({"id": "gzip", "level": 5}),
        }
    }

    fn v3(self, typesize: usize) -> Option<Value> {
        let blosc = |cname: &str| {
            json!({"name": "blosc", "configuration": {"cname": cname, "clevel": 5,
                "shuffle": "shuffle", "typesize": typesize, "blocksize": 0}})
        };
        match self {
            Self::Raw => None,
            Self::BloscLz4 => Some(blosc("lz4")),
            Self::BloscZstd => Some(blosc("zstd")),
            Self::Zstd => {
                Some(json!({"name": "zstd", "configuration": {"level": 3, "checksum": false}}))
            }
            Self::Gzip => Some(json!({"name": "gzip", "configuration": {"level": 5}})),
        }
    }
}

impl std::str::FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [
            Self::Raw,
            Self::BloscLz4,
            Self::BloscZstd,
            Self::Zstd,
            Self::Gzip,
        ]
        .into_iter()
        .find(|c| c.name() == s)
        .ok_or_else(|| {
            format!("unknown compression {s:?} (expected raw, blosc-lz4, blosc-zstd, zstd or gzip)")
        })
    }
}

/// Everything needed to create an array.
#[derive(Clone, Debug, PartialEq)]
pub struct ArraySpec {
    /// Shape in elements.
    pub shape: Vec<u64>,
    /// Chunk shape (the shard shape when `shard_inner` is set).
    pub chunks: Vec<u64>,
    /// Data type name: `uint8`, `int64`, ...
    pub dtype: String,
    /// v2 or v3.
    pub format: ZarrFormat,
    /// Compression of each chunk (or inner chunk).
    pub compression: Compression,
    /// v3 only: the inner chunk shape of a sharded array.
    pub shard_inner: Option<Vec<u64>>,
    /// Attributes (`.zattrs` in v2, `attributes` in v3).
    pub attributes: Map<String, Value>,
    /// v3 only: dimension names.
    pub dimension_names: Option<Vec<String>>,
}

impl ArraySpec {
    /// A spec with blosc-lz4 compression, no sharding, no attributes.
    pub fn new(shape: Vec<u64>, chunks: Vec<u64>, dtype: &str, format: ZarrFormat) -> Self {
        Self {
            shape,
            chunks,
            dtype: dtype.to_string(),
            format,
            compression: Compression::default(),
            shard_inner: None,
            attributes: Map::new(),
            dimension_names: None,
        }
    }

    fn typesize(&self) -> usize {
        crate::label::LabelDtype::from_name(&self.dtype).map_or(1, |d| d.size())
    }

    /// The zarr metadata document for this spec.
    pub fn metadata(&self) -> Result<ArrayMetadata, String> {
        let typesize = self.typesize();
        let value = match self.format {
            ZarrFormat::V2 => {
                if self.shard_inner.is_some() {
                    return Err("sharding needs zarr v3".into());
                }
                let dtype = match self.dtype.as_str() {
                    "uint8" => "|u1",
                    "int8" => "|i1",
                    "uint16" => "<u2",
                    "int16" => "<i2",
                    "uint32" => "<u4",
                    "int32" => "<i4",
                    "uint64" => "<u8",
                    "int64" => "<i8",
                    "float32" => "<f4",
                    "float64" => "<f8",
                    "bool" => "|b1",
                    other => return Err(format!("no v2 name for dtype {other}")),
                };
                let fill = if self.dtype == "bool" {
                    json!(false)
                } else {
                    json!(0)
                };
                json!({
                    "zarr_format": 2,
                    "shape": self.shape,
                    "chunks": self.chunks,
                    "dtype": dtype,
                    "compressor": self.compression.v2(),
                    "fill_value": fill,
                    "order": "C",
                    "filters": null,
                    "dimension_separator": "/",
                    "attributes": self.attributes,
                })
            }
            ZarrFormat::V3 => {
                let bytes = json!({"name": "bytes", "configuration": {"endian": "little"}});
                let mut inner = vec![bytes.clone()];
                inner.extend(self.compression.v3(typesize));
                let codecs = match &self.shard_inner {
                    None => inner,
                    Some(inner_shape) => {
                        vec![json!({"name": "sharding_indexed", "configuration": {
                            "chunk_shape": inner_shape,
                            "codecs": inner,
                            "index_codecs": [bytes, {"name": "crc32c"}],
                            "index_location": "end",
                        }})]
                    }
                };
                let fill = match self.dtype.as_str() {
                    "bool" => json!(false),
                    "float32" | "float64" => json!(0.0),
                    _ => json!(0),
                };
                let mut meta = json!({
                    "zarr_format": 3,
                    "node_type": "array",
                    "shape": self.shape,
                    "data_type": self.dtype,
                    "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": self.chunks}},
                    "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
                    "fill_value": fill,
                    "codecs": codecs,
                    "attributes": self.attributes,
                });
                if let Some(names) = &self.dimension_names {
                    meta["dimension_names"] = json!(names);
                }
                meta
            }
        };
        serde_json::from_value(value).map_err(|e| e.to_string())
    }
}

/// Creates (or overwrites the metadata of) an array at `path` and returns it open for writing.
pub fn create_array(
    path: impl AsRef<Path>,
    spec: &ArraySpec,
) -> Result<Array<FilesystemStore>, StorageError> {
    let path = path.as_ref();
    let fail = |message: String| StorageError::Write {
        path: path.display().to_string(),
        what: "array metadata".into(),
        message: message.into(),
    };
    std::fs::create_dir_all(path).map_err(|e| fail(e.to_string()))?;
    let store = FilesystemStore::new(path).map_err(|e| fail(e.to_string()))?;
    let metadata = spec.metadata().map_err(fail)?;
    let array = Array::new_with_metadata(Arc::new(store), "/", metadata)
        .map_err(|e| fail(e.to_string()))?;
    array
        .store_metadata_opt(
            &zarrs::array::ArrayMetadataOptions::default().with_include_zarrs_metadata(false),
        )
        .map_err(|e| fail(e.to_string()))?;
    Ok(array)
}

/// Writes the attributes of a group at `path` (creating it): `.zgroup` + `.zattrs` for v2,
/// `zarr.json` for v3.
pub fn create_group(
    path: impl AsRef<Path>,
    format: ZarrFormat,
    attributes: &Map<String, Value>,
) -> Result<(), StorageError> {
    let path = path.as_ref();
    let fail = |e: std::io::Error| StorageError::Write {
        path: path.display().to_string(),
        what: "group metadata".into(),
        message: Cause::error(e),
    };
    std::fs::create_dir_all(path).map_err(fail)?;
    let pretty = |v: &Value| serde_json::to_string_pretty(v).expect("JSON values serialise");
    match format {
        ZarrFormat::V2 => {
            std::fs::write(path.join(".zgroup"), pretty(&json!({"zarr_format": 2})))
                .map_err(fail)?;
            std::fs::write(
                path.join(".zattrs"),
                pretty(&Value::Object(attributes.clone())),
            )
            .map_err(fail)?;
        }
        ZarrFormat::V3 => {
            let meta = json!({"zarr_format": 3, "node_type": "group", "attributes": attributes});
            std::fs::write(path.join("zarr.json"), pretty(&meta)).map_err(fail)?;
        }
    }
    Ok(())
}
