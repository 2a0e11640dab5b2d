//! The errors of crop groups: their attributes, classes and scales.

use thiserror::Error;

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
