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
//! Every file is written through [`AtomicFilesystemStore`] (temporary file + rename), and every
//! chunk is stored, all-zero ones included, so "the chunk file exists" means "the chunk is
//! complete": that is the resume check. Metadata is written once, before any chunk, with bytes
//! that depend only on the inputs and options, so concurrent shard processes writing it race
//! harmlessly; an existing output is accepted only if its metadata equals this run's.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value, json};
use zarrs::array::{Array, ArrayMetadataOptions};
use zarrs::storage::store::MemoryStore;
use zarrs::storage::{ListableStorageTraits, ReadableStorageTraits};

use crate::blocks::{Block, BlockGrid, Shard};
use crate::budget::{MemoryBudget, human_bytes};
use crate::error::{Error, StorageError};
use crate::geometry::VoxelRegion;
use crate::mask::{MissingAnnotationsMask, PlanRef};
use crate::store::{AtomicFilesystemStore, destination_of, is_temporary};
use crate::volume::ZarrFormat;
use crate::zarr_array::{ArraySpec, Compression};

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
}

/// One metadata file of the output and its content.
#[derive(Clone, Debug, PartialEq)]
struct Document {
    path: PathBuf,
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
    format: ZarrFormat,
    origin: Vec<u64>,
    shape: Vec<u64>,
    channel_chunk: u64,
    grid: BlockGrid,
    documents: Vec<Document>,
    array: Array<AtomicFilesystemStore>,
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
        crate::store::refuse_url(&root)?;
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
            .then(|| dataset_path(volume.path()))
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
        let store = AtomicFilesystemStore::new(&array_path)
            .map_err(|e| spec_error(format!("cannot open a store there: {e}")))?;
        let array = Array::new_with_metadata(Arc::new(store), "/", metadata.clone())
            .map_err(|e| spec_error(e.to_string()))?;

        let mut documents = Vec::new();
        if let Some(dataset) = &ome_dataset {
            let group = ome_group_attributes(mask, dataset, format, &offset, &voxel_size);
            documents.extend(group_documents(&root, format, group));
        }
        documents.extend(array_documents(&array_path, metadata).map_err(spec_error)?);
        Ok(Self {
            root,
            array_path,
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

    fn write_error(&self, what: String, message: impl ToString) -> Error {
        StorageError::Write {
            path: self.name(),
            what,
            message: message.to_string(),
        }
        .into()
    }

    /// Checks, without writing, that this output can be written: the path is absent, an empty
    /// directory, or holds metadata equal to this run's (a run to resume, or a sibling shard's).
    /// Returns whether matching metadata was found.
    pub fn check(&self) -> Result<bool, Error> {
        let name = self.name();
        if self.root.exists() && !self.root.is_dir() {
            return Err(StorageError::OutputExists {
                path: name,
                problem: "is a file, not a directory".into(),
            }
            .into());
        }
        let mut found = false;
        for doc in &self.documents {
            match std::fs::metadata(&doc.path) {
                Ok(meta) if !meta.is_file() => {
                    return Err(StorageError::OutputExists {
                        path: name,
                        problem: format!(
                            "holds {} which is not a regular file",
                            relative(&self.root, &doc.path)
                        ),
                    }
                    .into());
                }
                Ok(_) => {}
                Err(_) => continue,
            }
            let Ok(text) = std::fs::read(&doc.path) else {
                continue;
            };
            let file = relative(&self.root, &doc.path);
            let existing: Value =
                serde_json::from_slice(&text).map_err(|e| StorageError::OutputExists {
                    path: name.clone(),
                    problem: format!("holds unreadable metadata {file}: {e}"),
                })?;
            if let Some(difference) = first_difference(&existing, &doc.value, "") {
                return Err(StorageError::OutputMismatch {
                    path: name,
                    file,
                    difference,
                }
                .into());
            }
            found = true;
        }
        // Metadata of the other zarr format, or files that are not ours, mean someone else's
        // data: refuse it. (Directories and temporary files are expected while sibling shards
        // create the output.)
        for dir in [&self.root, &self.array_path] {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let file_name = entry.file_name().to_string_lossy().into_owned();
                let path = entry.path();
                if path.is_dir() || is_temporary(&file_name) {
                    continue;
                }
                if self.documents.iter().any(|d| d.path == path) {
                    continue;
                }
                let problem = if METADATA_FILES.contains(&file_name.as_str()) {
                    format!(
                        "holds zarr metadata {} that this run (zarr v{}) would not write",
                        relative(&self.root, &path),
                        self.format.number()
                    )
                } else {
                    format!(
                        "is not empty and not a mask output (found {})",
                        relative(&self.root, &path)
                    )
                };
                return Err(StorageError::OutputExists {
                    path: name.clone(),
                    problem,
                }
                .into());
            }
        }
        Ok(found)
    }

    /// Writes the metadata (after [`MaskOutput::check`]); files already present and equal are
    /// left alone. Safe to run from several processes at once.
    pub fn create(&self) -> Result<(), Error> {
        self.check()?;
        for doc in &self.documents {
            if doc.path.exists() {
                continue;
            }
            AtomicFilesystemStore::write_atomically(&doc.path, &doc.bytes).map_err(|e| {
                self.write_error(format!("metadata {}", relative(&self.root, &doc.path)), e)
            })?;
        }
        Ok(())
    }

    /// Whether every chunk of `block` is stored (and so complete: chunks are written atomically).
    pub fn is_complete(&self, block: &Block) -> Result<bool, Error> {
        for j in 0..self.channel_chunks() {
            let key = self.array.chunk_key(&chunk_indices(j, block));
            let present = self
                .array
                .storage()
                .size_key(&key)
                .map_err(|e| self.read_error(block, e))?
                .is_some();
            if !present {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn read_error(&self, block: &Block, e: impl ToString) -> Error {
        StorageError::Read {
            path: self.name(),
            what: format!("output chunk {:?}", block.chunk),
            message: e.to_string(),
        }
        .into()
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
                .map_err(|e| self.write_error(format!("chunk {:?}", block.chunk), e))?;
        }
        Ok(())
    }

    /// Removes the temporary files of the chunks of `shard` (the chunks no other shard writes)
    /// that dead writers left ([`crate::store::is_stale`], for a run started at `run_start`);
    /// returns how many. A live writer's temporary file is left alone, and so are temporary
    /// metadata files: a sibling shard may be writing them right now.
    pub fn remove_stale_temporaries(
        &self,
        shard: Shard,
        run_start: std::time::SystemTime,
    ) -> Result<usize, Error> {
        let mut removed = 0;
        let mut stack = vec![self.array_path.clone()];
        let num_blocks = self.grid.num_blocks();
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(meta) = entry.metadata() else {
                    continue;
                };
                if meta.is_dir() {
                    stack.push(path);
                    continue;
                }
                let file_name = entry.file_name().to_string_lossy().into_owned();
                let Some(destination) = destination_of(&file_name) else {
                    continue;
                };
                let Some(chunk) = self.chunk_of(&path.with_file_name(destination)) else {
                    continue;
                };
                let mine = self
                    .grid
                    .number_of(&chunk[1..])
                    .is_some_and(|k| shard.contains(k, num_blocks));
                let modified = meta.modified().unwrap_or(run_start);
                if mine && crate::store::is_stale(&file_name, modified, run_start) {
                    match std::fs::remove_file(&path) {
                        Ok(()) => removed += 1,
                        // Renamed or removed meanwhile by its writer or another run: fine.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => {
                            return Err(self.write_error(
                                format!("(removing stale temporary {})", path.display()),
                                e,
                            ));
                        }
                    }
                }
            }
        }
        Ok(removed)
    }

    /// The chunk indices of the chunk file at `path`, if it is one of this array's chunk keys.
    fn chunk_of(&self, path: &Path) -> Option<Vec<u64>> {
        let rel = path.strip_prefix(&self.array_path).ok()?;
        let mut parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if self.format == ZarrFormat::V3 {
            if parts.first().map(String::as_str) != Some("c") {
                return None;
            }
            parts.remove(0);
        }
        let indices: Vec<u64> = parts
            .iter()
            .map(|p| p.parse().ok())
            .collect::<Option<_>>()?;
        (indices.len() == self.shape.len()).then_some(indices)
    }
}

/// Channels per chunk and the spatial chunk shape: `--chunks` as given (spatial, or channel
/// first), else all channels and the label chunk shape; either clipped to the region (as zarr
/// clips a default chunk shape). Without `--chunks`, a block that would take more than an
/// eighth of the memory budget (`bytes_per_voxel` a voxel) is halved along its longest axis
/// until it does not: a label array stored in one huge chunk is then read in parts.
fn chunk_layout(
    chunks: Option<&[u64]>,
    num_channels: u64,
    label_chunks: &[u64],
    region: &VoxelRegion,
    bytes_per_voxel: u64,
    budget: MemoryBudget,
) -> Result<(u64, Vec<u64>), String> {
    let dims = region.shape.len();
    let (channel_chunk, spatial) = match chunks {
        None => (num_channels, label_chunks.to_vec()),
        Some(c) if c.len() == dims => (num_channels, c.to_vec()),
        Some(c) if c.len() == dims + 1 => (c[0], c[1..].to_vec()),
        Some(c) => {
            return Err(format!(
                "--chunks has {} values; give {dims} (spatial) or {} (channel first)",
                c.len(),
                dims + 1
            ));
        }
    };
    if channel_chunk == 0 || spatial.contains(&0) {
        return Err("chunk sizes must be positive".into());
    }
    let channel_chunk = channel_chunk.min(num_channels);
    let mut spatial: Vec<u64> = spatial
        .iter()
        .zip(&region.shape)
        .map(|(&c, &s)| c.min(s).max(1))
        .collect();
    if chunks.is_none() {
        let target = budget.bytes() / 8;
        let bytes = |s: &[u64]| {
            s.iter()
                .fold(u128::from(bytes_per_voxel), |n, &c| n * u128::from(c))
        };
        while bytes(&spatial) > u128::from(target) {
            let (axis, &longest) = spatial
                .iter()
                .enumerate()
                .max_by_key(|&(_, &c)| c)
                .expect("at least one axis");
            if longest <= 1 {
                break;
            }
            spatial[axis] = longest.div_ceil(2);
        }
    }
    Ok((channel_chunk, spatial))
}

/// `path` made absolute and free of `.`/`..` and symbolic links as far as it exists (the rest
/// is appended as written, lexically normalised).
fn resolved(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            let mut out = real;
            for part in rest.iter().rev() {
                match part {
                    std::path::Component::ParentDir => {
                        out.pop();
                    }
                    std::path::Component::CurDir => {}
                    other => out.push(other.as_os_str()),
                }
            }
            return out;
        }
        match (existing.parent(), existing.components().next_back()) {
            (Some(parent), Some(last)) => {
                rest.push(last);
                existing = parent;
            }
            _ => return absolute,
        }
    }
}

/// Fails if the output at `root` is an input of `mask`, inside one, or holds one: the input is
/// never written to.
fn check_apart_from_inputs(root: &Path, mask: &MissingAnnotationsMask) -> Result<(), String> {
    let out = resolved(root);
    let mut inputs: Vec<&Path> = vec![mask.volume().path()];
    inputs.extend(mask.class_volumes().iter().map(|v| v.path()));
    inputs.extend(mask.crop().map(|c| c.path()));
    for input in inputs {
        let input_resolved = resolved(input);
        let problem = if out == input_resolved {
            "the output is the input".to_string()
        } else if out.starts_with(&input_resolved) {
            format!("the output is inside the input {}", input.display())
        } else if input_resolved.starts_with(&out) {
            format!("the output contains the input {}", input.display())
        } else {
            continue;
        };
        return Err(format!(
            "{problem}; the input is never written to: choose an output path outside it"
        ));
    }
    Ok(())
}

fn chunk_indices(channel_chunk: u64, block: &Block) -> Vec<u64> {
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

/// The input's dataset path within its parent group (its directory name), e.g. `s0`.
fn dataset_path(input: &Path) -> Option<String> {
    input
        .canonicalize()
        .ok()?
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .map_or_else(|_| path.display().to_string(), |p| p.display().to_string())
}

/// The attributes of the mask array (see the module docs).
fn array_attributes(
    mask: &MissingAnnotationsMask,
    offset: &[f64],
    voxel_size: &[f64],
) -> Map<String, Value> {
    let plan = mask.plan();
    let geometry = mask.volume().geometry();
    // The source: the label array, or the crop group (not the class array its geometry is from).
    let input = mask.crop().map_or(mask.volume().path(), |c| c.path());
    let input = input
        .canonicalize()
        .unwrap_or_else(|_| input.to_path_buf())
        .display()
        .to_string();
    let mut attrs = Map::new();
    attrs.insert("channels".into(), json!(mask.channels()));
    match plan {
        PlanRef::Labels(plan) => {
            let missing: Map<String, Value> = plan
                .channels()
                .iter()
                .map(|c| (c.name.clone(), json!(c.missing)))
                .collect();
            attrs.insert("missing_ids".into(), Value::Object(missing));
            attrs.insert("policy".into(), json!(plan.policy().name()));
            attrs.insert("sparse_policy".into(), json!(mask.options().sparse.name()));
            attrs.insert("background".into(), json!(plan.background()));
        }
        PlanRef::Crop(plan) => {
            // A crop group: a channel is off where a class is unknown, or everywhere when the
            // crop lacks one of its classes (SPEC 1.4).
            let lacking: Map<String, Value> = plan
                .channels()
                .iter()
                .map(|c| (c.name.clone(), json!(c.lacking)))
                .collect();
            attrs.insert("lacking_classes".into(), Value::Object(lacking));
            let classes: Map<String, Value> = plan
                .channels()
                .iter()
                .map(|c| (c.name.clone(), json!(c.classes)))
                .collect();
            attrs.insert("classes".into(), Value::Object(classes));
            attrs.insert("policy".into(), json!("cellmap-known"));
            attrs.insert("scale".into(), json!(mask.scale()));
        }
    }
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
fn ome_group_attributes(
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

fn document(path: PathBuf, value: Value) -> Document {
    let bytes = serde_json::to_vec_pretty(&value).expect("JSON values serialise");
    Document { path, bytes, value }
}

fn group_documents(root: &Path, format: ZarrFormat, attrs: Map<String, Value>) -> Vec<Document> {
    match format {
        ZarrFormat::V2 => vec![
            document(root.join(".zgroup"), json!({"zarr_format": 2})),
            document(root.join(".zattrs"), Value::Object(attrs)),
        ],
        ZarrFormat::V3 => vec![document(
            root.join("zarr.json"),
            json!({"zarr_format": 3, "node_type": "group", "attributes": attrs}),
        )],
    }
}

/// The metadata files of the array as `zarrs` writes them (rendered into memory).
fn array_documents(
    array_path: &Path,
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
            path: array_path.join(key.as_str()),
            bytes,
            value,
        });
    }
    Ok(docs)
}

/// Where two JSON documents first differ, as `a.b[2]: existing X, this run Y`.
fn first_difference(existing: &Value, expected: &Value, at: &str) -> Option<String> {
    let here = || if at.is_empty() { "(document)" } else { at };
    match (existing, expected) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|k| {
                let path = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => first_difference(x, y, &path),
                    (Some(x), None) => Some(format!("{path}: existing {x}, this run has none")),
                    (None, Some(y)) => Some(format!("{path}: existing has none, this run {y}")),
                    (None, None) => None,
                }
            })
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (x, y))| first_difference(x, y, &format!("{at}[{i}]"))),
        (a, b) if a == b => None,
        (a, b) => Some(format!("{}: existing {a}, this run {b}", here())),
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

    #[test]
    fn first_difference_names_the_path() {
        let a = json!({"attributes": {"policy": "per-voxel", "ids": [1, 2]}});
        let b = json!({"attributes": {"policy": "whole-channel", "ids": [1, 2]}});
        let d = first_difference(&a, &b, "").unwrap();
        assert!(
            d.starts_with("attributes.policy: existing \"per-voxel\""),
            "{d}"
        );
        assert_eq!(first_difference(&a, &a, ""), None);
        let c = json!({"attributes": {"policy": "per-voxel", "ids": [1, 3]}});
        assert!(
            first_difference(&a, &c, "")
                .unwrap()
                .starts_with("attributes.ids[1]")
        );
        let d = first_difference(&json!({"x": 1}), &json!({}), "").unwrap();
        assert!(d.contains("this run has none"), "{d}");
    }

    #[test]
    fn whole_numbers_stay_integers() {
        assert_eq!(numbers(&[8.0, 5.24, -4.0]), json!([8, 5.24, -4]));
    }
}
