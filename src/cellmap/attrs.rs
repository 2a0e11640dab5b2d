//! The `cellmap.annotation` attributes of a crop group and of its class groups (SPEC 1.4;
//! cellmap-schemas `CropGroupAttrs`, `AnnotationGroupAttrs`, `AnnotationArrayAttrs`, 0.1.x).
//!
//! ```text
//! crop.zarr/.zattrs        {"cellmap": {"annotation": {"version": "0.1.1", "class_names": ["mito_mem", ...], ...}}}
//! crop.zarr/mito_mem/.zattrs {"cellmap": {"annotation": {"class_name": "mito_mem",
//!                              "annotation_type": {"type": "semantic_segmentation",
//!                                                  "encoding": {"absent": 0, "present": 1, "unknown": 255}}}},
//!                             "multiscales": [...]}
//! crop.zarr/mito_mem/s0/.zattrs {"cellmap": {"annotation": {..., "complement_counts": {"absent": 812, "unknown": 40}}}}
//! ```
//!
//! Codes are integers compared, like labels, as unsigned 64-bit bit patterns: a negative code
//! (for a signed array) is sign-extended, so `-1` is 2^64-1.
//!
//! ```
//! use annomask::cellmap::attrs::{class_annotation, crop_attributes, AnnotationKind};
//! let crop = serde_json::json!({"cellmap": {"annotation": {"version": "0.1.1",
//!     "class_names": ["mito_mem", "mito"]}}});
//! let crop = crop_attributes("crop.zarr", crop.as_object().unwrap())?;
//! assert_eq!(crop.class_names, ["mito_mem", "mito"]);
//! let class = serde_json::json!({"cellmap": {"annotation": {"class_name": "mito",
//!     "annotation_type": {"type": "instance_segmentation", "encoding": {"absent": 0, "unknown": -1}}}}});
//! let mito = class_annotation("crop.zarr/mito", "mito", class.as_object().unwrap())?;
//! assert_eq!(mito.kind, AnnotationKind::Instance);
//! assert_eq!(mito.encoding.unknown, Some(u64::MAX));
//! assert_eq!(mito.encoding.to_string(), "{absent: 0, unknown: 18446744073709551615}");
//! # Ok::<(), annomask::CropError>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use crate::error::CropError;

/// How a class array encodes its annotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AnnotationKind {
    /// `semantic_segmentation`: `present` marks the class, `absent` its absence.
    Semantic,
    /// `instance_segmentation`: every value that is not a code is an instance id of the class.
    Instance,
}

impl AnnotationKind {
    /// The name in the metadata: `semantic_segmentation` or `instance_segmentation`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Semantic => "semantic_segmentation",
            Self::Instance => "instance_segmentation",
        }
    }

    /// `semantic` or `instance`.
    pub fn short_name(self) -> &'static str {
        match self {
            Self::Semantic => "semantic",
            Self::Instance => "instance",
        }
    }
}

impl fmt::Display for AnnotationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short_name())
    }
}

/// The codes of a class array: which values mean `absent`, `present` and `unknown`. Each is
/// optional; codes are distinct.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Encoding {
    /// The value of a voxel known not to hold the class.
    pub absent: Option<u64>,
    /// The value of a voxel known to hold the class (semantic classes).
    pub present: Option<u64>,
    /// The value of a voxel whose class is not known: never trained.
    pub unknown: Option<u64>,
}

impl Encoding {
    /// The codes that are set, as `(key, value)`, in the order absent, present, unknown.
    pub fn codes(&self) -> impl Iterator<Item = (&'static str, u64)> {
        [
            ("absent", self.absent),
            ("present", self.present),
            ("unknown", self.unknown),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let codes: Vec<String> = self.codes().map(|(k, v)| format!("{k}: {v}")).collect();
        write!(f, "{{{}}}", codes.join(", "))
    }
}

/// The annotation of one class group: `cellmap.annotation` of the class sub-group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassAnnotation {
    /// `class_name`; equal to the sub-group's name.
    pub class_name: String,
    /// `annotation_type.type`.
    pub kind: AnnotationKind,
    /// `annotation_type.encoding`.
    pub encoding: Encoding,
    /// `complement_counts` (voxels per `absent` / `unknown` code), where the group gives it.
    pub complement_counts: Option<BTreeMap<String, u64>>,
}

impl ClassAnnotation {
    /// An annotation without complement counts.
    ///
    /// ```
    /// use annomask::cellmap::attrs::{AnnotationKind, ClassAnnotation, Encoding};
    /// let a = ClassAnnotation::new("mito", AnnotationKind::Instance, Encoding::default());
    /// assert_eq!(a.class_name, "mito");
    /// ```
    pub fn new(class_name: impl Into<String>, kind: AnnotationKind, encoding: Encoding) -> Self {
        Self {
            class_name: class_name.into(),
            kind,
            encoding,
            complement_counts: None,
        }
    }
}

/// The crop group's own `cellmap.annotation`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CropAttributes {
    /// `version`, where given (cellmap-schemas writes `0.1.0` or `0.1.1`).
    pub version: Option<String>,
    /// `class_names`: the classes annotated in this crop, each a sub-group.
    pub class_names: Vec<String>,
}

/// The dotted path of the crop metadata.
pub const ANNOTATION: &str = "cellmap.annotation";

/// Whether `attrs` hold a `cellmap` key (the mark of a crop group or class group).
pub fn has_cellmap(attrs: &Map<String, Value>) -> bool {
    attrs.contains_key("cellmap")
}

/// The `cellmap.annotation` object of `attrs`, or the name and problem of the first missing or
/// non-object level.
fn annotation(attrs: &Map<String, Value>) -> Result<&Map<String, Value>, (String, String)> {
    let mut at: &Map<String, Value> = attrs;
    let mut path = String::new();
    for key in ["cellmap", "annotation"] {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
        at = match at.get(key) {
            None => return Err((path, "missing".into())),
            Some(Value::Object(o)) => o,
            Some(other) => return Err((path, format!("expected an object, found {other}"))),
        };
    }
    Ok(at)
}

/// The crop group's `cellmap.annotation`: `class_names` (required, distinct non-empty strings)
/// and `version`. `path` names the crop in errors.
pub fn crop_attributes(
    path: &str,
    attrs: &Map<String, Value>,
) -> Result<CropAttributes, CropError> {
    let fail = |attribute: String, problem: String| CropError::CropAttribute {
        path: path.to_string(),
        attribute,
        problem,
    };
    let ann = annotation(attrs).map_err(|(a, p)| {
        fail(
            a,
            format!("{p}; a CellMap crop group holds {ANNOTATION}.class_names"),
        )
    })?;
    let key = format!("{ANNOTATION}.class_names");
    let list = match ann.get("class_names") {
        None => {
            let hint = match ann.get("class_name").and_then(Value::as_str) {
                Some(class) => format!(
                    " (this looks like the group of class {class:?}: open its parent, the crop group)"
                ),
                None => String::new(),
            };
            return Err(fail(key, format!("missing{hint}")));
        }
        Some(Value::Array(list)) => list,
        Some(other) => {
            return Err(fail(
                key,
                format!("expected a list of class names, found {other}"),
            ));
        }
    };
    let mut class_names: Vec<String> = Vec::with_capacity(list.len());
    for (i, v) in list.iter().enumerate() {
        let name = v
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| fail(format!("{key}[{i}]"), format!("{v} is not a class name")))?;
        if name.contains(['/', '\\']) || name == "." || name == ".." {
            return Err(fail(
                format!("{key}[{i}]"),
                format!("{name:?} is not the name of a sub-group"),
            ));
        }
        if let Some(first) = class_names.iter().position(|c| c == name) {
            return Err(fail(
                format!("{key}[{i}]"),
                format!("{name:?} is listed twice (also at [{first}])"),
            ));
        }
        class_names.push(name.to_string());
    }
    let version = match ann.get("version") {
        None => None,
        Some(Value::String(v)) => Some(v.clone()),
        Some(other) => {
            return Err(fail(
                format!("{ANNOTATION}.version"),
                format!("expected a string, found {other}"),
            ));
        }
    };
    Ok(CropAttributes {
        version,
        class_names,
    })
}

/// A code: an integer, negative ones taken as their 64-bit two's complement.
fn code(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_i64().map(|i| i as u64))
}

/// The `cellmap.annotation` of the class group of `class` at `path`: `class_name` (must equal
/// `class`), `annotation_type` and, where given, `complement_counts`.
pub fn class_annotation(
    path: &str,
    class: &str,
    attrs: &Map<String, Value>,
) -> Result<ClassAnnotation, CropError> {
    let fail = |attribute: &str, problem: String| CropError::ClassAttribute {
        path: path.to_string(),
        class: class.to_string(),
        attribute: attribute.to_string(),
        problem,
    };
    let ann = annotation(attrs).map_err(|(a, p)| fail(&a, p))?;
    let at = |key: &str| format!("{ANNOTATION}.{key}");
    match ann.get("class_name") {
        Some(Value::String(name)) if name == class => {}
        Some(Value::String(name)) => {
            return Err(fail(
                &at("class_name"),
                format!("is {name:?}, but the crop lists this group as {class:?}"),
            ));
        }
        Some(other) => return Err(fail(&at("class_name"), format!("{other} is not a string"))),
        None => return Err(fail(&at("class_name"), "missing".into())),
    }
    let ty_key = at("annotation_type");
    let ty = match ann.get("annotation_type") {
        Some(Value::Object(o)) => o,
        Some(other) => return Err(fail(&ty_key, format!("expected an object, found {other}"))),
        None => return Err(fail(&ty_key, "missing".into())),
    };
    let kind = match ty.get("type") {
        Some(Value::String(s)) if s == "semantic_segmentation" => AnnotationKind::Semantic,
        Some(Value::String(s)) if s == "instance_segmentation" => AnnotationKind::Instance,
        Some(other) => {
            return Err(fail(
                &format!("{ty_key}.type"),
                format!("{other} is not \"semantic_segmentation\" or \"instance_segmentation\""),
            ));
        }
        None => return Err(fail(&format!("{ty_key}.type"), "missing".into())),
    };
    let enc_key = format!("{ty_key}.encoding");
    let enc = match ty.get("encoding") {
        Some(Value::Object(o)) => o,
        Some(other) => return Err(fail(&enc_key, format!("expected an object, found {other}"))),
        None => return Err(fail(&enc_key, "missing".into())),
    };
    let mut encoding = Encoding::default();
    for (key, v) in enc {
        let slot = match key.as_str() {
            "absent" => &mut encoding.absent,
            "present" => &mut encoding.present,
            "unknown" => &mut encoding.unknown,
            _ => {
                return Err(fail(
                    &format!("{enc_key}.{key}"),
                    "unknown key (expected absent, present or unknown)".into(),
                ));
            }
        };
        *slot = Some(code(v).ok_or_else(|| {
            fail(
                &format!("{enc_key}.{key}"),
                format!("{v} is not an integer code"),
            )
        })?);
    }
    let codes: Vec<(&str, u64)> = encoding.codes().collect();
    for (i, (a, x)) in codes.iter().enumerate() {
        if let Some((b, _)) = codes[i + 1..].iter().find(|(_, y)| y == x) {
            return Err(fail(
                &enc_key,
                format!("{a} and {b} share the code {x}: each code must mean one thing"),
            ));
        }
    }
    Ok(ClassAnnotation {
        class_name: class.to_string(),
        kind,
        encoding,
        complement_counts: complement_counts(path, class, ann)?,
    })
}

/// `complement_counts` of a `cellmap.annotation` object, where given: counts of voxels per
/// code key (`absent`, `present` or `unknown`).
fn complement_counts(
    path: &str,
    class: &str,
    ann: &Map<String, Value>,
) -> Result<Option<BTreeMap<String, u64>>, CropError> {
    let key = format!("{ANNOTATION}.complement_counts");
    let fail = |attribute: String, problem: String| CropError::ClassAttribute {
        path: path.to_string(),
        class: class.to_string(),
        attribute,
        problem,
    };
    let counts = match ann.get("complement_counts") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(o)) => o,
        Some(other) => return Err(fail(key, format!("expected an object, found {other}"))),
    };
    counts
        .iter()
        .map(|(k, v)| {
            if !matches!(k.as_str(), "absent" | "present" | "unknown") {
                return Err(fail(
                    format!("{key}.{k}"),
                    "unknown key (expected absent, present or unknown)".into(),
                ));
            }
            let n = v
                .as_u64()
                .ok_or_else(|| fail(format!("{key}.{k}"), format!("{v} is not a voxel count")))?;
            Ok((k.clone(), n))
        })
        .collect::<Result<BTreeMap<_, _>, _>>()
        .map(Some)
}

/// `complement_counts` from the attributes of a class array (cellmap-schemas keeps them per
/// scale, on the array), where given. Attributes without `cellmap.annotation` give `None`.
pub fn array_complement_counts(
    path: &str,
    class: &str,
    attrs: &Map<String, Value>,
) -> Result<Option<BTreeMap<String, u64>>, CropError> {
    match annotation(attrs) {
        Ok(ann) => complement_counts(path, class, ann),
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn class_attrs(ty: &str, encoding: Value) -> Map<String, Value> {
        obj(json!({"cellmap": {"annotation": {"class_name": "mito",
            "annotation_type": {"type": ty, "encoding": encoding}}}}))
    }

    #[test]
    fn crop_attribute_errors_name_the_attribute() {
        let cases = [
            (json!({}), "`cellmap`: missing"),
            (json!({"cellmap": 3}), "`cellmap`: expected an object"),
            (json!({"cellmap": {}}), "`cellmap.annotation`: missing"),
            (
                json!({"cellmap": {"annotation": {}}}),
                "`cellmap.annotation.class_names`: missing",
            ),
            (
                json!({"cellmap": {"annotation": {"class_names": "mito"}}}),
                "expected a list of class names",
            ),
            (
                json!({"cellmap": {"annotation": {"class_names": ["a", 3]}}}),
                "`cellmap.annotation.class_names[1]`: 3 is not a class name",
            ),
            (
                json!({"cellmap": {"annotation": {"class_name": "mito"}}}),
                "looks like the group of class \"mito\"",
            ),
            (
                json!({"cellmap": {"annotation": {"class_names": ["../x"]}}}),
                "\"../x\" is not the name of a sub-group",
            ),
            (
                json!({"cellmap": {"annotation": {"class_names": ["a", "a"]}}}),
                "\"a\" is listed twice (also at [0])",
            ),
            (
                json!({"cellmap": {"annotation": {"class_names": [], "version": 1}}}),
                "`cellmap.annotation.version`: expected a string",
            ),
        ];
        for (attrs, want) in cases {
            let err = crop_attributes("c.zarr", &obj(attrs.clone())).unwrap_err();
            let msg = err.to_string();
            assert!(
                matches!(err, CropError::CropAttribute { .. })
                    && msg.starts_with("c.zarr: ")
                    && msg.contains(want),
                "{attrs}: {msg}"
            );
        }
    }

    #[test]
    fn class_attribute_errors_name_class_and_attribute() {
        let t = "cellmap.annotation.annotation_type";
        let cases = [
            (
                obj(json!({"cellmap": {}})),
                "`cellmap.annotation`: missing".to_string(),
            ),
            (
                obj(json!({"cellmap": {"annotation": {"class_name": "er"}}})),
                "is \"er\", but the crop lists this group as \"mito\"".into(),
            ),
            (
                obj(json!({"cellmap": {"annotation": {"class_name": "mito"}}})),
                format!("`{t}`: missing"),
            ),
            (
                class_attrs("labels", json!({})),
                format!("`{t}.type`: \"labels\" is not"),
            ),
            (
                class_attrs("semantic_segmentation", json!({"present": 1.5})),
                format!("`{t}.encoding.present`: 1.5 is not an integer code"),
            ),
            (
                class_attrs("semantic_segmentation", json!({"maybe": 3})),
                format!("`{t}.encoding.maybe`: unknown key"),
            ),
            (
                class_attrs("semantic_segmentation", json!({"absent": 0, "unknown": 0})),
                "absent and unknown share the code 0".into(),
            ),
        ];
        for (attrs, want) in cases {
            let err = class_annotation("c.zarr/mito", "mito", &attrs).unwrap_err();
            let msg = err.to_string();
            assert!(
                matches!(err, CropError::ClassAttribute { .. })
                    && msg.starts_with("c.zarr/mito: class \"mito\": ")
                    && msg.contains(&want),
                "{msg} does not contain {want}"
            );
        }
    }

    #[test]
    fn encodings_with_and_without_codes() {
        let a = class_annotation(
            "p",
            "mito",
            &class_attrs(
                "semantic_segmentation",
                json!({"absent": 0, "present": 1, "unknown": 255}),
            ),
        )
        .unwrap();
        assert_eq!(a.kind, AnnotationKind::Semantic);
        assert_eq!(
            a.encoding,
            Encoding {
                absent: Some(0),
                present: Some(1),
                unknown: Some(255)
            }
        );
        let b = class_annotation(
            "p",
            "mito",
            &class_attrs("instance_segmentation", json!({})),
        )
        .unwrap();
        assert_eq!(b.encoding, Encoding::default());
        assert_eq!(b.encoding.to_string(), "{}");
    }

    #[test]
    fn complement_counts_on_group_or_array() {
        let mut attrs = class_attrs("semantic_segmentation", json!({"absent": 0}));
        attrs["cellmap"]["annotation"]["complement_counts"] = json!({"absent": 10, "unknown": 2});
        let a = class_annotation("p", "mito", &attrs).unwrap();
        assert_eq!(
            a.complement_counts.unwrap().into_iter().collect::<Vec<_>>(),
            [("absent".to_string(), 10), ("unknown".to_string(), 2)]
        );
        let array = obj(json!({"cellmap": {"annotation": {"complement_counts": {"absent": -1}}}}));
        let err = array_complement_counts("p/s0", "mito", &array).unwrap_err();
        assert!(err.to_string().contains("-1 is not a voxel count"), "{err}");
        assert_eq!(
            array_complement_counts("p/s0", "mito", &Map::new()),
            Ok(None)
        );
    }
}
