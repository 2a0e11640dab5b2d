//! The mask output of `compute` (SPEC 6): a `u8` zarr array of shape `(channels, *spatial)`, its
//! metadata, atomic chunk writes and the resume check.
//!
//! Layout and attributes:
//! - Zarr v2 if the input is v2, else v3 ([`OutputOptions::format`] overrides). Chunks
//!   `(channels, *label chunk shape)` (clipped to the array), or as set by
//!   [`OutputOptions::chunks`]. Fill value 0, `/` chunk key separator.
//! - Attributes: `channels` (names), `missing_ids` (per channel, the ids that are missing),
//!   `policy`, `sparse_policy`, `background`, `input` (the label array, absolute); for a CellMap
//!   crop group instead `classes` and `lacking_classes` (per channel), `policy`
//!   `cellmap-known`, `scale`, and `input` (the crop group, absolute); then
//!   funlib/DaCapo geometry (`voxel_size`, `offset`, `units` per spatial axis, `axis_names` with
//!   the channel axis as `c^`, funlib's mark of a non-spatial axis); v3 also gets
//!   `dimension_names` `["c", ...]`.
//! - If the input is a level of an OME-NGFF multiscale image, the output mirrors it: `OUT` is a
//!   group with OME-NGFF `multiscales` (0.4 in v2, 0.5 in v3; a `channel` axis `c` first) and
//!   the array is `OUT/<the input's dataset path>`, e.g. `OUT/s0`. A crop group's class arrays
//!   are such levels, so its mask is `OUT/<scale>`, geometry from the first class array read.
//!
//! `OUT` is a local path or an object-store URL (`s3://`, `gs://`; see [`crate::remote`]).
//! Every file is written through an [`OutputStore`]: on a filesystem a temporary file and a
//! rename, on an object store one PUT (atomic there). Every chunk is stored, all-zero ones
//! included, so "the chunk exists" means "the chunk is complete": that is the resume check. Metadata is written once, before any chunk, with bytes
//! that depend only on the inputs and options, so concurrent shard processes writing it race
//! harmlessly; an existing output is accepted only if its metadata equals this run's.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use zarrs::array::Array;
use zarrs::storage::{ReadableStorageTraits, StoreKey, WritableStorageTraits};

use crate::blocks::{Block, BlockGrid, Shard};
use crate::budget::{MemoryBudget, human_bytes};
use crate::error::{Cause, Error, StorageError};
use crate::geometry::VoxelRegion;
use crate::mask::MissingAnnotationsMask;
use crate::remote::{StoreOptions, StoreUrl};
use crate::sink::MaskSink;
use crate::store::OutputStore;
use crate::volume::ZarrFormat;

mod attributes;
mod layout;
mod resume;

use crate::zarr_array::{ArraySpec, Compression};
use attributes::{array_attributes, array_documents, group_documents, ome_group_attributes};
use layout::{check_apart_from_inputs, chunk_layout, dataset_path};

/// Zarr metadata file names (either format).
const METADATA_FILES: [&str; 4] = ["zarr.json", ".zarray", ".zgroup", ".zattrs"];

/// How the output array is laid out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutputOptions {
    /// Zarr format; `None`: the input's.
    pub format: Option<ZarrFormat>,
    /// Chunk shape: one entry per spatial axis (the channel axis is then whole), or one more
    /// with the channel axis first. `None`: `(channels, *label chunk shape)`.
    pub chunks: Option<Vec<u64>>,
    /// Chunk compression (default blosc-lz4).
    pub compression: Compression,
    /// The memory a run may hold; the default chunk shape is made smaller where a label chunk's
    /// block would take more than an eighth of it (see [`crate::budget`]).
    pub memory_budget: MemoryBudget,
    /// How an output given as an object-store URL is opened.
    pub store: StoreOptions,
}

/// One metadata file of the output and its content.
#[derive(Clone, Debug, PartialEq)]
struct Document {
    /// Its key below the output's root (`.zarray`, `s0/zarr.json`).
    key: String,
    bytes: Vec<u8>,
    value: Value,
}

/// The output array of one mask: where it goes, its chunk grid, its metadata, and chunk writes.
///
/// ```
/// use annomask::{synth, EngineChoice, MaskOptions, MissingAnnotationsMask, ZarrFormat};
/// use annomask::output::{MaskOutput, OutputOptions};
/// let dir = tempfile::tempdir()?;
/// let crop = synth::write_demo_crop(dir.path(), 16, ZarrFormat::V2)?;
/// let mask = MissingAnnotationsMask::open(&crop, synth::demo_groupings(),
///     MaskOptions::default().engine(EngineChoice::Cpu))?;
/// let out = MaskOutput::new(dir.path().join("mask.zarr"), &mask, None, &OutputOptions::default())?;
/// assert_eq!(out.format(), ZarrFormat::V2);
/// assert_eq!(out.shape(), &[5, 16, 16, 16]);
/// out.create()?;
/// assert!(dir.path().join("mask.zarr/.zarray").exists());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MaskOutput {
    root: PathBuf,
    array_path: PathBuf,
    /// The array's key prefix below the root: `""`, or `s0/` in an OME-NGFF group.
    dataset: String,
    /// The root on the local filesystem (`None` for an object store).
    local_root: Option<PathBuf>,
    /// Everything is read and written through it, rooted at `root`.
    store: Arc<OutputStore>,
    format: ZarrFormat,
    origin: Vec<u64>,
    shape: Vec<u64>,
    channel_chunk: u64,
    grid: BlockGrid,
    documents: Vec<Document>,
    array: Array<OutputStore>,
    /// Bytes one block takes while it is read and computed: labels and mask.
    block_bytes: u64,
    memory_budget: MemoryBudget,
}

impl std::fmt::Debug for MaskOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaskOutput")
            .field("root", &self.root)
            .field("array_path", &self.array_path)
            .field("format", &self.format)
            .field("shape", &self.shape)
            .field("channel_chunk", &self.channel_chunk)
            .field("grid", &self.grid)
            .finish_non_exhaustive()
    }
}

impl MaskOutput {
    /// The output of `mask` over `region` (input voxels; `None`: the whole input) at `root`.
    /// Nothing is written yet: see [`MaskOutput::check`] and [`MaskOutput::create`].
    pub fn new(
        root: impl AsRef<Path>,
        mask: &MissingAnnotationsMask,
        region: Option<&VoxelRegion>,
        options: &OutputOptions,
    ) -> Result<Self, Error> {
        let root = root.as_ref().to_path_buf();
        let name = match root.as_os_str().is_empty() {
            true => "--out \"\"".to_string(),
            false => root.display().to_string(),
        };
        let spec_error = |message: String| StorageError::OutputSpec {
            path: name.clone(),
            message,
        };
        if root.as_os_str().is_empty() {
            return Err(spec_error("the output path is empty".into()).into());
        }
        let url = StoreUrl::parse(&root.to_string_lossy())?;
        if url
            .as_ref()
            .is_some_and(|u| u.scheme() == crate::remote::Scheme::Http)
        {
            return Err(spec_error(
                "an http(s):// URL is read-only: write to a local path, s3:// or gs://".into(),
            )
            .into());
        }
        let root = match &url {
            Some(_) => root,
            None => crate::store::local_path(&root.to_string_lossy()),
        };
        check_apart_from_inputs(&root, mask).map_err(spec_error)?;
        let volume = mask.volume();
        let region = region.cloned().unwrap_or_else(|| VoxelRegion {
            start: vec![0; volume.shape().len()],
            shape: volume.shape().to_vec(),
        });
        let num_channels = mask.num_channels() as u64;
        if num_channels == 0 {
            return Err(spec_error("the groupings have no channels".into()).into());
        }
        let dims = region.shape.len();
        let bytes_per_voxel = mask.source_bytes_per_voxel() + num_channels;
        let (channel_chunk, spatial_chunks) = chunk_layout(
            options.chunks.as_deref(),
            num_channels,
            mask.chunk_shape(),
            &region,
            bytes_per_voxel,
            options.memory_budget,
        )
        .map_err(spec_error)?;
        let grid =
            BlockGrid::try_new(region.shape.clone(), spatial_chunks.clone()).map_err(spec_error)?;
        let block_voxels: u64 = spatial_chunks.iter().product();
        let block_bytes = block_voxels.checked_mul(bytes_per_voxel).ok_or_else(|| {
            spec_error(format!(
                "a block of {spatial_chunks:?} voxels takes more than 2^64 bytes"
            ))
        })?;
        let mask_bytes = region
            .shape
            .iter()
            .try_fold(num_channels, |n, &s| n.checked_mul(s));
        if mask_bytes.is_none() {
            return Err(spec_error(format!(
                "{num_channels} channels x {:?} voxels is more than 2^64 mask bytes",
                region.shape
            ))
            .into());
        }
        let format = options.format.unwrap_or(volume.format());
        let geometry = volume.geometry();
        let offset: Vec<f64> = (0..dims)
            .map(|d| {
                geometry.offset.as_slice()[d]
                    + region.start[d] as f64 * geometry.voxel_size.as_slice()[d]
            })
            .collect();
        let voxel_size = geometry.voxel_size.as_slice().to_vec();
        let ome_dataset = (geometry.source == "ome-ngff" && dims < 5)
            .then(|| dataset_path(volume.node()))
            .flatten();
        let array_path = match &ome_dataset {
            Some(dataset) => root.join(dataset),
            None => root.clone(),
        };

        let mut shape = vec![num_channels];
        shape.extend_from_slice(&region.shape);
        let mut chunks = vec![channel_chunk];
        chunks.extend_from_slice(&spatial_chunks);
        let mut spec = ArraySpec::new(shape.clone(), chunks, "uint8", format);
        spec.compression = options.compression;
        spec.attributes = array_attributes(mask, &offset, &voxel_size);
        if format == ZarrFormat::V3 {
            spec.dimension_names = Some(
                std::iter::once("c".to_string())
                    .chain(geometry.axis_names.iter().cloned())
                    .collect(),
            );
        }
        let metadata = spec.metadata().map_err(spec_error)?;
        let store = match &url {
            Some(url) => crate::store::remote_output(crate::remote::open(url, options.store)?),
            None => crate::store::filesystem_output(&root)
                .map_err(|e| spec_error(format!("cannot open a store there: {e}")))?,
        };
        let store = Arc::new(store);
        let dataset = ome_dataset
            .as_ref()
            .map_or_else(String::new, |d| format!("{d}/"));
        let array_node = format!("/{}", dataset.trim_end_matches('/'));
        let array = Array::new_with_metadata(store.clone(), &array_node, metadata.clone())
            .map_err(|e| spec_error(e.to_string()))?;

        let mut documents = Vec::new();
        if let Some(dataset) = &ome_dataset {
            let group = ome_group_attributes(mask, dataset, format, &offset, &voxel_size);
            documents.extend(group_documents(format, group));
        }
        documents.extend(array_documents(&dataset, metadata).map_err(spec_error)?);
        Ok(Self {
            local_root: url.is_none().then(|| root.clone()),
            root,
            array_path,
            dataset,
            store,
            format,
            origin: region.start.clone(),
            shape,
            channel_chunk,
            grid,
            documents,
            array,
            block_bytes,
            memory_budget: options.memory_budget,
        })
    }

    /// Bytes one block takes while it is read and computed (labels and mask).
    pub fn block_bytes(&self) -> u64 {
        self.block_bytes
    }

    /// Fails unless `in_flight` blocks fit in the memory budget, naming the chunk shape and the
    /// budget.
    pub fn check_memory(&self, in_flight: u64) -> Result<(), Error> {
        let need = self.block_bytes.saturating_mul(in_flight);
        if need <= self.memory_budget.bytes() {
            return Ok(());
        }
        Err(StorageError::OutputSpec {
            path: self.name(),
            message: format!(
                "output chunks of {:?} voxels take {} a block, {} for the {in_flight} blocks a \
                 run holds at once, more than the memory budget of {}: give smaller --chunks, \
                 fewer --readers/--writers/--queue-depth, or a larger --memory-budget (or {})",
                self.grid.chunks(),
                human_bytes(self.block_bytes),
                human_bytes(need),
                self.memory_budget,
                crate::budget::BUDGET_VARIABLE,
            ),
        }
        .into())
    }

    /// The path given as the output (the array, or the OME-NGFF group holding it).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of the mask array.
    pub fn array_path(&self) -> &Path {
        &self.array_path
    }

    /// Zarr v2 or v3.
    pub fn format(&self) -> ZarrFormat {
        self.format
    }

    /// The input voxel at the output's first voxel (the ROI's start).
    pub fn origin(&self) -> &[u64] {
        &self.origin
    }

    /// Shape `(channels, *spatial)`.
    pub fn shape(&self) -> &[u64] {
        &self.shape
    }

    /// Channels per chunk.
    pub fn channel_chunk(&self) -> u64 {
        self.channel_chunk
    }

    /// The spatial block grid (one block per spatial chunk).
    pub fn grid(&self) -> &BlockGrid {
        &self.grid
    }

    fn num_channels(&self) -> u64 {
        self.shape[0]
    }

    fn channel_chunks(&self) -> u64 {
        self.num_channels().div_ceil(self.channel_chunk)
    }

    fn name(&self) -> String {
        self.root.display().to_string()
    }

    fn write_error(&self, what: String, message: impl Into<Cause>) -> Error {
        StorageError::Write {
            path: self.name(),
            what,
            message: message.into(),
        }
        .into()
    }

    /// Writes the metadata (after [`MaskOutput::check`]); files already present and equal are
    /// left alone. Safe to run from several processes at once.
    pub fn create(&self) -> Result<(), Error> {
        self.check()?;
        for doc in &self.documents {
            let key = document_key(doc)?;
            let what = || format!("metadata {}", doc.key);
            let present = self
                .store
                .size_key(&key)
                .map_err(|e| self.write_error(what(), Cause::error(e)))?;
            if present.is_some() {
                continue;
            }
            self.store
                .set(&key, doc.bytes.clone().into())
                .map_err(|e| self.write_error(what(), Cause::error(e)))?;
        }
        Ok(())
    }

    /// Encodes and stores the chunks of `block` from its mask, channel-major over `block.shape`
    /// (as [`MissingAnnotationsMask::compute_block`] writes it). Chunks reaching past the array's
    /// end are padded with 0.
    pub fn write_block(&self, block: &Block, data: &[u8]) -> Result<(), Error> {
        let voxels = block.num_voxels() as usize;
        assert_eq!(
            data.len(),
            voxels * self.num_channels() as usize,
            "block data is channels x voxels"
        );
        let chunk_shape = self.grid.chunks();
        let full = block.shape.as_slice() == chunk_shape;
        let options = zarrs::array::CodecOptions::default().with_store_empty_chunks(true);
        for j in 0..self.channel_chunks() {
            let first = j * self.channel_chunk;
            let last = (first + self.channel_chunk).min(self.num_channels());
            let bytes: Cow<[u8]> = if full && last - first == self.channel_chunk {
                Cow::Borrowed(&data[first as usize * voxels..last as usize * voxels])
            } else {
                let chunk_voxels: usize = chunk_shape.iter().product::<u64>() as usize;
                let mut buf = vec![0u8; self.channel_chunk as usize * chunk_voxels];
                for c in first..last {
                    let src = &data[c as usize * voxels..(c as usize + 1) * voxels];
                    let at = (c - first) as usize * chunk_voxels;
                    copy_padded(
                        src,
                        &block.shape,
                        &mut buf[at..at + chunk_voxels],
                        chunk_shape,
                    );
                }
                Cow::Owned(buf)
            };
            self.array
                .store_chunk_opt(&chunk_indices(j, block), &*bytes, &options)
                .map_err(|e| {
                    self.write_error(format!("chunk {:?}", block.chunk), Cause::error(e))
                })?;
        }
        Ok(())
    }
}

/// The store key of a metadata document.
fn document_key(doc: &Document) -> Result<StoreKey, Error> {
    StoreKey::new(doc.key.as_str()).map_err(|e| {
        StorageError::OutputSpec {
            path: doc.key.clone(),
            message: e.to_string(),
        }
        .into()
    })
}

pub(super) fn chunk_indices(channel_chunk: u64, block: &Block) -> Vec<u64> {
    std::iter::once(channel_chunk)
        .chain(block.chunk.iter().copied())
        .collect()
}

/// Copies a C-order array of `src_shape` into the corner of a C-order array of `dst_shape`
/// (each axis at least as large), leaving the rest of `dst` as it is.
fn copy_padded(src: &[u8], src_shape: &[u64], dst: &mut [u8], dst_shape: &[u64]) {
    let dims = src_shape.len();
    let row = src_shape[dims - 1] as usize;
    if row == 0 {
        return;
    }
    let rows = src.len() / row;
    let mut index = vec![0u64; dims - 1];
    for r in 0..rows {
        let mut at = 0u64;
        for d in 0..dims - 1 {
            at = at * dst_shape[d] + index[d];
        }
        let at = (at * dst_shape[dims - 1]) as usize;
        dst[at..at + row].copy_from_slice(&src[r * row..(r + 1) * row]);
        for d in (0..dims - 1).rev() {
            index[d] += 1;
            if index[d] < src_shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
}

impl MaskSink for MaskOutput {
    fn grid(&self) -> &BlockGrid {
        &self.grid
    }

    fn source_region(&self, block: &Block) -> VoxelRegion {
        VoxelRegion {
            start: block
                .start
                .iter()
                .zip(&self.origin)
                .map(|(&s, &o)| s + o)
                .collect(),
            shape: block.shape.clone(),
        }
    }

    fn check_memory(&self, blocks: u64) -> Result<(), Error> {
        MaskOutput::check_memory(self, blocks)
    }

    /// Writes the metadata ([`MaskOutput::create`]), then removes this shard's stale
    /// temporaries ([`MaskOutput::remove_stale_temporaries`]).
    fn prepare(&self, shard: Shard, run_start: std::time::SystemTime) -> Result<usize, Error> {
        self.create()?;
        self.remove_stale_temporaries(shard, run_start)
    }

    fn is_complete(&self, block: &Block) -> Result<bool, Error> {
        MaskOutput::is_complete(self, block)
    }

    fn write_block(&self, block: &Block, data: &[u8]) -> Result<(), Error> {
        MaskOutput::write_block(self, block, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_padded_places_rows_in_the_corner() {
        let src: Vec<u8> = (1..=6).collect(); // 2 x 3
        let mut dst = vec![0u8; 3 * 4];
        copy_padded(&src, &[2, 3], &mut dst, &[3, 4]);
        assert_eq!(dst, [1, 2, 3, 0, 4, 5, 6, 0, 0, 0, 0, 0]);
        let src: Vec<u8> = (1..=4).collect(); // 1 x 2 x 2
        let mut dst = vec![0u8; 2 * 2 * 3];
        copy_padded(&src, &[1, 2, 2], &mut dst, &[2, 2, 3]);
        assert_eq!(dst, [1, 2, 0, 3, 4, 0, 0, 0, 0, 0, 0, 0]);
    }
}
