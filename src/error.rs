//! Errors, one enum per concern, unified in [`enum@Error`]. Each concern's enum is beside its
//! module and re-exported here: [`MetadataError`] (`labels/metadata.rs`), [`GroupingsError`]
//! (`groupings.rs`), [`CropError`] (`cellmap/error.rs`), [`GeometryError`] (`geometry.rs`);
//! [`StorageError`] and [`GpuError`], which every module meets, are defined here.
//!
//! Every message names the thing at fault: the array path, the metadata entry and field, the
//! channel, the ROI. The CLI prints the message as it is and exits non-zero.

use std::fmt;
use std::sync::Arc;

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
        #[source]
        message: Cause,
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
        #[source]
        message: Cause,
    },
    /// Writing failed.
    #[error("{path}: cannot write {what}: {message}")]
    Write {
        /// The output array or file.
        path: String,
        /// What was being written.
        what: String,
        /// The underlying message.
        #[source]
        message: Cause,
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
        "{path}: {scheme}:// URLs are not supported: give a local path, a file:// URL, or an s3://, gs://, http:// or https:// URL"
    )]
    UnsupportedUrl {
        /// The URL as given.
        path: String,
        /// Its scheme.
        scheme: String,
    },
    /// An object-store URL that cannot be used (no bucket, a store that cannot be configured).
    #[error("{url}: {problem}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong.
        problem: String,
    },
    /// A remote store refused or failed a request (no such bucket, access denied, cannot
    /// connect), said in one line.
    #[error("{url}: {problem}")]
    Remote {
        /// The URL of the node.
        url: String,
        /// What failed.
        problem: String,
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

/// What went wrong underneath an error: the underlying error itself where there is one (a zarrs,
/// I/O or wgpu error, kept so that [`std::error::Error::source`] walks on to its own causes), or
/// a description. It displays as the underlying message, compares by that message (so errors
/// stay `Clone` and `PartialEq`), and reads as a `&str`.
///
/// ```
/// use std::error::Error as _;
/// use annomask::error::{Cause, StorageError};
/// let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
/// let e = StorageError::Write { path: "out.zarr".into(), what: "chunk c/0".into(),
///     message: Cause::error(io) };
/// assert_eq!(e.to_string(), "out.zarr: cannot write chunk c/0: denied");
/// let cause = e.source().unwrap().downcast_ref::<Cause>().unwrap();
/// assert!(cause.get_ref().unwrap().downcast_ref::<std::io::Error>().is_some());
/// ```
#[derive(Clone)]
pub struct Cause {
    text: String,
    error: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Cause {
    /// The cause `error`, kept whole.
    pub fn error(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            text: error.to_string(),
            error: Some(Arc::new(error)),
        }
    }

    /// A cause with a description only.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            error: None,
        }
    }

    /// The underlying error, if there is one.
    pub fn get_ref(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.error.as_deref()
    }

    /// The message.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl std::ops::Deref for Cause {
    type Target = str;
    fn deref(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text, f)
    }
}

impl PartialEq for Cause {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Cause {}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        let error: &(dyn std::error::Error + 'static) = self.error.as_deref()?;
        error.source()
    }
}

impl From<String> for Cause {
    fn from(text: String) -> Self {
        Self::text(text)
    }
}

impl From<&str> for Cause {
    fn from(text: &str) -> Self {
        Self::text(text)
    }
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
        #[source]
        message: Cause,
    },
    /// The device was lost (driver reset, GPU fault, or destroyed): it computes nothing more.
    #[error("GPU device {adapter} was lost: {message}")]
    DeviceLost {
        /// The adapter's name.
        adapter: String,
        /// Why, as far as the driver told.
        #[source]
        message: Cause,
    },
    /// A GPU operation (validation, out of memory, mapping) failed.
    #[error("GPU {operation} failed: {message}")]
    Operation {
        /// What was being done.
        operation: String,
        /// What wgpu said.
        #[source]
        message: Cause,
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
    /// Raw data beside the labels.
    #[error(transparent)]
    Raw(#[from] crate::raw::RawError),
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
