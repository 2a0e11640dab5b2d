//! Errors, one enum per concern, unified in [`enum@Error`]. Each concern's enum is beside its
//! module and re-exported here: [`MetadataError`] (`labels/metadata.rs`), [`GroupingsError`]
//! (`groupings.rs`), [`CropError`] (`cellmap/error.rs`), [`GeometryError`] (`geometry.rs`);
//! [`StorageError`] and [`GpuError`], which every module meets, are defined here.
//!
//! Every message names the thing at fault: the array path, the metadata entry and field, the
//! channel, the ROI. The CLI prints the message as it is and exits non-zero.

use thiserror::Error;

pub use crate::cellmap::error::CropError;
pub use crate::geometry::GeometryError;
pub use crate::groupings::GroupingsError;
pub use crate::labels::metadata::MetadataError;

/// A problem opening, reading or writing zarr data.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageError {
    /// The path does not exist.
    #[error("{path}: no such file or directory")]
    NotFound {
        /// The path.
        path: String,
    },
    /// The path is not a zarr array (or cannot be opened as one).
    #[error("{path}: not a zarr array: {message}")]
    NotAnArray {
        /// The path.
        path: String,
        /// What zarrs said.
        message: String,
    },
    /// The label array's data type cannot hold label ids.
    #[error(
        "{path}: unsupported label dtype {dtype} (labels must be uint8/16/32/64 or int8/16/32/64)"
    )]
    UnsupportedDtype {
        /// The array.
        path: String,
        /// Its data type.
        dtype: String,
    },
    /// The label array has too few or too many dimensions.
    #[error("{path}: label arrays must have 2 to 5 dimensions, this one has {ndim}")]
    Dimensionality {
        /// The array.
        path: String,
        /// Its dimensionality.
        ndim: usize,
    },
    /// Reading failed (I/O, a corrupted chunk, an unsupported codec).
    #[error("{path}: cannot read {what}: {message}")]
    Read {
        /// The array.
        path: String,
        /// What was being read (a region or a chunk).
        what: String,
        /// The underlying message.
        message: String,
    },
    /// Writing failed.
    #[error("{path}: cannot write {what}: {message}")]
    Write {
        /// The output array or file.
        path: String,
        /// What was being written.
        what: String,
        /// The underlying message.
        message: String,
    },
    /// The requested output layout is invalid (chunk shape, no channels).
    #[error("{path}: invalid output: {message}")]
    OutputSpec {
        /// The output path.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The output path exists and is not a mask output this run may write into.
    #[error("{path}: output {problem}; remove it or choose another output path")]
    OutputExists {
        /// The output path.
        path: String,
        /// What was found there.
        problem: String,
    },
    /// The output exists with metadata that differs from this run's (other inputs or options).
    #[error(
        "{path}: output exists with different metadata ({file}: {difference}); a resumed or \
         sharded run must use the same inputs and options, or remove it / choose another output path"
    )]
    OutputMismatch {
        /// The output path.
        path: String,
        /// The metadata file that differs.
        file: String,
        /// Where it differs.
        difference: String,
    },
    /// A URL of a scheme annomask cannot read or write (object stores are not supported yet).
    #[error(
        "{path}: {scheme}:// URLs are not supported (object stores are not yet): give a local path or a file:// URL"
    )]
    UnsupportedUrl {
        /// The URL as given.
        path: String,
        /// Its scheme.
        scheme: String,
    },
    /// Two inputs would be written to the same output.
    #[error(
        "{path}: output of both {first} and {second}; put {{name}}, {{path}} or {{index}} in the \
         output template"
    )]
    OutputCollision {
        /// The output path.
        path: String,
        /// The first input mapped to it.
        first: String,
        /// The second input mapped to it.
        second: String,
    },
}

/// A problem with the GPU engine.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GpuError {
    /// No adapter (GPU or software Vulkan device) was found.
    #[error(
        "no GPU adapter found ({message}); use the cpu engine, or install a Vulkan driver (e.g. mesa-vulkan-drivers)"
    )]
    NoAdapter {
        /// Why.
        message: String,
    },
    /// The device could not be created.
    #[error("cannot create a GPU device on {adapter}: {message}")]
    Device {
        /// The adapter's name.
        adapter: String,
        /// What wgpu said.
        message: String,
    },
    /// The device was lost (driver reset, GPU fault, or destroyed): it computes nothing more.
    #[error("GPU device {adapter} was lost: {message}")]
    DeviceLost {
        /// The adapter's name.
        adapter: String,
        /// Why, as far as the driver told.
        message: String,
    },
    /// A GPU operation (validation, out of memory, mapping) failed.
    #[error("GPU {operation} failed: {message}")]
    Operation {
        /// What was being done.
        operation: String,
        /// What wgpu said.
        message: String,
    },
    /// This build has no GPU engine: annomask was compiled without its `gpu` feature.
    #[error(
        "annomask was built without the `gpu` feature: use the cpu engine, or rebuild with the `gpu` feature"
    )]
    NotBuilt,
}

/// Every error of annomask.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// Annotation metadata.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// Channel groupings.
    #[error(transparent)]
    Groupings(#[from] GroupingsError),
    /// Geometry and ROIs.
    #[error(transparent)]
    Geometry(#[from] GeometryError),
    /// Zarr storage.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// GPU engine.
    #[error(transparent)]
    Gpu(#[from] GpuError),
    /// CellMap crop groups.
    #[error(transparent)]
    Crop(#[from] CropError),
    /// The training feeder cannot use its crops or configuration.
    #[error("feeder: {crop}: {problem}")]
    Feeder {
        /// The crop at fault (or `<feeder>`).
        crop: String,
        /// What is wrong.
        problem: String,
    },
    /// The mask has no stored data (SPEC 4: `data()`).
    #[error(
        "{name}: a missing-annotations mask has no stored data; it is computed on request with get(roi)"
    )]
    NoStoredData {
        /// The mask's name.
        name: String,
    },
    /// The `--verify` check found a difference between engines.
    #[error(
        "verify failed: {engine} and cpu differ at channel {channel}, voxel {voxel:?}: {engine} gave {got}, cpu gave {expected}"
    )]
    VerifyMismatch {
        /// The engine that was checked.
        engine: String,
        /// Channel index.
        channel: usize,
        /// Voxel index within the computed block.
        voxel: Vec<u64>,
        /// Value from the engine.
        got: u8,
        /// Value from the cpu engine.
        expected: u8,
    },
    /// A thread of a run panicked: a bug, turned into the run's error instead of a hang.
    #[error(
        "internal error in a {stage} thread: {message} (a bug in annomask: please report it with the command that failed)"
    )]
    Panic {
        /// The stage whose thread panicked (reader, writer).
        stage: String,
        /// The panic's message.
        message: String,
    },
}

/// `Result` with [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
