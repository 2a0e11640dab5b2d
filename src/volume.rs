//! The zarr label source (SPEC 1.1, 3): opens a v2 or v3 label array from a [`Node`] (a store
//! and a path in it; [`LabelVolume::open`] takes a local path) with `zarrs`, reads its
//! attributes and geometry, and reads voxel regions of any supported dtype.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use ndarray::ArrayD;
use serde_json::{Map, Value};
use zarrs::array::chunk_cache::ChunkCacheDecodedLruSizeLimit;
use zarrs::array::{Array, ArrayMetadata};
use zarrs::storage::ReadableStorageTraits;

use crate::budget::MemoryBudget;
use crate::chunk_reader::ChunkSource;
use crate::error::{Cause, Error, StorageError};
use crate::geometry::{Geometry, Roi, VoxelRegion};
use crate::label::{Label, LabelArray, LabelDtype};
use crate::node::Node;

/// The zarr format version of an array.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ZarrFormat {
    /// Zarr v2 (`.zarray`, `.zattrs`).
    V2,
    /// Zarr v3 (`zarr.json`).
    V3,
}

impl ZarrFormat {
    /// 2 or 3.
    pub fn number(self) -> u8 {
        match self {
            Self::V2 => 2,
            Self::V3 => 3,
        }
    }
}

/// An opened zarr label array.
pub struct LabelVolume {
    node: Node,
    path: PathBuf,
    name: String,
    array: Array<dyn ReadableStorageTraits>,
    dtype: LabelDtype,
    format: ZarrFormat,
    geometry: Geometry,
    attributes: Map<String, Value>,
    parent_attributes: Option<Map<String, Value>>,
    chunk_shape: Vec<u64>,
    /// A cache of decoded chunks, once turned on ([`LabelVolume::cache_chunks`]).
    cache: OnceLock<ChunkCacheDecodedLruSizeLimit>,
    /// The largest decoded chunk read whole (see the chunk reader (`src/chunk_reader.rs`)).
    chunk_limit: u64,
    /// Shape in voxels, in the order the volume is seen (zarr order).
    shape: Vec<u64>,
    /// An N5 array: `array` has the axes reversed ([`crate::n5`]).
    reversed: bool,
}

impl std::fmt::Debug for LabelVolume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LabelVolume")
            .field("path", &self.path)
            .field("dtype", &self.dtype)
            .field("format", &self.format)
            .field("geometry", &self.geometry)
            .finish_non_exhaustive()
    }
}

impl LabelVolume {
    /// Opens the label array at `path` (a directory holding `.zarray` or `zarr.json`).
    ///
    /// Errors: [`StorageError::NotFound`], [`StorageError::NotAnArray`],
    /// [`StorageError::UnsupportedDtype`] (floats, bools, ...), [`StorageError::Dimensionality`]
    /// (not 2-D to 5-D), and geometry attribute errors.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        let text = path.as_ref().to_string_lossy();
        Self::open_node(&Node::open(&text, crate::remote::StoreOptions::default())?)
    }

    /// Opens the label array at `node` (see [`LabelVolume::open`]); its geometry may come from
    /// the OME-NGFF multiscales of the parent node.
    pub fn open_node(node: &Node) -> Result<Self, Error> {
        let name = node.name().to_string();
        let path = node.display_path();
        let not_array = |message: String| StorageError::NotAnArray {
            path: name.clone(),
            message: message.into(),
        };
        crate::bounded_codecs::register();
        let reversed = crate::n5::is_n5_array(node);
        let store: Arc<dyn ReadableStorageTraits> = match reversed {
            true => crate::n5::store(node),
            false => node.store().clone(),
        };
        let array = Array::open(store, &node.node_path()).map_err(|e| not_array(e.to_string()))?;
        if array
            .shape()
            .iter()
            .try_fold(1u64, |n, &s| n.checked_mul(s))
            .is_none()
        {
            return Err(not_array(format!(
                "shape {:?} holds more than 2^64 voxels",
                array.shape()
            ))
            .into());
        }
        let data_type = array.data_type();
        let dtype = data_type
            .name_v3()
            .and_then(|n| LabelDtype::from_name(&n))
            .ok_or_else(|| StorageError::UnsupportedDtype {
                path: name.clone(),
                dtype: data_type.to_string(),
            })?;
        let ndim = array.dimensionality();
        if !(2..=5).contains(&ndim) {
            return Err(StorageError::Dimensionality { path: name, ndim }.into());
        }
        let format = match array.metadata() {
            ArrayMetadata::V2(_) => ZarrFormat::V2,
            ArrayMetadata::V3(_) => ZarrFormat::V3,
        };
        let mut chunk_shape: Vec<u64> = array
            .chunk_shape(&vec![0; ndim])
            .map_err(|e| not_array(format!("unsupported chunk grid: {e}")))?
            .iter()
            .map(|c| c.get())
            .collect();
        let mut shape = array.shape().to_vec();
        if reversed {
            chunk_shape.reverse();
            shape.reverse();
        }
        let chunk_bytes = chunk_shape
            .iter()
            .try_fold(dtype.size() as u64, |n, &c| n.checked_mul(c));
        if chunk_bytes.is_none() {
            return Err(not_array(format!(
                "chunk shape {chunk_shape:?} of {} holds more than 2^64 bytes",
                dtype.name()
            ))
            .into());
        }
        let attributes = match reversed {
            true => crate::n5::zarr_order_attributes(array.attributes(), ndim),
            false => array.attributes().clone(),
        };
        let parent_attributes = node.parent().and_then(|p| p.attributes());
        let dataset_path = node.last_name().to_string();
        let geometry = Geometry::from_attributes(
            &name,
            &shape,
            &attributes,
            parent_attributes.as_ref(),
            &dataset_path,
        )?;
        Ok(Self {
            node: node.clone(),
            path,
            name,
            array,
            dtype,
            format,
            geometry,
            attributes,
            parent_attributes,
            chunk_shape,
            cache: OnceLock::new(),
            chunk_limit: MemoryBudget::default().chunk_limit(),
            shape,
            reversed,
        })
    }

    /// Sets the largest decoded chunk that is read whole (default: the chunk limit of the
    /// default [`MemoryBudget`]); see the chunk reader (`src/chunk_reader.rs`).
    pub fn set_chunk_limit(&mut self, bytes: u64) {
        self.chunk_limit = bytes;
    }

    /// The largest decoded chunk that is read whole.
    pub fn chunk_limit(&self) -> u64 {
        self.chunk_limit
    }

    /// Keeps up to `bytes` of decoded chunks in memory (least recently used out first), so
    /// reads that come back to the same chunks — random ROIs of a training feeder — decode each
    /// chunk once. Only the first call has an effect. Returns whether this call turned it on.
    pub fn cache_chunks(&self, bytes: u64) -> bool {
        let array = Arc::new(self.array.with_storage(self.array.storage()));
        self.cache
            .set(ChunkCacheDecodedLruSizeLimit::new(array, bytes))
            .is_ok()
    }

    /// The node it was opened from.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path as text, as errors print it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The label dtype.
    pub fn dtype(&self) -> LabelDtype {
        self.dtype
    }

    /// Zarr v2 or v3.
    pub fn format(&self) -> ZarrFormat {
        self.format
    }

    /// Shape in voxels.
    pub fn shape(&self) -> &[u64] {
        &self.shape
    }

    /// Whether the array is N5 (read with its axes reversed: see [`crate::n5`]).
    pub fn is_n5(&self) -> bool {
        self.reversed
    }

    /// Chunk shape in voxels (the shard shape for sharded arrays).
    pub fn chunk_shape(&self) -> &[u64] {
        &self.chunk_shape
    }

    /// Voxel size, offset, axes, units.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// The array's attributes.
    pub fn attributes(&self) -> &Map<String, Value> {
        &self.attributes
    }

    /// The attributes of the parent group (where OME-NGFF multiscales live), if any.
    pub fn parent_attributes(&self) -> Option<&Map<String, Value>> {
        self.parent_attributes.as_ref()
    }

    /// The underlying zarrs array.
    pub fn array(&self) -> &Array<dyn ReadableStorageTraits> {
        &self.array
    }

    /// Reads the labels inside a world ROI (voxel-aligned, inside the array).
    pub fn read_roi(&self, roi: &Roi) -> Result<LabelArray, Error> {
        let region = self.geometry.voxel_region(&self.name, roi)?;
        self.read_region(&region)
    }

    /// Decodes the first chunk (up to 64 voxels an axis of it, read as a block would), so a
    /// codec the metadata names but the data do not follow fails now, not midway.
    pub fn check_decodes(&self) -> Result<(), Error> {
        if self.shape().contains(&0) {
            return Ok(());
        }
        let region = VoxelRegion {
            start: vec![0; self.shape().len()],
            shape: self
                .chunk_shape
                .iter()
                .zip(self.shape())
                .map(|(&c, &s)| c.min(s).min(64))
                .collect(),
        };
        self.read_region(&region).map(drop)
    }

    /// Fails with [`StorageError::Read`] unless `region` lies inside the array.
    pub fn check_region(&self, region: &VoxelRegion) -> Result<(), Error> {
        let inside = region.start.len() == self.shape().len()
            && region.shape.len() == self.shape().len()
            && region
                .start
                .iter()
                .zip(&region.shape)
                .zip(self.shape())
                .all(|((&s, &n), &len)| s.checked_add(n).is_some_and(|e| e <= len));
        if inside {
            return Ok(());
        }
        Err(StorageError::Read {
            path: self.name.clone(),
            what: describe(region),
            message: Cause::text(format!(
                "region is outside the array of shape {:?}",
                self.shape()
            )),
        }
        .into())
    }

    /// Reads a region given in voxels. The region must lie inside the array.
    pub fn read_region(&self, region: &VoxelRegion) -> Result<LabelArray, Error> {
        self.check_region(region)?;
        match self.dtype {
            LabelDtype::U8 => self.read_typed::<u8>(region),
            LabelDtype::U16 => self.read_typed::<u16>(region),
            LabelDtype::U32 => self.read_typed::<u32>(region),
            LabelDtype::U64 => self.read_typed::<u64>(region),
            LabelDtype::I8 => self.read_typed::<i8>(region),
            LabelDtype::I16 => self.read_typed::<i16>(region),
            LabelDtype::I32 => self.read_typed::<i32>(region),
            LabelDtype::I64 => self.read_typed::<i64>(region),
        }
    }

    fn read_typed<T: Label>(&self, region: &VoxelRegion) -> Result<LabelArray, Error>
    where
        ArrayD<T>: Into<LabelArray>,
    {
        let source = ChunkSource {
            name: &self.name,
            array: &self.array,
            cache: self.cache.get(),
            chunk_limit: self.chunk_limit,
            remote: self.node.local_path().is_none(),
        };
        if self.reversed {
            let stored = VoxelRegion {
                start: region.start.iter().rev().copied().collect(),
                shape: region.shape.iter().rev().copied().collect(),
            };
            return Ok(source.read::<T>(&stored)?.reversed_axes().into().standard());
        }
        Ok(source.read::<T>(region)?.into().standard())
    }
}

fn describe(region: &VoxelRegion) -> String {
    format!("voxels start {:?} shape {:?}", region.start, region.shape)
}
