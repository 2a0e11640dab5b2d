//! Channel groupings: an ordered list of channels, each a name and the label ids it stands for
//! (SPEC 1.3), as in DaCapo's `groupings`.
//!
//! Accepted text forms: a JSON list of pairs `[["mito", [3, 4, 5]], ["er", [16, 17]]]`; a JSON
//! object with that list under `groupings`; a TOML file with `groupings = [["mito", [3, 4, 5]]]`.
//!
//! ```
//! use annomask::Groupings;
//! let g = Groupings::from_json_str(r#"[["mito", [3, 4, 5]], ["fg", []]]"#, "example")?;
//! assert_eq!(g.names().collect::<Vec<_>>(), ["mito", "fg"]);
//! assert_eq!(g.channels()[0].ids, [3, 4, 5]);
//! # Ok::<(), annomask::GroupingsError>(())
//! ```

use std::path::Path;

use serde_json::Value;

use crate::error::GroupingsError;

/// One output channel: a name and the ids it groups. An empty id list stands for "any
/// foreground".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Channel {
    /// Channel name, unique and non-empty.
    pub name: String,
    /// Label ids of the channel.
    pub ids: Vec<u64>,
}

/// The ordered channels of a mask.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Groupings {
    channels: Vec<Channel>,
}

/// Where groupings given through the API are said to come from in errors.
const API: &str = "<groupings>";

impl Groupings {
    /// Groupings from `(name, ids)` pairs, validated: names unique and non-empty.
    ///
    /// ```
    /// use annomask::Groupings;
    /// let g = Groupings::new([("mito", vec![3, 4]), ("er", vec![16])])?;
    /// assert_eq!(g.len(), 2);
    /// assert!(Groupings::new([("a", vec![1]), ("a", vec![2])]).is_err());
    /// # Ok::<(), annomask::GroupingsError>(())
    /// ```
    pub fn new<N: Into<String>>(
        channels: impl IntoIterator<Item = (N, Vec<u64>)>,
    ) -> Result<Self, GroupingsError> {
        let channels = channels
            .into_iter()
            .map(|(name, ids)| Channel {
                name: name.into(),
                ids,
            })
            .collect();
        Self::validated(channels, API)
    }

    fn validated(channels: Vec<Channel>, source_name: &str) -> Result<Self, GroupingsError> {
        for (i, c) in channels.iter().enumerate() {
            if c.name.is_empty() {
                return Err(GroupingsError::EmptyName {
                    source_name: source_name.to_string(),
                    index: i,
                });
            }
            if let Some(first) = channels[..i].iter().position(|o| o.name == c.name) {
                return Err(GroupingsError::DuplicateName {
                    source_name: source_name.to_string(),
                    name: c.name.clone(),
                    first,
                    second: i,
                });
            }
        }
        Ok(Self { channels })
    }

    /// Groupings from JSON text; `source_name` (a path) names the text in errors.
    pub fn from_json_str(text: &str, source_name: &str) -> Result<Self, GroupingsError> {
        let value: Value = serde_json::from_str(text).map_err(|e| GroupingsError::Parse {
            source_name: source_name.to_string(),
            message: e.to_string(),
        })?;
        Self::from_value(&value, source_name)
    }

    /// Groupings from TOML text holding `groupings = [["name", [ids]], ...]`.
    pub fn from_toml_str(text: &str, source_name: &str) -> Result<Self, GroupingsError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| GroupingsError::Parse {
            source_name: source_name.to_string(),
            message: e.to_string(),
        })?;
        let value = serde_json::to_value(table).map_err(|e| GroupingsError::Parse {
            source_name: source_name.to_string(),
            message: e.to_string(),
        })?;
        Self::from_value(&value, source_name)
    }

    /// Groupings from a file: TOML if the name ends in `.toml`, JSON otherwise.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, GroupingsError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| GroupingsError::Read {
            path: name.clone(),
            message: e.to_string(),
        })?;
        if path.extension().is_some_and(|e| e == "toml") {
            Self::from_toml_str(&text, &name)
        } else {
            Self::from_json_str(&text, &name)
        }
    }

    /// Groupings from a JSON value: a list of `[name, [ids]]` pairs, or an object holding one
    /// under `groupings`.
    pub fn from_value(value: &Value, source_name: &str) -> Result<Self, GroupingsError> {
        let channels = raw_channels(value, source_name)?
            .into_iter()
            .map(|(name, members)| {
                let ids = members
                    .iter()
                    .enumerate()
                    .map(|(position, m)| {
                        m.as_u64().ok_or_else(|| GroupingsError::BadId {
                            source_name: source_name.to_string(),
                            channel: name.clone(),
                            position,
                            found: m.to_string(),
                        })
                    })
                    .collect::<Result<Vec<u64>, _>>()?;
                Ok(Channel { name, ids })
            })
            .collect::<Result<Vec<_>, GroupingsError>>()?;
        Self::validated(channels, source_name)
    }

    /// The channels, in order.
    pub fn channels(&self) -> &[Channel] {
        &self.channels
    }

    /// Channel names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.channels.iter().map(|c| c.name.as_str())
    }

    /// Number of channels.
    pub fn len(&self) -> usize {
        self.channels.len()
    }

    /// Whether there are no channels.
    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }
}

/// The `(name, members)` pairs of a groupings value, members not yet typed.
pub(crate) fn raw_channels(
    value: &Value,
    source_name: &str,
) -> Result<Vec<(String, Vec<Value>)>, GroupingsError> {
    let parse = |message: String| GroupingsError::Parse {
        source_name: source_name.to_string(),
        message,
    };
    let list = match value {
        Value::Array(list) => list,
        Value::Object(obj) => match obj.get("groupings") {
            Some(Value::Array(list)) => list,
            _ => {
                return Err(parse(
                    "expected a list of [name, [ids]] pairs under `groupings`".into(),
                ));
            }
        },
        _ => return Err(parse("expected a list of [name, [ids]] pairs".into())),
    };
    list.iter()
        .enumerate()
        .map(|(i, pair)| match pair.as_array().map(Vec::as_slice) {
            Some([Value::String(name), Value::Array(members)]) => {
                Ok((name.clone(), members.clone()))
            }
            _ => Err(parse(format!(
                "channel {i} is {pair}, expected a pair [name, [ids]] like [\"mito\", [3, 4, 5]]"
            ))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_object_and_toml_forms() {
        let a = Groupings::from_json_str(r#"[["mito", [3, 4]], ["all", []]]"#, "a").unwrap();
        let b = Groupings::from_json_str(r#"{"groupings": [["mito", [3, 4]], ["all", []]]}"#, "b")
            .unwrap();
        let c = Groupings::from_toml_str("groupings = [[\"mito\", [3, 4]], [\"all\", []]]\n", "c")
            .unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(a.channels()[1].ids, Vec::<u64>::new());
    }

    #[test]
    fn ids_up_to_u64_max() {
        let g = Groupings::from_json_str(r#"[["big", [18446744073709551615, 4294967296]]]"#, "g")
            .unwrap();
        assert_eq!(g.channels()[0].ids, [u64::MAX, 1 << 32]);
    }

    #[test]
    fn errors_name_the_fault() {
        let cases: [(&str, &str); 8] = [
            ("not json", "groupings are not valid"),
            (r#"{"mito": [3]}"#, "under `groupings`"),
            (r#"[["mito", 3]]"#, "channel 0"),
            (r#"[["mito", [3]], ["er"]]"#, "channel 1"),
            (r#"[["mito", [3, -1]]]"#, "member 1 is -1"),
            (r#"[["mito", [3, "4"]]]"#, "member 1 is \"4\""),
            (r#"[["", [3]]]"#, "channel 0 has an empty name"),
            (
                r#"[["a", [3]], ["b", []], ["a", []]]"#,
                "\"a\" is used by channels 0 and 2",
            ),
        ];
        for (text, want) in cases {
            let err = Groupings::from_json_str(text, "g.json").unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.starts_with("g.json: ") && msg.contains(want),
                "{text}: {msg}"
            );
        }
        let err = Groupings::from_file("/nonexistent/g.json").unwrap_err();
        assert!(matches!(err, GroupingsError::Read { .. }), "{err}");
        assert!(err.to_string().contains("/nonexistent/g.json"));
    }
}
