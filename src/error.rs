//! Errors, one enum per concern, unified in [`enum@Error`].
//!
//! Every message names the thing at fault: the array path, the metadata entry and field, the
//! channel, the ROI. The CLI prints the message as it is and exits non-zero.

use thiserror::Error;

use crate::geometry::Roi;

/// A problem with the annotation metadata (`labels` attribute, SPEC 1.2).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetadataError {
    /// The array has no `labels` attribute and `allow_missing_metadata` is off.
    #[error(
        "{path}: no `labels` attribute (annotation metadata); pass allow_missing_metadata \
         (--allow-missing-metadata) to treat every id as annotated"
    )]
    MissingLabels {
        /// The label array.
        path: String,
    },
    /// The `labels` attribute is not a list.
    #[error("{path}: attribute `labels` must be a list of entries, found {found}")]
    NotAList {
        /// The label array.
        path: String,
        /// The JSON kind that was found instead.
        found: String,
    },
    /// One entry of the `labels` list is malformed.
    #[error("{path}: labels[{index}].{field}: {problem}")]
    Entry {
        /// The label array.
        path: String,
        /// Position of the entry in the `labels` list.
        index: usize,
        /// The field at fault, e.g. `annotationState.present`.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// A problem with the channel groupings (SPEC 1.3).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupingsError {
    /// The groupings file could not be read.
    #[error("{path}: cannot read groupings: {message}")]
    Read {
        /// The groupings file.
        path: String,
        /// The operating system's message.
        message: String,
    },
    /// The groupings text is not JSON (or TOML) of the expected shape.
    #[error("{source_name}: groupings are not valid: {message}")]
    Parse {
        /// Where the groupings came from (a path, or `<api>`).
        source_name: String,
        /// What is wrong, in one line (for TOML: line, column and the parser's message).
        message: String,
    },
    /// The groupings list no channel (`[]`, `groupings = []`, or an empty TOML file).
    #[error(
        "{source_name}: the groupings have no channels; a mask needs at least one channel, \
         e.g. [[\"mito\", [3, 4, 5]]]"
    )]
    NoChannels {
        /// Where the groupings came from.
        source_name: String,
    },
    /// A channel has an empty name.
    #[error("{source_name}: channel {index} has an empty name")]
    EmptyName {
        /// Where the groupings came from.
        source_name: String,
        /// Position of the channel.
        index: usize,
    },
    /// Two channels share a name.
    #[error("{source_name}: channel name {name:?} is used by channels {first} and {second}")]
    DuplicateName {
        /// Where the groupings came from.
        source_name: String,
        /// The name used twice.
        name: String,
        /// First channel with it.
        first: usize,
        /// Second channel with it.
        second: usize,
    },
    /// A channel member is not a label id (a non-negative integer below 2^64).
    #[error(
        "{source_name}: channel {channel:?} member {position} is {found}, not a label id \
         (an integer in 0..=18446744073709551615)"
    )]
    BadId {
        /// Where the groupings came from.
        source_name: String,
        /// The channel.
        channel: String,
        /// Position of the member in the channel's list.
        position: usize,
        /// The JSON that was found.
        found: String,
    },
    /// A member of a class-name channel (CellMap crop groups, SPEC 1.4) is not a class name.
    #[error(
        "{source_name}: channel {channel:?} member {position} is {found}, not a class name \
         (a non-empty string like \"mito_mem\")"
    )]
    BadClass {
        /// Where the groupings came from.
        source_name: String,
        /// The channel.
        channel: String,
        /// Position of the member in the channel's list.
        position: usize,
        /// The JSON that was found.
        found: String,
    },
    /// A class-name channel lists no class (it would be trained everywhere and never positive).
    #[error(
        "{source_name}: channel {channel:?} lists no class; a crop-group channel needs at least \
         one class name"
    )]
    NoClasses {
        /// Where the groupings came from.
        source_name: String,
        /// The channel.
        channel: String,
    },
    /// Groupings of the wrong kind for the source: label ids for a crop group, or class names
    /// for a label array.
    #[error("{path}: {source_kind} needs groupings by {expected}, these group {found}")]
    WrongKind {
        /// The source.
        path: String,
        /// `a label array` or `a CellMap crop group`.
        source_kind: String,
        /// What the source needs, e.g. `class name ([["mito", ["mito_mem", "mito_lum"]]])`.
        expected: String,
        /// What the groupings hold.
        found: String,
    },
}

/// A problem with a CellMap crop group (SPEC 1.4): its `cellmap.annotation` attributes, its
/// class sub-groups, or their arrays at the chosen scale.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CropError {
    /// An attribute of the crop group itself is missing or malformed.
    #[error("{path}: attribute `{attribute}`: {problem}")]
    CropAttribute {
        /// The crop group.
        path: String,
        /// The attribute, e.g. `cellmap.annotation.class_names[2]`.
        attribute: String,
        /// What is wrong.
        problem: String,
    },
    /// An attribute of one class sub-group (or of its array) is missing or malformed.
    #[error("{path}: class {class:?}: attribute `{attribute}`: {problem}")]
    ClassAttribute {
        /// The class group (or array) whose attribute is at fault.
        path: String,
        /// The class.
        class: String,
        /// The attribute, e.g. `cellmap.annotation.annotation_type.encoding.unknown`.
        attribute: String,
        /// What is wrong.
        problem: String,
    },
    /// A class listed in `class_names` has no sub-group.
    #[error(
        "{path}: class {class:?} is listed in cellmap.annotation.class_names but the crop has no \
         group {class:?} ({message})"
    )]
    MissingClassGroup {
        /// The crop group.
        path: String,
        /// The class.
        class: String,
        /// What was found instead.
        message: String,
    },
    /// A class was asked for that the crop does not list in `class_names`.
    #[error("{path}: class {class:?} is not in cellmap.annotation.class_names ({listed})")]
    NotListed {
        /// The crop group.
        path: String,
        /// The class.
        class: String,
        /// The classes it lists, comma-separated.
        listed: String,
    },
    /// A class group has no array at the chosen scale.
    #[error("{path}: class {class:?} has no scale {scale:?} (its scales: {available})")]
    MissingScale {
        /// The class group.
        path: String,
        /// The class.
        class: String,
        /// The scale asked for.
        scale: String,
        /// The scales it has, comma-separated, or `none`.
        available: String,
    },
    /// Two class arrays that form one mask differ in shape, voxel size, offset or axes.
    #[error(
        "{path}: class arrays {first} and {second} differ in {difference}; the classes of a \
         mask must share shape, voxel size and offset at the chosen scale"
    )]
    GeometryMismatch {
        /// The crop group.
        path: String,
        /// One array.
        first: String,
        /// The other array.
        second: String,
        /// What differs, with both values, e.g. `shape: [8, 8, 8] vs [8, 8, 9]`.
        difference: String,
    },
    /// The crop lists no class, so there is no array to take the geometry from.
    #[error("{path}: cellmap.annotation.class_names is empty: the crop has no class array")]
    NoClasses {
        /// The crop group.
        path: String,
    },
    /// A class group's multiscales list the scale, but its array is not on disk.
    #[error(
        "{path}: class {class:?}: scale {scale:?} is listed in its multiscales but its array \
         {array} {problem}"
    )]
    ScaleArrayMissing {
        /// The class group.
        path: String,
        /// The class.
        class: String,
        /// The scale asked for.
        scale: String,
        /// The array's path.
        array: String,
        /// `is missing`, or `is not a directory`.
        problem: String,
    },
    /// The source is a zarr group, but not a crop group: it has no `cellmap` attributes (and a
    /// group is not a label array either).
    #[error(
        "{path}: a zarr group without CellMap crop-group attributes (cellmap.annotation), so \
         neither a crop group nor a label array{hint}"
    )]
    NotACropGroup {
        /// The group.
        path: String,
        /// A hint, e.g. the arrays of its multiscales; empty or starting with `; `.
        hint: String,
    },
    /// A zarr metadata file (`zarr.json`, `.zgroup`, `.zarray`, `.zattrs`) of a source cannot
    /// be read as JSON.
    #[error("{path}: {problem}")]
    MetadataFile {
        /// The metadata file.
        path: String,
        /// What is wrong with it, e.g. `truncated or not valid JSON (EOF while parsing ...)`.
        problem: String,
    },
}

/// A problem with geometry: voxel size, offset, axes, or a requested ROI (SPEC 3).
#[derive(Debug, Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum GeometryError {
    /// A requested ROI that cannot be served.
    #[error(
        "{path}: requested ROI {requested} {problem} (array ROI {available}, voxel size {voxel_size})"
    )]
    Roi {
        /// The array.
        path: String,
        /// What was asked for.
        requested: Box<Roi>,
        /// The array's ROI.
        available: Box<Roi>,
        /// The array's voxel size, as text.
        voxel_size: String,
        /// What is wrong, e.g. "is not inside".
        problem: String,
    },
    /// A geometry attribute (voxel size, offset, axes, multiscales) is malformed.
    #[error("{path}: attribute `{attribute}`: {problem}")]
    Attribute {
        /// The array or group whose attribute is at fault.
        path: String,
        /// The attribute, e.g. `multiscales[0].datasets[0].coordinateTransformations`.
        attribute: String,
        /// What is wrong.
        problem: String,
    },
}

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
