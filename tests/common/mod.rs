//! Test helpers: the naive oracle and crop writers. The oracle follows SPEC.md section 2 word for
//! word and shares no code with the engines or the plan.
#![allow(dead_code)]

use std::collections::BTreeSet;

use serde_json::Value;

/// The mask straight from SPEC 2: for channel `c` and voxel label `l` (as a 64-bit id),
/// whole-channel: 0 if any id of `c` is missing, else `l != background`;
/// per-voxel: `l != background` and `l` is not a missing id of `c`.
/// Returns channel-major bytes, `channels.len() * labels.len()` long.
pub fn oracle(
    labels: &[u64],
    channels: &[Vec<u64>],
    missing: &BTreeSet<u64>,
    background: u64,
    per_voxel: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(channels.len() * labels.len());
    for ids in channels {
        let channel_missing: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|i| missing.contains(i))
            .collect();
        for &l in labels {
            let on = if per_voxel {
                l != background && !channel_missing.contains(&l)
            } else {
                channel_missing.is_empty() && l != background
            };
            out.push(on as u8);
        }
    }
    out
}

/// Missing ids the way `reference_mask.py` finds them: present, and annotated false or
/// "empty", or sparse when sparse counts as missing.
pub fn naive_missing(labels_attr: &Value, sparse_is_missing: bool) -> BTreeSet<u64> {
    let mut out = BTreeSet::new();
    for entry in labels_attr.as_array().unwrap() {
        let state = &entry["annotationState"];
        if state["present"] != Value::Bool(true) {
            continue;
        }
        let ann = &state["annotated"];
        let not_annotated = *ann == Value::Bool(false) || ann.as_str() == Some("empty");
        let sparse =
            ann.as_str() == Some("sparse") || state.get("sparse") == Some(&Value::Bool(true));
        if not_annotated || (sparse && sparse_is_missing) {
            out.insert(entry["value"].as_u64().unwrap());
        }
    }
    out
}

/// Channel id lists of groupings.
pub fn channel_ids(g: &annomask::Groupings) -> Vec<Vec<u64>> {
    g.channels().iter().map(|c| c.ids.clone()).collect()
}

/// Every voxel of a label array as its 64-bit id (signed values sign-extended), C order.
pub fn bits(labels: &annomask::LabelArray) -> Vec<u64> {
    let s = labels.as_slice();
    (0..s.len()).map(|i| s.bits_at(i)).collect()
}

/// Raw 64-bit draws truncated into `dtype` (so draws with high bits set give negative signed
/// labels), as a label array of `shape`.
pub fn labels_of(
    dtype: annomask::LabelDtype,
    shape: &[usize],
    raw: &[u64],
) -> annomask::LabelArray {
    use annomask::{LabelArray, LabelDtype};
    use ndarray::{ArrayD, IxDyn};
    macro_rules! make {
        ($t:ty) => {
            LabelArray::from(
                ArrayD::from_shape_vec(IxDyn(shape), raw.iter().map(|&r| r as $t).collect())
                    .unwrap(),
            )
        };
    }
    match dtype {
        LabelDtype::U8 => make!(u8),
        LabelDtype::U16 => make!(u16),
        LabelDtype::U32 => make!(u32),
        LabelDtype::U64 => make!(u64),
        LabelDtype::I8 => make!(i8),
        LabelDtype::I16 => make!(i16),
        LabelDtype::I32 => make!(i32),
        LabelDtype::I64 => make!(i64),
    }
}

/// A `labels` attribute listing `ids`, each in `format` (0 bool, 1 enum, 2 airtable), with a
/// state chosen by `state` (0 annotated, 1 not annotated, 2 sparse, 3 not present).
pub fn labels_attr(entries: &[(u64, usize, usize)]) -> Value {
    use serde_json::json;
    let list: Vec<Value> = entries
        .iter()
        .map(|&(id, format, state)| {
            let s = match (format, state) {
                (0, 0) => json!({"present": true, "annotated": true}),
                (0, 1) => json!({"present": true, "annotated": false}),
                (0, 2) => json!({"present": true, "annotated": true}),
                (1, 0) => json!({"present": true, "annotated": "dense"}),
                (1, 1) => json!({"present": true, "annotated": "empty"}),
                (1, 2) => json!({"present": true, "annotated": "sparse"}),
                (2, 0) => json!({"present": true, "annotated": true, "sparse": false}),
                (2, 1) => json!({"present": true, "annotated": false, "sparse": false}),
                (2, 2) => json!({"present": true, "annotated": true, "sparse": true}),
                (_, 3) => json!({"present": false, "annotated": false}),
                _ => unreachable!(),
            };
            let name = if format == 1 {
                json!({"long": format!("class {id}"), "short": format!("c{id}")})
            } else {
                json!(format!("c{id}"))
            };
            json!({"value": id, "name": name, "annotationState": s})
        })
        .collect();
    Value::Array(list)
}
