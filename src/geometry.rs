//! World-unit geometry: [`Coordinate`], [`Roi`], and a label array's [`Geometry`]
//! (voxel size, offset, axis names, units), read from OME-NGFF or funlib attributes (SPEC 3).
//!
//! Coordinates are `f64` because OME-NGFF stores scales and translations as floats (voxel sizes
//! such as 5.24 nm exist). Alignment checks allow a relative error of 1e-6 of a voxel.

use std::fmt;

use serde_json::{Map, Value};

use thiserror::Error;

/// Relative tolerance, in voxels, of the alignment checks.
const ALIGN_TOLERANCE: f64 = 1e-6;

/// A point or extent in world units, one value per spatial axis.
///
/// ```
/// use annomask::Coordinate;
/// let c = Coordinate::new([8.0, 8.0, 8.0]);
/// assert_eq!(c.to_string(), "(8, 8, 8)");
/// assert_eq!(c.dims(), 3);
/// ```
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Coordinate(Vec<f64>);

impl Coordinate {
    /// A coordinate from its values.
    pub fn new(values: impl Into<Vec<f64>>) -> Self {
        Self(values.into())
    }

    /// A coordinate with every value equal to `value`.
    pub fn splat(value: f64, dims: usize) -> Self {
        Self(vec![value; dims])
    }

    /// Number of axes.
    pub fn dims(&self) -> usize {
        self.0.len()
    }

    /// The values.
    pub fn as_slice(&self) -> &[f64] {
        &self.0
    }

    fn zip_with(&self, other: &Coordinate, f: impl Fn(f64, f64) -> f64) -> Coordinate {
        debug_assert_eq!(self.dims(), other.dims());
        Coordinate(
            self.0
                .iter()
                .zip(&other.0)
                .map(|(&a, &b)| f(a, b))
                .collect(),
        )
    }

    /// Element-wise sum.
    pub fn add(&self, other: &Coordinate) -> Coordinate {
        self.zip_with(other, |a, b| a + b)
    }

    /// Element-wise difference.
    pub fn sub(&self, other: &Coordinate) -> Coordinate {
        self.zip_with(other, |a, b| a - b)
    }

    /// Element-wise product.
    pub fn mul(&self, other: &Coordinate) -> Coordinate {
        self.zip_with(other, |a, b| a * b)
    }

    /// This extent in whole voxels of `voxel_size`, or `None` if some axis is not a whole number
    /// of voxels (within 1e-6 of a voxel).
    pub fn in_voxels(&self, voxel_size: &Coordinate) -> Option<Vec<i64>> {
        if self.dims() != voxel_size.dims() {
            return None;
        }
        self.0
            .iter()
            .zip(&voxel_size.0)
            .map(|(&x, &v)| {
                let k = x / v;
                let r = k.round();
                ((k - r).abs() <= ALIGN_TOLERANCE && r.is_finite()).then_some(r as i64)
            })
            .collect()
    }
}

impl From<Vec<f64>> for Coordinate {
    fn from(v: Vec<f64>) -> Self {
        Self(v)
    }
}

impl<const N: usize> From<[f64; N]> for Coordinate {
    fn from(v: [f64; N]) -> Self {
        Self(v.to_vec())
    }
}

impl fmt::Display for Coordinate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(")?;
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{v}")?;
        }
        write!(f, ")")
    }
}

/// A box in world units: `offset` (begin) and `shape` (extent), like funlib's `Roi`.
///
/// ```
/// use annomask::Roi;
/// let roi = Roi::new([0.0, 16.0], [32.0, 32.0]);
/// assert_eq!(roi.end().as_slice(), &[32.0, 48.0]);
/// assert_eq!(roi.to_string(), "[0:32, 16:48] (32, 32)");
/// assert!(roi.contains(&Roi::new([8.0, 16.0], [8.0, 8.0])));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Roi {
    offset: Coordinate,
    shape: Coordinate,
}

impl Roi {
    /// A ROI from its begin and its extent, in world units.
    pub fn new(offset: impl Into<Coordinate>, shape: impl Into<Coordinate>) -> Self {
        Self {
            offset: offset.into(),
            shape: shape.into(),
        }
    }

    /// The begin corner.
    pub fn offset(&self) -> &Coordinate {
        &self.offset
    }

    /// The begin corner (funlib's name).
    pub fn begin(&self) -> &Coordinate {
        &self.offset
    }

    /// The extent.
    pub fn shape(&self) -> &Coordinate {
        &self.shape
    }

    /// The end corner (exclusive).
    pub fn end(&self) -> Coordinate {
        self.offset.add(&self.shape)
    }

    /// Number of axes.
    pub fn dims(&self) -> usize {
        self.offset.dims()
    }

    /// Whether `other` has the same number of axes and lies inside this ROI (borders compared with
    /// a relative tolerance of 1e-9, so float round-off does not reject an exact fit).
    pub fn contains(&self, other: &Roi) -> bool {
        if other.dims() != self.dims() || self.shape.dims() != self.dims() {
            return false;
        }
        let (b, e, ob, oe) = (self.begin(), self.end(), other.begin(), other.end());
        (0..self.dims()).all(|d| {
            let eps = 1e-9 * (1.0 + e.0[d].abs().max(b.0[d].abs()));
            ob.0[d] >= b.0[d] - eps && oe.0[d] <= e.0[d] + eps && other.shape.0[d] >= 0.0
        })
    }
}

impl std::str::FromStr for Roi {
    type Err = String;

    /// A ROI as `begin:end` in world units, one comma-separated value per axis, e.g.
    /// `0,0,0:512,512,512` (the command line's `--roi`).
    ///
    /// ```
    /// use annomask::Roi;
    /// let roi: Roi = "0,8,16:64,72,80".parse()?;
    /// assert_eq!(roi, Roi::new([0.0, 8.0, 16.0], [64.0, 64.0, 64.0]));
    /// assert!("0,0:8".parse::<Roi>().is_err());
    /// # Ok::<(), String>(())
    /// ```
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!(
                "invalid ROI {s:?}: {why} (expected begin:end in world units, one value per axis, e.g. 0,0,0:512,512,512)"
            )
        };
        let (begin, end) = s.split_once(':').ok_or_else(|| bad("no ':'"))?;
        let parse = |part: &str| -> Result<Vec<f64>, String> {
            part.split(',')
                .map(|v| {
                    v.trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|x| x.is_finite())
                        .ok_or_else(|| bad(&format!("{v:?} is not a number")))
                })
                .collect()
        };
        let (begin, end) = (parse(begin)?, parse(end)?);
        if begin.len() != end.len() {
            return Err(bad("begin and end have different numbers of axes"));
        }
        if begin.iter().zip(&end).any(|(b, e)| e < b) {
            return Err(bad("end is before begin"));
        }
        let shape: Vec<f64> = begin.iter().zip(&end).map(|(b, e)| e - b).collect();
        Ok(Roi::new(begin, shape))
    }
}

impl fmt::Display for Roi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = self.end();
        write!(f, "[")?;
        for d in 0..self.dims() {
            if d > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{}:{}", self.offset.0[d], end.0[d])?;
        }
        write!(f, "] {}", self.shape)
    }
}

/// A region of the array in voxels: start index and shape, per axis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoxelRegion {
    /// First voxel, per axis.
    pub start: Vec<u64>,
    /// Number of voxels, per axis.
    pub shape: Vec<u64>,
}

impl VoxelRegion {
    /// Number of voxels in the region.
    pub fn num_voxels(&self) -> u64 {
        self.shape.iter().product()
    }
}

/// Where a label array sits in the world: its shape in voxels, voxel size, offset, axis names and
/// units. Read once when the array is opened.
#[derive(Clone, Debug, PartialEq)]
pub struct Geometry {
    /// Shape in voxels.
    pub shape: Vec<u64>,
    /// Size of one voxel in world units, per axis.
    pub voxel_size: Coordinate,
    /// World position of the first voxel's corner.
    pub offset: Coordinate,
    /// Axis names, e.g. `["z", "y", "x"]`.
    pub axis_names: Vec<String>,
    /// Units per axis (e.g. `nm`), empty strings where unknown.
    pub units: Vec<String>,
    /// Where voxel size and offset came from: `ome-ngff`, `funlib` or `default`.
    pub source: &'static str,
}

/// Default axis names: `y, x` (2-D), `z, y, x` (3-D); further leading axes are named `d0`, `d1`.
pub fn default_axis_names(dims: usize) -> Vec<String> {
    const TAIL: [&str; 3] = ["z", "y", "x"];
    let tail = dims.min(3);
    (0..dims - tail)
        .map(|i| format!("d{i}"))
        .chain(TAIL[3 - tail..].iter().map(|s| s.to_string()))
        .collect()
}

impl Geometry {
    /// Voxel size 1, offset 0, default axis names.
    pub fn default_for_shape(shape: &[u64]) -> Self {
        let n = shape.len();
        Self {
            shape: shape.to_vec(),
            voxel_size: Coordinate::splat(1.0, n),
            offset: Coordinate::splat(0.0, n),
            axis_names: default_axis_names(n),
            units: vec![String::new(); n],
            source: "default",
        }
    }

    /// Geometry of an array of `shape`, from (first found wins) OME-NGFF 0.4/0.5 `multiscales`
    /// in `parent_attrs` naming `dataset_path`, then funlib/DaCapo attributes (`voxel_size` or
    /// `resolution`, `offset`, `axis_names`, `units`) in `array_attrs`, else voxel size 1 and
    /// offset 0. `path` names the array in errors.
    ///
    /// ```
    /// use annomask::Geometry;
    /// let attrs = serde_json::json!({"resolution": [4, 4, 40], "offset": [0, 0, 400]});
    /// let g = Geometry::from_attributes("crop/labels", &[10, 10, 10],
    ///     attrs.as_object().unwrap(), None, "labels").unwrap();
    /// assert_eq!(g.voxel_size.as_slice(), &[4.0, 4.0, 40.0]);
    /// assert_eq!(g.roi().to_string(), "[0:40, 0:40, 400:800] (40, 40, 400)");
    /// ```
    pub fn from_attributes(
        path: &str,
        shape: &[u64],
        array_attrs: &Map<String, Value>,
        parent_attrs: Option<&Map<String, Value>>,
        dataset_path: &str,
    ) -> Result<Self, GeometryError> {
        if let Some(parent) = parent_attrs
            && let Some(g) = ome_ngff(path, shape, parent, dataset_path)?
        {
            return Ok(g);
        }
        funlib(path, shape, array_attrs)
    }

    /// Number of spatial axes.
    pub fn dims(&self) -> usize {
        self.shape.len()
    }

    /// The array's ROI: `(offset, shape * voxel_size)`.
    pub fn roi(&self) -> Roi {
        let extent: Vec<f64> = self.shape.iter().map(|&s| s as f64).collect();
        Roi::new(
            self.offset.clone(),
            Coordinate(extent).mul(&self.voxel_size),
        )
    }

    /// The voxels covered by a world ROI, which must be voxel-aligned and inside the array's ROI.
    pub fn voxel_region(&self, path: &str, roi: &Roi) -> Result<VoxelRegion, GeometryError> {
        let fail = |problem: &str| GeometryError::Roi {
            path: path.to_string(),
            requested: Box::new(roi.clone()),
            available: Box::new(self.roi()),
            voxel_size: self.voxel_size.to_string(),
            problem: problem.to_string(),
        };
        if roi.dims() != self.dims() || roi.shape().dims() != self.dims() {
            return Err(fail(&format!(
                "has {} axes, the array has {}",
                roi.dims(),
                self.dims()
            )));
        }
        if roi
            .shape()
            .as_slice()
            .iter()
            .any(|&s| s.is_nan() || s < 0.0)
        {
            return Err(fail("has a negative or NaN extent"));
        }
        let start = roi
            .offset()
            .sub(&self.offset)
            .in_voxels(&self.voxel_size)
            .ok_or_else(|| fail("is not voxel-aligned (its begin is not on the voxel grid)"))?;
        let shape = roi.shape().in_voxels(&self.voxel_size).ok_or_else(|| {
            fail("is not voxel-aligned (its shape is not a whole number of voxels)")
        })?;
        let inside = start
            .iter()
            .zip(&shape)
            .zip(&self.shape)
            .all(|((&b, &s), &n)| b >= 0 && s >= 0 && (b + s) as u64 <= n);
        if !inside {
            return Err(fail("is not inside the array"));
        }
        Ok(VoxelRegion {
            start: start.into_iter().map(|v| v as u64).collect(),
            shape: shape.into_iter().map(|v| v as u64).collect(),
        })
    }
}

fn attr_err(path: &str, attribute: &str, problem: impl Into<String>) -> GeometryError {
    GeometryError::Attribute {
        path: path.to_string(),
        attribute: attribute.to_string(),
        problem: problem.into(),
    }
}

/// A JSON list of `dims` items of `kind`, each converted by `item` (which says what is wrong).
fn list_of<T>(
    path: &str,
    attribute: &str,
    value: &Value,
    dims: usize,
    kind: &str,
    item: impl Fn(&Value) -> Result<T, String>,
) -> Result<Vec<T>, GeometryError> {
    let list = value.as_array().ok_or_else(|| {
        attr_err(
            path,
            attribute,
            format!("expected a list of {kind}, found {value}"),
        )
    })?;
    if list.len() != dims {
        return Err(attr_err(
            path,
            attribute,
            format!("has {} values, the array has {dims} axes", list.len()),
        ));
    }
    list.iter()
        .map(|v| item(v).map_err(|problem| attr_err(path, attribute, problem)))
        .collect()
}

/// A list of numbers of length `dims`, positive if `positive`.
fn numbers(
    path: &str,
    attribute: &str,
    value: &Value,
    dims: usize,
    positive: bool,
) -> Result<Vec<f64>, GeometryError> {
    list_of(path, attribute, value, dims, "numbers", |v| {
        let x = v
            .as_f64()
            .filter(|x| x.is_finite())
            .ok_or_else(|| format!("{v} is not a number"))?;
        if positive && x <= 0.0 {
            return Err(format!("{x} is not positive"));
        }
        Ok(x)
    })
}

/// A list of strings of length `dims`.
fn strings(
    path: &str,
    attribute: &str,
    value: &Value,
    dims: usize,
) -> Result<Vec<String>, GeometryError> {
    list_of(path, attribute, value, dims, "strings", |v| {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("{v} is not a string"))
    })
}

fn funlib(
    path: &str,
    shape: &[u64],
    attrs: &Map<String, Value>,
) -> Result<Geometry, GeometryError> {
    let dims = shape.len();
    let mut g = Geometry::default_for_shape(shape);
    let voxel_key = ["voxel_size", "resolution"]
        .into_iter()
        .find(|k| attrs.contains_key(*k));
    if let Some(key) = voxel_key {
        g.voxel_size = Coordinate(numbers(path, key, &attrs[key], dims, true)?);
        g.source = "funlib";
    }
    if let Some(v) = attrs.get("offset") {
        g.offset = Coordinate(numbers(path, "offset", v, dims, false)?);
        g.source = "funlib";
    }
    if let Some(v) = attrs.get("axis_names") {
        g.axis_names = strings(path, "axis_names", v, dims)?;
    }
    if let Some(v) = attrs.get("units") {
        g.units = strings(path, "units", v, dims)?;
    }
    Ok(g)
}

/// Optional scale and translation of a list of transformations.
type ScaleTranslation = (Option<Vec<f64>>, Option<Vec<f64>>);

/// Scale and translation from a list of OME-NGFF coordinate transformations.
fn transformations(
    path: &str,
    attribute: &str,
    value: &Value,
    dims: usize,
) -> Result<ScaleTranslation, GeometryError> {
    let list = value
        .as_array()
        .ok_or_else(|| attr_err(path, attribute, "expected a list of transformations"))?;
    let (mut scale, mut translation) = (None, None);
    for (i, t) in list.iter().enumerate() {
        let at = format!("{attribute}[{i}]");
        match t.get("type").and_then(Value::as_str) {
            Some("scale") => {
                let v = t
                    .get("scale")
                    .ok_or_else(|| attr_err(path, &at, "no `scale` list"))?;
                scale = Some(numbers(path, &format!("{at}.scale"), v, dims, true)?);
            }
            Some("translation") => {
                let v = t
                    .get("translation")
                    .ok_or_else(|| attr_err(path, &at, "no `translation` list"))?;
                translation = Some(numbers(path, &format!("{at}.translation"), v, dims, false)?);
            }
            Some("identity") => {}
            other => {
                return Err(attr_err(
                    path,
                    &at,
                    format!(
                        "unsupported transformation type {other:?} (expected scale, translation or identity)"
                    ),
                ));
            }
        }
    }
    Ok((scale, translation))
}

fn ome_ngff(
    path: &str,
    shape: &[u64],
    parent: &Map<String, Value>,
    dataset_path: &str,
) -> Result<Option<Geometry>, GeometryError> {
    let dims = shape.len();
    // 0.5 nests the metadata under `ome`; 0.4 has `multiscales` at the top.
    let (multiscales, base) = match parent.get("ome").and_then(|o| o.get("multiscales")) {
        Some(m) => (m, "ome.multiscales"),
        None => match parent.get("multiscales") {
            Some(m) => (m, "multiscales"),
            None => return Ok(None),
        },
    };
    let list = multiscales
        .as_array()
        .ok_or_else(|| attr_err(path, base, "expected a list of multiscale images"))?;
    let trim = |p: &str| p.trim_matches('/').to_string();
    for (mi, ms) in list.iter().enumerate() {
        let Some(datasets) = ms.get("datasets").and_then(Value::as_array) else {
            continue;
        };
        let Some((di, ds)) = datasets.iter().enumerate().find(|(_, d)| {
            d.get("path").and_then(Value::as_str).map(trim) == Some(trim(dataset_path))
        }) else {
            continue;
        };
        let at = format!("{base}[{mi}].datasets[{di}].coordinateTransformations");
        let (scale, translation) = match ds.get("coordinateTransformations") {
            Some(v) => transformations(path, &at, v, dims)?,
            None => (None, None),
        };
        let mut voxel_size = scale.unwrap_or_else(|| vec![1.0; dims]);
        let mut offset = translation.unwrap_or_else(|| vec![0.0; dims]);
        if let Some(global) = ms.get("coordinateTransformations") {
            let gat = format!("{base}[{mi}].coordinateTransformations");
            let (gs, gt) = transformations(path, &gat, global, dims)?;
            if let Some(gs) = gs {
                for d in 0..dims {
                    voxel_size[d] *= gs[d];
                    offset[d] *= gs[d];
                }
            }
            if let Some(gt) = gt {
                for d in 0..dims {
                    offset[d] += gt[d];
                }
            }
        }
        let mut g = Geometry::default_for_shape(shape);
        g.voxel_size = Coordinate(voxel_size);
        g.offset = Coordinate(offset);
        g.source = "ome-ngff";
        if let Some(axes) = ms.get("axes").and_then(Value::as_array) {
            if axes.len() != dims {
                return Err(attr_err(
                    path,
                    &format!("{base}[{mi}].axes"),
                    format!("has {} axes, the array has {dims}", axes.len()),
                ));
            }
            for (d, a) in axes.iter().enumerate() {
                // 0.3 lists bare names; 0.4+ lists objects with name/type/unit.
                if let Some(name) = a.as_str().or_else(|| a.get("name").and_then(Value::as_str)) {
                    g.axis_names[d] = name.to_string();
                }
                if let Some(unit) = a.get("unit").and_then(Value::as_str) {
                    g.units[d] = unit.to_string();
                }
            }
        }
        return Ok(Some(g));
    }
    Ok(None)
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn default_axis_names_by_dims() {
        assert_eq!(default_axis_names(2), ["y", "x"]);
        assert_eq!(default_axis_names(3), ["z", "y", "x"]);
        assert_eq!(default_axis_names(5), ["d0", "d1", "z", "y", "x"]);
    }

    #[test]
    fn ome_ngff_04_wins_over_funlib() {
        let parent = obj(json!({"multiscales": [{
            "version": "0.4",
            "axes": [{"name": "z", "type": "space", "unit": "nanometer"},
                     {"name": "y", "type": "space", "unit": "nanometer"},
                     {"name": "x", "type": "space", "unit": "nanometer"}],
            "datasets": [
                {"path": "s0", "coordinateTransformations": [
                    {"type": "scale", "scale": [8.0, 8.0, 8.0]},
                    {"type": "translation", "translation": [100.0, 200.0, 300.0]}]},
                {"path": "s1", "coordinateTransformations": [
                    {"type": "scale", "scale": [16.0, 16.0, 16.0]},
                    {"type": "translation", "translation": [104.0, 204.0, 304.0]}]}]
        }]}));
        let array = obj(json!({"resolution": [1, 1, 1]}));
        let g = Geometry::from_attributes("c/s1", &[4, 4, 4], &array, Some(&parent), "s1").unwrap();
        assert_eq!(g.voxel_size.as_slice(), &[16.0; 3]);
        assert_eq!(g.offset.as_slice(), &[104.0, 204.0, 304.0]);
        assert_eq!(g.units, ["nanometer"; 3]);
        assert_eq!(g.source, "ome-ngff");
    }

    #[test]
    fn ome_ngff_05_and_global_transform() {
        let parent = obj(json!({"ome": {"version": "0.5", "multiscales": [{
            "axes": [{"name": "y"}, {"name": "x"}],
            "datasets": [{"path": "0", "coordinateTransformations": [
                {"type": "scale", "scale": [2.0, 3.0]}]}],
            "coordinateTransformations": [{"type": "scale", "scale": [2.0, 2.0]},
                                          {"type": "translation", "translation": [1.0, 1.0]}]
        }]}}));
        let g = Geometry::from_attributes("a/0", &[4, 4], &Map::new(), Some(&parent), "0").unwrap();
        assert_eq!(g.voxel_size.as_slice(), &[4.0, 6.0]);
        assert_eq!(g.offset.as_slice(), &[1.0, 1.0]);
    }

    #[test]
    fn ome_ngff_without_our_dataset_falls_back_to_funlib() {
        let parent = obj(json!({"multiscales": [{"datasets": [{"path": "s0"}]}]}));
        let array =
            obj(json!({"voxel_size": [2, 2], "axis_names": ["a", "b"], "units": ["nm", "nm"]}));
        let g = Geometry::from_attributes("x", &[3, 3], &array, Some(&parent), "labels").unwrap();
        assert_eq!(g.voxel_size.as_slice(), &[2.0, 2.0]);
        assert_eq!(g.axis_names, ["a", "b"]);
        assert_eq!(g.source, "funlib");
    }

    #[test]
    fn bad_attributes_name_the_attribute() {
        let cases = [
            json!({"voxel_size": [1, 1]}),
            json!({"voxel_size": [1, 0, 1]}),
            json!({"resolution": "4,4,4"}),
            json!({"offset": [0, "a", 0]}),
            json!({"axis_names": ["z", "y"]}),
        ];
        for attrs in cases {
            let err = Geometry::from_attributes("p", &[2, 2, 2], &obj(attrs.clone()), None, "p")
                .unwrap_err();
            let key = attrs.as_object().unwrap().keys().next().unwrap().clone();
            assert!(
                matches!(&err, GeometryError::Attribute { attribute, .. } if *attribute == key),
                "{attrs}: {err}"
            );
        }
        let parent = obj(json!({"multiscales": [{"datasets": [{"path": "s0",
            "coordinateTransformations": [{"type": "affine"}]}]}]}));
        let err =
            Geometry::from_attributes("p", &[2, 2], &Map::new(), Some(&parent), "s0").unwrap_err();
        assert!(
            err.to_string().contains("coordinateTransformations[0]"),
            "{err}"
        );
    }

    #[test]
    fn voxel_region_checks_alignment_and_bounds() {
        let array = obj(json!({"voxel_size": [4, 4], "offset": [8, 0]}));
        let g = Geometry::from_attributes("p", &[10, 10], &array, None, "p").unwrap();
        assert_eq!(g.roi(), Roi::new([8.0, 0.0], [40.0, 40.0]));
        let r = g
            .voxel_region("p", &Roi::new([12.0, 4.0], [8.0, 36.0]))
            .unwrap();
        assert_eq!(
            r,
            VoxelRegion {
                start: vec![1, 1],
                shape: vec![2, 9]
            }
        );
        let bad = [
            (Roi::new([10.0, 0.0], [8.0, 8.0]), "not voxel-aligned"),
            (Roi::new([8.0, 0.0], [6.0, 8.0]), "not voxel-aligned"),
            (Roi::new([0.0, 0.0], [8.0, 8.0]), "not inside"),
            (Roi::new([8.0, 0.0], [8.0, 44.0]), "not inside"),
            (Roi::new([8.0], [8.0]), "axes"),
            (Roi::new([8.0, 0.0], [-4.0, 4.0]), "negative"),
        ];
        for (roi, why) in bad {
            let err = g.voxel_region("p", &roi).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(why), "{roi}: {msg}");
            assert!(
                msg.contains(&roi.to_string()) && msg.contains("[8:48, 0:40]"),
                "{msg}"
            );
        }
    }
}
