//! [`CropGroup`]: a CellMap crop opened from disk (zarr v2 or v3): its `cellmap.annotation`
//! attributes, its class sub-groups, and their multiscale arrays (SPEC 1.4).
//!
//! Opening a crop reads only attributes. Class arrays are opened on request at a chosen scale
//! ([`CropGroup::open_classes`]), as [`LabelVolume`]s whose geometry comes from the OME-NGFF
//! multiscales of the class group; the arrays that form one mask must agree on shape, voxel size
//! and offset.
//!
//! ```
//! use annomask::cellmap::{synth, CropGroup};
//! let dir = tempfile::tempdir()?;
//! let path = synth::write_demo_crop(dir.path(), 8, annomask::ZarrFormat::V2)?;
//! assert!(CropGroup::is_crop_group(&path));
//! let crop = CropGroup::open(&path)?;
//! assert!(crop.class("mito_mem").is_some());
//! let arrays = crop.open_classes(&["mito_mem", "mito"], "s0")?;
//! assert_eq!(arrays[0].shape(), &[8, 8, 8]);
//! assert_eq!(crop.class("mito").unwrap().scales, ["s0", "s1"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::attrs::{self, ClassAnnotation};
use crate::error::{CropError, Error, StorageError};
use crate::geometry::Geometry;
use crate::node::{MetadataProblem, Node};
use crate::volume::LabelVolume;

/// Options of a crop-group mask besides the groupings.
///
/// ```
/// use annomask::cellmap::CropOptions;
/// assert_eq!(CropOptions::default().scale, "s0");
/// assert_eq!(CropOptions::default().scale("s1").scale, "s1");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CropOptions {
    /// The multiscale level (dataset path in each class group) to read; default `s0`.
    pub scale: String,
}

impl Default for CropOptions {
    fn default() -> Self {
        Self { scale: "s0".into() }
    }
}

impl CropOptions {
    /// Sets the scale.
    pub fn scale(mut self, scale: impl Into<String>) -> Self {
        self.scale = scale.into();
        self
    }
}

/// One class sub-group of a crop.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassGroup {
    /// Its `cellmap.annotation`.
    pub annotation: ClassAnnotation,
    /// The sub-group's path.
    pub path: PathBuf,
    /// The sub-group's node.
    pub node: Node,
    /// The dataset paths its OME-NGFF multiscales list (`s0`, `s1`, ...), in order; empty when
    /// it has no multiscales.
    pub scales: Vec<String>,
}

impl ClassGroup {
    /// The class name.
    pub fn name(&self) -> &str {
        &self.annotation.class_name
    }

    /// The path of its array at `scale`, or [`CropError::ScaleArrayMissing`] if its
    /// multiscales list the scale but the array is not on disk, or [`CropError::MissingScale`].
    pub fn array_path(&self, scale: &str) -> Result<PathBuf, CropError> {
        self.array_node(scale).map(|_| self.path.join(scale))
    }

    /// The node of its array at `scale` (see [`ClassGroup::array_path`]).
    pub fn array_node(&self, scale: &str) -> Result<Node, CropError> {
        let node = self.node.child(scale);
        let path = self.path.join(scale);
        let in_multiscales = self.scales.iter().any(|s| s == scale);
        let listed = self.scales.is_empty() || in_multiscales;
        if listed && node.exists() {
            return Ok(node);
        }
        if in_multiscales {
            return Err(CropError::ScaleArrayMissing {
                path: self.path.display().to_string(),
                class: self.name().to_string(),
                scale: scale.to_string(),
                array: path.display().to_string(),
                problem: match self.node.has(scale) {
                    true => "is not a directory",
                    false => "is missing",
                }
                .to_string(),
            });
        }
        let available = if self.scales.is_empty() {
            "none: no multiscales and no such array".to_string()
        } else {
            self.scales.join(", ")
        };
        Err(CropError::MissingScale {
            path: self.path.display().to_string(),
            class: self.name().to_string(),
            scale: scale.to_string(),
            available,
        })
    }
}

/// A CellMap crop group: a zarr group whose attributes hold `cellmap.annotation.class_names`,
/// with one sub-group per class.
#[derive(Clone, Debug, PartialEq)]
pub struct CropGroup {
    node: Node,
    path: PathBuf,
    name: String,
    attributes: Map<String, Value>,
    version: Option<String>,
    classes: Vec<ClassGroup>,
}

/// A metadata document that cannot be read, as a crop error.
fn metadata_error(problem: MetadataProblem) -> CropError {
    CropError::MetadataFile {
        path: problem.path,
        problem: problem.problem,
    }
}

/// The names of the children of `node` that are zarr arrays, sorted.
fn child_arrays(node: &Node) -> Vec<String> {
    let names = node.child_names().unwrap_or_default();
    names
        .into_iter()
        .filter(|n| node.child(n).is_array())
        .collect()
}

/// Why the node at `path`, which is not a crop group, is not a label array either, as its zarr
/// metadata tells: a metadata file that is not a regular file or not valid JSON
/// ([`CropError::MetadataFile`]), or a zarr group without `cellmap` attributes
/// ([`CropError::NotACropGroup`]). `None` when the metadata says nothing against an array (it
/// may still fail to open as one, with the zarr library's message).
///
/// ```
/// use annomask::cellmap::crop::why_not_a_source;
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("zarr.json"), r#"{"zarr_format": 3, "node_type": "gr"#)?;
/// let err = why_not_a_source(dir.path()).unwrap();
/// assert!(err.to_string().contains("zarr.json: zarr metadata is truncated or not valid JSON"));
/// std::fs::write(dir.path().join("zarr.json"), r#"{"zarr_format": 3, "node_type": "group"}"#)?;
/// let err = why_not_a_source(dir.path()).unwrap();
/// assert!(err.to_string().contains("a zarr group without CellMap crop-group attributes"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn why_not_a_source(path: &Path) -> Option<CropError> {
    why_not_a_source_node(&Node::local(path).ok()?)
}

/// `error`, from opening `path` as a label array, replaced by the answer of
/// [`why_not_a_source`] where the zarr library could only say that it is not an array.
pub fn explain_not_an_array(node: &Node, error: Error) -> Error {
    if matches!(error, Error::Storage(StorageError::NotAnArray { .. }))
        && let Some(why) = why_not_a_source_node(node)
    {
        return why.into();
    }
    error
}

/// [`why_not_a_source`] of a node.
pub fn why_not_a_source_node(node: &Node) -> Option<CropError> {
    if !node.exists() {
        return None;
    }
    let not_a_crop_group = |attrs: &Map<String, Value>| {
        if attrs::has_cellmap(attrs) {
            return None;
        }
        let levels = multiscale_paths(attrs);
        let hint = match levels.first() {
            Some(first) => format!(
                "; it holds a multiscale image: give the array of one level, e.g. {}",
                node.child(first).name()
            ),
            None => match child_arrays(node).first() {
                Some(child) => format!(
                    "; give one of its arrays, e.g. {}",
                    node.child(child).name()
                ),
                None => String::new(),
            },
        };
        Some(CropError::NotACropGroup {
            path: node.name().to_string(),
            hint,
        })
    };
    let metadata_file = |file: &str| node.read_json(file).map(|r| r.map_err(metadata_error));
    match metadata_file("zarr.json") {
        Some(Err(e)) => return Some(e),
        Some(Ok(meta)) => {
            if meta.get("node_type").and_then(Value::as_str) != Some("group") {
                return None;
            }
            let attrs = match meta.get("attributes") {
                Some(Value::Object(a)) => a.clone(),
                _ => Map::new(),
            };
            return not_a_crop_group(&attrs);
        }
        None => {}
    }
    // Zarr v2: `.zarray` or `.zgroup`, and `.zattrs`.
    let array = match metadata_file(".zarray") {
        Some(Err(e)) => return Some(e),
        Some(Ok(_)) => true,
        None => false,
    };
    let group = match metadata_file(".zgroup") {
        Some(Err(e)) if !array => return Some(e),
        Some(_) => !array,
        None => false,
    };
    if !array && !group {
        return None;
    }
    let attrs = match metadata_file(".zattrs") {
        Some(Err(e)) => return Some(e),
        Some(Ok(Value::Object(a))) => a,
        Some(Ok(_)) | None => Map::new(),
    };
    if array {
        None
    } else {
        not_a_crop_group(&attrs)
    }
}

/// Dataset paths of the OME-NGFF multiscales (0.4 at the top, 0.5 under `ome`) in `attrs`.
fn multiscale_paths(attrs: &Map<String, Value>) -> Vec<String> {
    let multiscales = attrs
        .get("ome")
        .and_then(|o| o.get("multiscales"))
        .or_else(|| attrs.get("multiscales"))
        .and_then(Value::as_array);
    multiscales
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("datasets").and_then(Value::as_array))
        .flatten()
        .filter_map(|d| d.get("path").and_then(Value::as_str))
        .map(|p| p.trim_matches('/').to_string())
        .collect()
}

impl CropGroup {
    /// Whether `path` is a crop group: a zarr group with a `cellmap` attribute. (A label array,
    /// or a group without one, is not.)
    pub fn is_crop_group(path: impl AsRef<Path>) -> bool {
        Node::local(path).is_ok_and(|node| Self::is_crop_group_node(&node))
    }

    /// Whether `node` is a crop group (see [`CropGroup::is_crop_group`]).
    pub fn is_crop_group_node(node: &Node) -> bool {
        node.is_group() && node.attributes().is_some_and(|a| attrs::has_cellmap(&a))
    }

    /// Opens the crop group at `path`: reads its `cellmap.annotation` and that of every class it
    /// lists. Sub-groups that `class_names` does not list are ignored (as cellmap-schemas does).
    ///
    /// Errors: [`StorageError::NotFound`]; [`CropError::MetadataFile`] for a `zarr.json` or
    /// `.zattrs` (of the crop or a class) that is not a regular file or not valid JSON;
    /// [`CropError::CropAttribute`] for missing or malformed crop attributes; [`CropError::MissingClassGroup`] for a listed class without a sub-group;
    /// [`CropError::ClassAttribute`] for missing or malformed class attributes.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        let text = path.as_ref().to_string_lossy();
        Self::open_node(&Node::open(&text, crate::remote::StoreOptions::default())?)
    }

    /// Opens the crop group at `node` (see [`CropGroup::open`]).
    pub fn open_node(node: &Node) -> Result<Self, Error> {
        let name = node.name().to_string();
        let path = node.display_path();
        let attributes = node.attributes_checked().map_err(metadata_error)?;
        let crop = attrs::crop_attributes(&name, &attributes)?;
        let classes = crop
            .class_names
            .iter()
            .map(|class| {
                let dir = path.join(class);
                let child = node.child(class);
                if !child.exists() {
                    return Err(CropError::MissingClassGroup {
                        path: name.clone(),
                        class: class.clone(),
                        message: format!("no directory {}", dir.display()),
                    });
                }
                let group_attrs = child.attributes_checked().map_err(metadata_error)?;
                let annotation =
                    attrs::class_annotation(&dir.display().to_string(), class, &group_attrs)?;
                Ok(ClassGroup {
                    annotation,
                    scales: multiscale_paths(&group_attrs),
                    path: dir,
                    node: child,
                })
            })
            .collect::<Result<Vec<_>, CropError>>()?;
        Ok(Self {
            node: node.clone(),
            path,
            name,
            attributes,
            version: crop.version,
            classes,
        })
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path as text, as errors print it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The crop group's attributes.
    pub fn attributes(&self) -> &Map<String, Value> {
        &self.attributes
    }

    /// `cellmap.annotation.version`, where given.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// The classes of `class_names`, in order.
    pub fn classes(&self) -> &[ClassGroup] {
        &self.classes
    }

    /// The class named `name`, if the crop lists it.
    pub fn class(&self, name: &str) -> Option<&ClassGroup> {
        self.classes.iter().find(|c| c.name() == name)
    }

    /// Opens the array of class `class` at `scale`.
    ///
    /// Errors: [`CropError::NotListed`] if the crop does not list `class`,
    /// [`CropError::MissingScale`], and the errors of [`LabelVolume::open`] (unsupported dtype,
    /// dimensionality, geometry attributes), which name the array.
    pub fn open_class(&self, class: &str, scale: &str) -> Result<LabelVolume, Error> {
        let group = self.class(class).ok_or_else(|| CropError::NotListed {
            path: self.name.clone(),
            class: class.to_string(),
            listed: self
                .classes
                .iter()
                .map(ClassGroup::name)
                .collect::<Vec<_>>()
                .join(", "),
        })?;
        LabelVolume::open_node(&group.array_node(scale)?)
    }

    /// Opens the arrays of `classes` at `scale` and checks that they share shape, voxel size,
    /// offset and axes ([`CropError::GeometryMismatch`] names the two arrays that differ).
    pub fn open_classes(&self, classes: &[&str], scale: &str) -> Result<Vec<LabelVolume>, Error> {
        let volumes = classes
            .iter()
            .map(|c| self.open_class(c, scale))
            .collect::<Result<Vec<_>, Error>>()?;
        if let Some((first, rest)) = volumes.split_first() {
            for other in rest {
                self.check_same_geometry(first, other)?;
            }
        }
        Ok(volumes)
    }

    /// Fails with [`CropError::GeometryMismatch`] unless `a` and `b` share shape, axes, voxel
    /// size and offset.
    pub(crate) fn check_same_geometry(
        &self,
        a: &LabelVolume,
        b: &LabelVolume,
    ) -> Result<(), CropError> {
        let (ga, gb) = (a.geometry(), b.geometry());
        let mismatch = |what: &str, x: String, y: String| CropError::GeometryMismatch {
            path: self.name.clone(),
            first: a.name().to_string(),
            second: b.name().to_string(),
            difference: format!("{what}: {x} vs {y}"),
        };
        if ga.shape != gb.shape {
            return Err(mismatch(
                "shape",
                format!("{:?}", ga.shape),
                format!("{:?}", gb.shape),
            ));
        }
        if ga.axis_names != gb.axis_names {
            return Err(mismatch(
                "axes",
                format!("{:?}", ga.axis_names),
                format!("{:?}", gb.axis_names),
            ));
        }
        if !same_voxel_size(ga, gb) {
            return Err(mismatch(
                "voxel size",
                ga.voxel_size.to_string(),
                gb.voxel_size.to_string(),
            ));
        }
        let offset_difference = gb.offset.sub(&ga.offset);
        if offset_difference
            .in_voxels(&ga.voxel_size)
            .is_none_or(|d| d.iter().any(|&v| v != 0))
        {
            return Err(mismatch(
                "offset",
                ga.offset.to_string(),
                gb.offset.to_string(),
            ));
        }
        Ok(())
    }
}

/// Voxel sizes equal to within a relative 1e-9 (float round-off in OME-NGFF scales).
fn same_voxel_size(a: &Geometry, b: &Geometry) -> bool {
    a.voxel_size
        .as_slice()
        .iter()
        .zip(b.voxel_size.as_slice())
        .all(|(x, y)| (x - y).abs() <= 1e-9 * x.abs().max(y.abs()))
}
