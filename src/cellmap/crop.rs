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
use crate::volume::{LabelVolume, node_attributes};

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
    /// The dataset paths its OME-NGFF multiscales list (`s0`, `s1`, ...), in order; empty when
    /// it has no multiscales.
    pub scales: Vec<String>,
}

impl ClassGroup {
    /// The class name.
    pub fn name(&self) -> &str {
        &self.annotation.class_name
    }

    /// The path of its array at `scale`, or [`CropError::MissingScale`].
    pub fn array_path(&self, scale: &str) -> Result<PathBuf, CropError> {
        let path = self.path.join(scale);
        let listed = self.scales.is_empty() || self.scales.iter().any(|s| s == scale);
        if listed && path.is_dir() {
            return Ok(path);
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
    path: PathBuf,
    name: String,
    attributes: Map<String, Value>,
    version: Option<String>,
    classes: Vec<ClassGroup>,
}

/// Whether the node at `dir` is a zarr group (`.zgroup`, or `zarr.json` with `node_type: group`).
fn is_group(dir: &Path) -> bool {
    if dir.join(".zgroup").is_file() {
        return true;
    }
    std::fs::read_to_string(dir.join("zarr.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .is_some_and(|m| m.get("node_type").and_then(Value::as_str) == Some("group"))
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
        let path = path.as_ref();
        is_group(path) && node_attributes(path).is_some_and(|a| attrs::has_cellmap(&a))
    }

    /// Opens the crop group at `path`: reads its `cellmap.annotation` and that of every class it
    /// lists. Sub-groups that `class_names` does not list are ignored (as cellmap-schemas does).
    ///
    /// Errors: [`StorageError::NotFound`]; [`CropError::CropAttribute`] for missing or malformed
    /// crop attributes; [`CropError::MissingClassGroup`] for a listed class without a sub-group;
    /// [`CropError::ClassAttribute`] for missing or malformed class attributes.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref().to_path_buf();
        let name = path.display().to_string();
        if !path.exists() {
            return Err(StorageError::NotFound { path: name }.into());
        }
        let attributes = node_attributes(&path).unwrap_or_default();
        let crop = attrs::crop_attributes(&name, &attributes)?;
        let classes = crop
            .class_names
            .iter()
            .map(|class| {
                let dir = path.join(class);
                if !dir.is_dir() {
                    return Err(CropError::MissingClassGroup {
                        path: name.clone(),
                        class: class.clone(),
                        message: format!("no directory {}", dir.display()),
                    });
                }
                let group_attrs = node_attributes(&dir).unwrap_or_default();
                let annotation =
                    attrs::class_annotation(&dir.display().to_string(), class, &group_attrs)?;
                Ok(ClassGroup {
                    annotation,
                    scales: multiscale_paths(&group_attrs),
                    path: dir,
                })
            })
            .collect::<Result<Vec<_>, CropError>>()?;
        Ok(Self {
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
        LabelVolume::open(group.array_path(scale)?)
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
