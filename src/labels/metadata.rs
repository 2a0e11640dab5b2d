//! Annotation metadata: which label ids are present in a crop and whether they were annotated
//! (SPEC 1.2). Three entry formats are accepted, detected per entry:
//!
//! | format | `annotationState` |
//! | --- | --- |
//! | fibsem-tools legacy | `{"present": true, "annotated": false}` |
//! | fibsem-tools >= 6 / cellmap-schemas | `{"present": true, "annotated": "dense" \| "sparse" \| "empty"}` |
//! | Airtable export | `{"present": true, "annotated": false, "sparse": false}` |
//!
//! An id is **missing** when it is present and its annotation is `false`, `"empty"`, or sparse
//! (`"sparse"` or `sparse: true`) under [`SparsePolicy::Missing`] (the default).
//!
//! ```
//! use annomask::{LabelMetadata, SparsePolicy};
//! let attrs = serde_json::json!({"labels": [
//!     {"value": 3, "name": "mito", "annotationState": {"present": true, "annotated": false}},
//!     {"value": 4, "name": {"long": "er", "short": "er"},
//!      "annotationState": {"present": true, "annotated": "sparse"}},
//!     {"value": 5, "annotationState": {"present": true, "annotated": true, "sparse": false}},
//! ]});
//! let meta = LabelMetadata::from_attributes("crop/labels", attrs.as_object().unwrap(), false)?;
//! assert_eq!(meta.missing_ids(SparsePolicy::Missing).into_iter().collect::<Vec<_>>(), [3, 4]);
//! assert_eq!(meta.missing_ids(SparsePolicy::Annotated).into_iter().collect::<Vec<_>>(), [3]);
//! # Ok::<(), annomask::MetadataError>(())
//! ```

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use serde_json::{Map, Value};

use thiserror::Error;

/// Whether sparse annotations count as missing (the default) or as annotated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SparsePolicy {
    /// A sparsely annotated class is treated as not annotated: its channel is masked.
    #[default]
    Missing,
    /// A sparsely annotated class is treated as annotated.
    Annotated,
}

impl SparsePolicy {
    /// The name used on the command line and in output attributes.
    pub fn name(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Annotated => "annotated",
        }
    }
}

/// The `annotated` field of an annotation state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Annotated {
    /// `true` / `false` (fibsem-tools legacy, Airtable).
    Bool(bool),
    /// `"dense"`: fully annotated.
    Dense,
    /// `"sparse"`: partly annotated.
    Sparse,
    /// `"empty"`: not annotated.
    Empty,
}

impl fmt::Display for Annotated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bool(b) => write!(f, "{b}"),
            Self::Dense => write!(f, "\"dense\""),
            Self::Sparse => write!(f, "\"sparse\""),
            Self::Empty => write!(f, "\"empty\""),
        }
    }
}

/// The annotation state of one id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AnnotationState {
    /// Whether the class occurs in the crop.
    pub present: bool,
    /// Whether (and how) it was annotated.
    pub annotated: Annotated,
    /// The Airtable `sparse` flag, where given.
    pub sparse: Option<bool>,
}

/// Which of the three formats an entry is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryFormat {
    /// fibsem-tools legacy: `annotated` is a bool.
    FibsemBool,
    /// fibsem-tools >= 6 / cellmap-schemas: `annotated` is `"dense"`, `"sparse"` or `"empty"`.
    FibsemEnum,
    /// Airtable export: `present`, `annotated` and `sparse` bools.
    Airtable,
}

impl EntryFormat {
    /// A short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::FibsemBool => "fibsem-tools (bool)",
            Self::FibsemEnum => "fibsem-tools >= 6 (enum)",
            Self::Airtable => "airtable",
        }
    }
}

/// Why an id is missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MissingReason {
    /// `annotated: false`.
    NotAnnotated,
    /// `annotated: "empty"`.
    Empty,
    /// `annotated: "sparse"` or `sparse: true`, under [`SparsePolicy::Missing`].
    Sparse,
}

/// What the metadata says about one id, under a sparse policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IdStatus {
    /// Present but not annotated: channels holding it are masked.
    Missing(MissingReason),
    /// Present and annotated (densely, or sparsely under [`SparsePolicy::Annotated`]).
    Annotated,
    /// Not present in the crop: nothing to mask.
    NotPresent,
    /// The metadata does not mention the id: it is not missing.
    Unlisted,
}

impl IdStatus {
    /// Whether the id is missing.
    pub fn is_missing(self) -> bool {
        matches!(self, Self::Missing(_))
    }

    /// A one-line explanation for `inspect`.
    pub fn explain(self) -> &'static str {
        match self {
            Self::Missing(MissingReason::NotAnnotated) => "missing: present, annotated = false",
            Self::Missing(MissingReason::Empty) => "missing: present, annotated = \"empty\"",
            Self::Missing(MissingReason::Sparse) => {
                "missing: present, sparsely annotated (sparse policy = missing)"
            }
            Self::Annotated => "annotated",
            Self::NotPresent => "not present in the crop",
            Self::Unlisted => "not in the metadata (treated as not missing)",
        }
    }
}

impl AnnotationState {
    /// The status of an id with this state under `sparse`.
    pub fn status(&self, sparse: SparsePolicy) -> IdStatus {
        if !self.present {
            return IdStatus::NotPresent;
        }
        match (self.annotated, self.sparse) {
            (Annotated::Bool(false), _) => IdStatus::Missing(MissingReason::NotAnnotated),
            (Annotated::Empty, _) => IdStatus::Missing(MissingReason::Empty),
            (Annotated::Sparse, _) | (_, Some(true)) => match sparse {
                SparsePolicy::Missing => IdStatus::Missing(MissingReason::Sparse),
                SparsePolicy::Annotated => IdStatus::Annotated,
            },
            _ => IdStatus::Annotated,
        }
    }
}

/// One entry of the `labels` list.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelEntry {
    /// Position in the `labels` list.
    pub index: usize,
    /// The label id.
    pub value: u64,
    /// The class name (the short name of the enum format), where given.
    pub name: Option<String>,
    /// The annotation state.
    pub state: AnnotationState,
    /// The detected format.
    pub format: EntryFormat,
}

/// The annotation metadata of one label array.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct LabelMetadata {
    entries: Vec<LabelEntry>,
    /// Position in `entries` of each id's entry: finding duplicates and looking ids up stays
    /// O(1) per id (a linear scan made a 300k-entry `labels` list take most of a minute).
    by_id: HashMap<u64, usize>,
    attribute_found: bool,
}

impl LabelMetadata {
    /// Metadata from a label array's attributes (the `labels` key). `path` names the array in
    /// errors. Without a `labels` key this is an error unless `allow_missing` is set, in which
    /// case nothing is missing.
    pub fn from_attributes(
        path: &str,
        attrs: &Map<String, Value>,
        allow_missing: bool,
    ) -> Result<Self, MetadataError> {
        match attrs.get("labels") {
            Some(labels) => Self::from_labels(path, labels),
            None if allow_missing => Ok(Self::default()),
            None => Err(MetadataError::MissingLabels {
                path: path.to_string(),
            }),
        }
    }

    /// Metadata from the value of a `labels` attribute.
    pub fn from_labels(path: &str, labels: &Value) -> Result<Self, MetadataError> {
        let list = labels.as_array().ok_or_else(|| MetadataError::NotAList {
            path: path.to_string(),
            found: json_kind(labels).to_string(),
        })?;
        let mut entries: Vec<LabelEntry> = Vec::with_capacity(list.len());
        let mut by_id: HashMap<u64, usize> = HashMap::with_capacity(list.len());
        for (index, raw) in list.iter().enumerate() {
            let entry = parse_entry(path, index, raw)?;
            if let Some(&at) = by_id.get(&entry.value) {
                let earlier = &entries[at];
                if earlier.state != entry.state {
                    return Err(MetadataError::Entry {
                        path: path.to_string(),
                        index,
                        field: "value".into(),
                        problem: format!(
                            "id {} is also described by labels[{}] with a different annotationState",
                            entry.value, earlier.index
                        ),
                    });
                }
                continue;
            }
            by_id.insert(entry.value, entries.len());
            entries.push(entry);
        }
        Ok(Self {
            entries,
            by_id,
            attribute_found: true,
        })
    }

    /// Whether the array had a `labels` attribute (false only under `allow_missing_metadata`).
    pub fn attribute_found(&self) -> bool {
        self.attribute_found
    }

    /// The entries, in list order, one per id.
    pub fn entries(&self) -> &[LabelEntry] {
        &self.entries
    }

    /// The entry of `id`, if listed.
    pub fn entry(&self, id: u64) -> Option<&LabelEntry> {
        self.by_id.get(&id).map(|&at| &self.entries[at])
    }

    /// What the metadata says about `id` under `sparse`.
    pub fn status(&self, id: u64, sparse: SparsePolicy) -> IdStatus {
        self.entry(id)
            .map_or(IdStatus::Unlisted, |e| e.state.status(sparse))
    }

    /// The ids that are present but not annotated, under `sparse`.
    pub fn missing_ids(&self, sparse: SparsePolicy) -> BTreeSet<u64> {
        self.entries
            .iter()
            .filter(|e| e.state.status(sparse).is_missing())
            .map(|e| e.value)
            .collect()
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn parse_entry(path: &str, index: usize, raw: &Value) -> Result<LabelEntry, MetadataError> {
    let fail = |field: &str, problem: String| MetadataError::Entry {
        path: path.to_string(),
        index,
        field: field.to_string(),
        problem,
    };
    let obj = raw.as_object().ok_or_else(|| {
        fail(
            "(entry)",
            format!("expected an object, found {}", json_kind(raw)),
        )
    })?;
    let value = match obj.get("value") {
        None => return Err(fail("value", "missing".into())),
        Some(v) => v.as_u64().ok_or_else(|| {
            fail(
                "value",
                format!("must be a non-negative integer, found {v}"),
            )
        })?,
    };
    let state = match obj.get("annotationState") {
        None => return Err(fail("annotationState", "missing".into())),
        Some(Value::Object(s)) => s,
        Some(v) => {
            return Err(fail(
                "annotationState",
                format!("expected an object, found {}", json_kind(v)),
            ));
        }
    };
    let present = match state.get("present") {
        None => return Err(fail("annotationState.present", "missing".into())),
        Some(Value::Bool(b)) => *b,
        Some(v) => {
            return Err(fail(
                "annotationState.present",
                format!("must be true or false, found {v}"),
            ));
        }
    };
    let annotated = match state.get("annotated") {
        None => return Err(fail("annotationState.annotated", "missing".into())),
        Some(Value::Bool(b)) => Annotated::Bool(*b),
        Some(Value::String(s)) => match s.as_str() {
            "dense" => Annotated::Dense,
            "sparse" => Annotated::Sparse,
            "empty" => Annotated::Empty,
            other => {
                return Err(fail(
                    "annotationState.annotated",
                    format!(
                        "unknown value {other:?} (expected \"dense\", \"sparse\", \"empty\", true or false)"
                    ),
                ));
            }
        },
        Some(v) => {
            return Err(fail(
                "annotationState.annotated",
                format!("must be a bool or \"dense\"/\"sparse\"/\"empty\", found {v}"),
            ));
        }
    };
    let sparse = match state.get("sparse") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(v) => {
            return Err(fail(
                "annotationState.sparse",
                format!("must be true or false, found {v}"),
            ));
        }
    };
    let name = match obj.get("name") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Object(n)) => n
            .get("short")
            .or_else(|| n.get("long"))
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => None,
    };
    let format = if matches!(annotated, Annotated::Bool(_))
        && !obj.get("name").is_some_and(Value::is_object)
    {
        if sparse.is_some() {
            EntryFormat::Airtable
        } else {
            EntryFormat::FibsemBool
        }
    } else {
        EntryFormat::FibsemEnum
    };
    Ok(LabelEntry {
        index,
        value,
        name,
        state: AnnotationState {
            present,
            annotated,
            sparse,
        },
        format,
    })
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta(labels: Value) -> Result<LabelMetadata, MetadataError> {
        LabelMetadata::from_labels("crop/labels", &labels)
    }

    #[test]
    fn formats_are_detected_per_entry() {
        let m = meta(json!([
            {"value": 1, "name": "a", "annotationState": {"present": true, "annotated": true}},
            {"value": 2, "name": {"long": "bee", "short": "b"}, "count": 0,
             "annotationState": {"present": true, "annotated": "dense"}},
            {"value": 3, "annotationState": {"present": false, "annotated": false, "sparse": false}},
        ]))
        .unwrap();
        let f: Vec<_> = m.entries().iter().map(|e| e.format).collect();
        assert_eq!(
            f,
            [
                EntryFormat::FibsemBool,
                EntryFormat::FibsemEnum,
                EntryFormat::Airtable
            ]
        );
        assert_eq!(m.entry(2).unwrap().name.as_deref(), Some("b"));
    }

    #[test]
    fn missing_rules_follow_the_spec() {
        use IdStatus::*;
        use MissingReason::*;
        let m = meta(json!([
            {"value": 1, "annotationState": {"present": true, "annotated": false}},
            {"value": 2, "annotationState": {"present": true, "annotated": true}},
            {"value": 3, "annotationState": {"present": false, "annotated": false}},
            {"value": 4, "annotationState": {"present": true, "annotated": "empty"}},
            {"value": 5, "annotationState": {"present": true, "annotated": "dense"}},
            {"value": 6, "annotationState": {"present": true, "annotated": "sparse"}},
            {"value": 7, "annotationState": {"present": true, "annotated": true, "sparse": true}},
            {"value": 8, "annotationState": {"present": true, "annotated": false, "sparse": true}},
            {"value": 9, "annotationState": {"present": false, "annotated": "empty"}},
            {"value": 10, "annotationState": {"present": true, "annotated": true, "sparse": false}},
        ]))
        .unwrap();
        let want_missing = [
            Missing(NotAnnotated),
            Annotated,
            NotPresent,
            Missing(Empty),
            Annotated,
            Missing(Sparse),
            Missing(Sparse),
            Missing(NotAnnotated),
            NotPresent,
            Annotated,
        ];
        let want_annotated = [
            Missing(NotAnnotated),
            Annotated,
            NotPresent,
            Missing(Empty),
            Annotated,
            Annotated,
            Annotated,
            Missing(NotAnnotated),
            NotPresent,
            Annotated,
        ];
        for id in 1..=10u64 {
            assert_eq!(
                m.status(id, SparsePolicy::Missing),
                want_missing[id as usize - 1],
                "id {id}"
            );
            assert_eq!(
                m.status(id, SparsePolicy::Annotated),
                want_annotated[id as usize - 1],
                "id {id}"
            );
        }
        assert_eq!(m.status(99, SparsePolicy::Missing), Unlisted);
        let ids: Vec<u64> = m.missing_ids(SparsePolicy::Missing).into_iter().collect();
        assert_eq!(ids, [1, 4, 6, 7, 8]);
    }

    #[test]
    fn large_ids_and_extra_keys() {
        let m = meta(json!([{"value": u64::MAX, "color": "red",
            "annotationState": {"present": true, "annotated": false, "extra": 1}}]))
        .unwrap();
        assert!(m.missing_ids(SparsePolicy::Missing).contains(&u64::MAX));
    }

    #[test]
    fn identical_duplicates_are_accepted() {
        let e = json!({"value": 3, "annotationState": {"present": true, "annotated": false}});
        let m = meta(json!([e.clone(), e])).unwrap();
        assert_eq!(m.entries().len(), 1);
    }

    /// Duplicates are found through an id index, not by scanning the earlier entries (that
    /// was O(n^2): 300k entries took over a minute). No timing is asserted; this checks that a
    /// conflicting duplicate far down a long list is still reported with both positions, and
    /// that identical duplicates still collapse to the first entry.
    #[test]
    fn conflicting_duplicate_in_a_long_list_names_both_entries() {
        let entry = |v: u64, annotated: bool| json!({"value": v, "annotationState": {"present": true, "annotated": annotated}});
        let n = 300_000u64;
        let mut list: Vec<Value> = (0..n).map(|v| entry(v, v % 2 == 0)).collect();
        // An identical repeat of id 10 (kept once), then id 7 again with another state.
        list.push(entry(10, true));
        list.push(entry(7, true));
        let err = meta(Value::Array(list.clone())).unwrap_err();
        let second = n as usize + 1;
        assert_eq!(
            err,
            MetadataError::Entry {
                path: "crop/labels".into(),
                index: second,
                field: "value".into(),
                problem: "id 7 is also described by labels[7] with a different annotationState"
                    .into(),
            }
        );
        assert!(
            err.to_string().starts_with(&format!(
                "crop/labels: labels[{second}].value: id 7 is also described by labels[7]"
            )),
            "{err}"
        );
        list.pop();
        let m = meta(Value::Array(list)).unwrap();
        assert_eq!(m.entries().len(), n as usize);
        assert_eq!(m.entry(10).unwrap().index, 10);
        assert_eq!(m.entry(n - 1).unwrap().value, n - 1);
        assert!(m.entry(n).is_none());
        assert_eq!(m.missing_ids(SparsePolicy::Missing).len(), n as usize / 2);
    }

    #[test]
    fn attribute_absent() {
        let attrs = Map::new();
        let err = LabelMetadata::from_attributes("crop/labels", &attrs, false).unwrap_err();
        assert_eq!(
            err,
            MetadataError::MissingLabels {
                path: "crop/labels".into()
            }
        );
        assert!(err.to_string().contains("crop/labels"));
        let m = LabelMetadata::from_attributes("crop/labels", &attrs, true).unwrap();
        assert!(!m.attribute_found());
        assert!(m.missing_ids(SparsePolicy::Missing).is_empty());
    }

    #[test]
    fn malformed_entries_name_index_and_field() {
        let ok = json!({"value": 1, "annotationState": {"present": true, "annotated": true}});
        let cases = [
            (
                json!({"annotationState": {"present": true, "annotated": true}}),
                "value",
            ),
            (
                json!({"value": -3, "annotationState": {"present": true, "annotated": true}}),
                "value",
            ),
            (
                json!({"value": 2.5, "annotationState": {"present": true, "annotated": true}}),
                "value",
            ),
            (
                json!({"value": "3", "annotationState": {"present": true, "annotated": true}}),
                "value",
            ),
            (json!({"value": 3}), "annotationState"),
            (
                json!({"value": 3, "annotationState": [true]}),
                "annotationState",
            ),
            (
                json!({"value": 3, "annotationState": {"annotated": true}}),
                "annotationState.present",
            ),
            (
                json!({"value": 3, "annotationState": {"present": "yes", "annotated": true}}),
                "annotationState.present",
            ),
            (
                json!({"value": 3, "annotationState": {"present": true}}),
                "annotationState.annotated",
            ),
            (
                json!({"value": 3, "annotationState": {"present": true, "annotated": "partial"}}),
                "annotationState.annotated",
            ),
            (
                json!({"value": 3, "annotationState": {"present": true, "annotated": 1}}),
                "annotationState.annotated",
            ),
            (
                json!({"value": 3, "annotationState": {"present": true, "annotated": true, "sparse": "no"}}),
                "annotationState.sparse",
            ),
            (
                json!({"value": 1, "annotationState": {"present": true, "annotated": false}}),
                "value",
            ),
            (json!(7), "(entry)"),
        ];
        for (bad, field) in cases {
            let err = meta(json!([ok.clone(), bad.clone()])).unwrap_err();
            match &err {
                MetadataError::Entry {
                    path,
                    index,
                    field: f,
                    ..
                } => {
                    assert_eq!(
                        (path.as_str(), *index, f.as_str()),
                        ("crop/labels", 1, field),
                        "{bad}"
                    );
                }
                other => panic!("{bad}: {other:?}"),
            }
            let msg = err.to_string();
            assert!(
                msg.starts_with(&format!("crop/labels: labels[1].{field}")),
                "{msg}"
            );
        }
        let err = meta(json!({"value": 1})).unwrap_err();
        assert!(matches!(err, MetadataError::NotAList { .. }), "{err}");
    }
}
