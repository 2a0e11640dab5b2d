//! Channel groupings: an ordered list of channels, each a name and the label ids it stands for
//! (SPEC 1.3), as in DaCapo's `groupings`; for CellMap crop groups, [`ClassGroupings`] name
//! classes instead of ids (SPEC 1.4), and [`ChannelGroupings`] holds either kind.
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

use thiserror::Error;

use crate::error::Cause;

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
    /// Groupings from `(name, ids)` pairs, validated: names unique and non-empty. No channels
    /// at all is allowed here (the mask then has shape `(0, ...)` and no output can be written
    /// of it); groupings parsed from text or a file must list at least one channel
    /// ([`GroupingsError::NoChannels`], naming the file).
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
        check_names(channels.iter().map(|c| c.name.as_str()), source_name)?;
        Ok(Self { channels })
    }

    /// Groupings from JSON text; `source_name` (a path) names the text in errors.
    pub fn from_json_str(text: &str, source_name: &str) -> Result<Self, GroupingsError> {
        Self::from_value(&json_value(text, source_name)?, source_name)
    }

    /// Groupings from TOML text holding `groupings = [["name", [ids]], ...]`.
    pub fn from_toml_str(text: &str, source_name: &str) -> Result<Self, GroupingsError> {
        Self::from_value(&toml_value(text, source_name)?, source_name)
    }

    /// Groupings from a file: TOML if the name ends in `.toml`, JSON otherwise.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, GroupingsError> {
        let (value, name) = file_value(path.as_ref())?;
        Self::from_value(&value, &name)
    }

    /// Groupings from a JSON value: a list of `[name, [ids]]` pairs, or an object holding one
    /// under `groupings`; at least one ([`GroupingsError::NoChannels`]).
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

/// One output channel of a CellMap crop-group mask: a name and the classes it groups
/// (SPEC 1.4), e.g. `mito = [mito_mem, mito_lum]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassChannel {
    /// Channel name, unique and non-empty.
    pub name: String,
    /// Class names (sub-groups of a crop), at least one, each once, in the order given.
    pub classes: Vec<String>,
}

/// The ordered channels of a crop-group mask, grouping classes by name (SPEC 1.4). The text
/// forms are those of [`Groupings`] with class names as members:
/// `[["mito", ["mito_mem", "mito_lum"]], ["er", ["er_mem", "er_lum"]]]`.
///
/// ```
/// use annomask::ClassGroupings;
/// let g = ClassGroupings::from_json_str(
///     r#"[["mito", ["mito_mem", "mito_lum"]], ["er", ["er_mem", "er_lum", "er_mem"]]]"#, "g.json")?;
/// assert_eq!(g.names().collect::<Vec<_>>(), ["mito", "er"]);
/// assert_eq!(g.channels()[1].classes, ["er_mem", "er_lum"]); // a repeated class counts once
/// assert!(ClassGroupings::from_json_str(r#"[["mito", []]]"#, "g.json").is_err());
/// # Ok::<(), annomask::GroupingsError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassGroupings {
    channels: Vec<ClassChannel>,
}

impl ClassGroupings {
    /// Class groupings from `(name, classes)` pairs, validated: names unique and non-empty,
    /// every channel with at least one non-empty class name.
    ///
    /// ```
    /// use annomask::ClassGroupings;
    /// let g = ClassGroupings::new([("mito", vec!["mito_mem", "mito_lum"]), ("nuc", vec!["nuc"])])?;
    /// assert_eq!(g.len(), 2);
    /// # Ok::<(), annomask::GroupingsError>(())
    /// ```
    pub fn new<N: Into<String>, C: Into<String>>(
        channels: impl IntoIterator<Item = (N, Vec<C>)>,
    ) -> Result<Self, GroupingsError> {
        let channels = channels
            .into_iter()
            .map(|(name, classes)| {
                (
                    name.into(),
                    classes
                        .into_iter()
                        .map(|c| Value::String(c.into()))
                        .collect(),
                )
            })
            .collect();
        Self::from_raw(channels, API)
    }

    fn from_raw(raw: Vec<(String, Vec<Value>)>, source_name: &str) -> Result<Self, GroupingsError> {
        let channels = raw
            .into_iter()
            .map(|(name, members)| {
                let mut classes: Vec<String> = Vec::with_capacity(members.len());
                for (position, m) in members.iter().enumerate() {
                    let class = m.as_str().filter(|c| !c.is_empty()).ok_or_else(|| {
                        GroupingsError::BadClass {
                            source_name: source_name.to_string(),
                            channel: name.clone(),
                            position,
                            found: m.to_string(),
                        }
                    })?;
                    if !classes.iter().any(|c| c == class) {
                        classes.push(class.to_string());
                    }
                }
                if classes.is_empty() {
                    return Err(GroupingsError::NoClasses {
                        source_name: source_name.to_string(),
                        channel: name,
                    });
                }
                Ok(ClassChannel { name, classes })
            })
            .collect::<Result<Vec<_>, GroupingsError>>()?;
        check_names(channels.iter().map(|c| c.name.as_str()), source_name)?;
        Ok(Self { channels })
    }

    /// Class groupings from JSON text; `source_name` (a path) names the text in errors.
    pub fn from_json_str(text: &str, source_name: &str) -> Result<Self, GroupingsError> {
        Self::from_value(&json_value(text, source_name)?, source_name)
    }

    /// Class groupings from TOML text holding `groupings = [["name", ["class", ...]], ...]`.
    pub fn from_toml_str(text: &str, source_name: &str) -> Result<Self, GroupingsError> {
        Self::from_value(&toml_value(text, source_name)?, source_name)
    }

    /// Class groupings from a file: TOML if the name ends in `.toml`, JSON otherwise.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, GroupingsError> {
        let (value, name) = file_value(path.as_ref())?;
        Self::from_value(&value, &name)
    }

    /// Class groupings from a JSON value: a list of `[name, [classes]]` pairs, or an object
    /// holding one under `groupings`.
    pub fn from_value(value: &Value, source_name: &str) -> Result<Self, GroupingsError> {
        Self::from_raw(raw_channels(value, source_name)?, source_name)
    }

    /// The channels, in order.
    pub fn channels(&self) -> &[ClassChannel] {
        &self.channels
    }

    /// Channel names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.channels.iter().map(|c| c.name.as_str())
    }

    /// Every class some channel names, each once, in order of first appearance.
    pub fn classes(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for class in self.channels.iter().flat_map(|c| &c.classes) {
            if !out.contains(&class.as_str()) {
                out.push(class);
            }
        }
        out
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

/// Groupings of either kind: by label id (label arrays, SPEC 1.3) or by class name (CellMap
/// crop groups, SPEC 1.4). [`MissingAnnotationsMask::open`](crate::MissingAnnotationsMask::open)
/// takes either and checks that it fits the source.
///
/// Parsing detects the kind from the members: any string member makes class groupings, else
/// they are id groupings (so `[["fg", []]]` is id groupings: "any foreground").
///
/// ```
/// use annomask::ChannelGroupings;
/// let ids = ChannelGroupings::from_json_str(r#"[["mito", [3, 4, 5]]]"#, "a")?;
/// assert!(matches!(ids, ChannelGroupings::Ids(_)));
/// let classes = ChannelGroupings::from_json_str(r#"[["mito", ["mito_mem", "mito_lum"]]]"#, "b")?;
/// assert!(matches!(classes, ChannelGroupings::Classes(_)));
/// assert_eq!(classes.names(), ["mito"]);
/// // A member of the wrong kind is named.
/// let err = ChannelGroupings::from_json_str(r#"[["mito", ["mito_mem", 4]]]"#, "c").unwrap_err();
/// assert!(err.to_string().contains("member 1 is 4, not a class name"));
/// # Ok::<(), annomask::GroupingsError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChannelGroupings {
    /// Channels of label ids.
    Ids(Groupings),
    /// Channels of class names.
    Classes(ClassGroupings),
}

impl ChannelGroupings {
    /// Groupings from a JSON value, of the kind its members show.
    pub fn from_value(value: &Value, source_name: &str) -> Result<Self, GroupingsError> {
        let raw = raw_channels(value, source_name)?;
        if raw
            .iter()
            .flat_map(|(_, members)| members)
            .any(Value::is_string)
        {
            Ok(Self::Classes(ClassGroupings::from_raw(raw, source_name)?))
        } else {
            Ok(Self::Ids(Groupings::from_value(value, source_name)?))
        }
    }

    /// Groupings from JSON text, of the kind its members show.
    pub fn from_json_str(text: &str, source_name: &str) -> Result<Self, GroupingsError> {
        Self::from_value(&json_value(text, source_name)?, source_name)
    }

    /// Groupings from TOML text, of the kind its members show.
    pub fn from_toml_str(text: &str, source_name: &str) -> Result<Self, GroupingsError> {
        Self::from_value(&toml_value(text, source_name)?, source_name)
    }

    /// Groupings from a file (TOML if the name ends in `.toml`, JSON otherwise), of the kind
    /// its members show.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, GroupingsError> {
        let (value, name) = file_value(path.as_ref())?;
        Self::from_value(&value, &name)
    }

    /// Channel names, in order.
    pub fn names(&self) -> Vec<&str> {
        match self {
            Self::Ids(g) => g.names().collect(),
            Self::Classes(g) => g.names().collect(),
        }
    }

    /// What the members are: `label ids` or `class names`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Ids(_) => "label ids",
            Self::Classes(_) => "class names",
        }
    }

    /// The groupings by id that the label array at `path` needs, or
    /// [`GroupingsError::WrongKind`].
    pub fn into_ids(self, path: &Path) -> Result<Groupings, GroupingsError> {
        match self {
            Self::Ids(g) => Ok(g),
            other => Err(other.wrong_kind(path, false)),
        }
    }

    /// The groupings by class name that the CellMap crop group at `path` needs, or
    /// [`GroupingsError::WrongKind`].
    pub fn into_classes(self, path: &Path) -> Result<ClassGroupings, GroupingsError> {
        match self {
            Self::Classes(g) => Ok(g),
            other => Err(other.wrong_kind(path, true)),
        }
    }

    fn wrong_kind(&self, path: &Path, crop: bool) -> GroupingsError {
        let (source_kind, expected) = if crop {
            (
                "a CellMap crop group",
                "class name ([[\"mito\", [\"mito_mem\", \"mito_lum\"]]])",
            )
        } else {
            ("a label array", "label id ([[\"mito\", [3, 4, 5]]])")
        };
        GroupingsError::WrongKind {
            path: path.display().to_string(),
            source_kind: source_kind.into(),
            expected: expected.into(),
            found: self.kind().into(),
        }
    }
}

impl From<Groupings> for ChannelGroupings {
    fn from(g: Groupings) -> Self {
        Self::Ids(g)
    }
}

impl From<ClassGroupings> for ChannelGroupings {
    fn from(g: ClassGroupings) -> Self {
        Self::Classes(g)
    }
}

/// Fails if a name is empty or used twice.
fn check_names<'a>(
    names: impl Iterator<Item = &'a str>,
    source_name: &str,
) -> Result<(), GroupingsError> {
    let names: Vec<&str> = names.collect();
    for (i, name) in names.iter().enumerate() {
        if name.is_empty() {
            return Err(GroupingsError::EmptyName {
                source_name: source_name.to_string(),
                index: i,
            });
        }
        if let Some(first) = names[..i].iter().position(|o| o == name) {
            return Err(GroupingsError::DuplicateName {
                source_name: source_name.to_string(),
                name: name.to_string(),
                first,
                second: i,
            });
        }
    }
    Ok(())
}

fn json_value(text: &str, source_name: &str) -> Result<Value, GroupingsError> {
    serde_json::from_str(text).map_err(|e| GroupingsError::Parse {
        source_name: source_name.to_string(),
        message: e.to_string(),
    })
}

fn toml_value(text: &str, source_name: &str) -> Result<Value, GroupingsError> {
    let parse = |message: String| GroupingsError::Parse {
        source_name: source_name.to_string(),
        message,
    };
    let table: toml::Table = toml::from_str(text).map_err(|e| parse(toml_error(text, &e)))?;
    serde_json::to_value(table).map_err(|e| parse(one_line(&e.to_string())))
}

/// A TOML parse error in one line: `line L, column C: message` (the parser's own rendering
/// spans several lines: a snippet of the text with carets under the fault). An integer out
/// of TOML's range (64-bit signed) says that ids from 2^63 up need JSON groupings.
fn toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = one_line(error.message());
    let Some(span) = error.span().filter(|s| s.start <= text.len()) else {
        return message;
    };
    let before = text.get(..span.start).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let literal = text.get(span.clone()).unwrap_or_default().trim();
    let message = if is_integer_literal(literal) {
        format!(
            "integer {literal} is out of range: TOML integers are 64-bit signed, so ids of 2^63 \
             (9223372036854775808) and above cannot be written in TOML; give such groupings as \
             JSON"
        )
    } else {
        message
    };
    format!("TOML line {line}, column {column}: {message}")
}

/// Whether `s` is a TOML integer literal (decimal with sign and `_`, or 0x / 0o / 0b).
fn is_integer_literal(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (digits, radix) = match s.get(..2) {
        Some("0x") => (&s[2..], 16),
        Some("0o") => (&s[2..], 8),
        Some("0b") => (&s[2..], 2),
        _ => (s, 10),
    };
    digits.chars().any(|c| c.is_digit(radix))
        && digits.chars().all(|c| c == '_' || c.is_digit(radix))
}

/// `message` with its lines joined by `; `.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The largest groupings file read (64 MiB: millions of ids).
pub const MAX_GROUPINGS_BYTES: u64 = 64 << 20;

/// The groupings value of a file (TOML if the name ends in `.toml`, JSON otherwise) and the
/// file's name for errors.
fn file_value(path: &Path) -> Result<(Value, String), GroupingsError> {
    use std::io::Read;
    let name = path.display().to_string();
    let read_error = |message: Cause| GroupingsError::Read {
        path: name.clone(),
        message,
    };
    // Read at most `MAX_GROUPINGS_BYTES` (+1 to tell a larger file): `/dev/zero` or a runaway
    // pipe must not take the memory. (A pipe is read as it comes: `--groupings <(...)` works.)
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_GROUPINGS_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| read_error(Cause::error(e)))?;
    if bytes.len() as u64 > MAX_GROUPINGS_BYTES {
        return Err(read_error(Cause::text(format!(
            "larger than {} MiB; groupings this large are not supported",
            MAX_GROUPINGS_BYTES >> 20
        ))));
    }
    let text = String::from_utf8(bytes)
        .map_err(|e| read_error(Cause::text(format!("not UTF-8 text: {e}"))))?;
    let value = if path.extension().is_some_and(|e| e == "toml") {
        toml_value(&text, &name)?
    } else {
        json_value(&text, &name)?
    };
    Ok((value, name))
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
    let no_channels = || GroupingsError::NoChannels {
        source_name: source_name.to_string(),
    };
    let list = match value {
        Value::Array(list) => list,
        // An empty object: an empty (or comments-only) TOML file.
        Value::Object(obj) if obj.is_empty() => return Err(no_channels()),
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
    if list.is_empty() {
        return Err(no_channels());
    }
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
        #[source]
        message: Cause,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_error_keeps_the_io_error_as_its_source() {
        use std::error::Error as _;
        let e = Groupings::from_file("/no/such/groupings.json").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/no/such/groupings.json: cannot read groupings: ")
        );
        let cause = e
            .source()
            .expect("a source")
            .downcast_ref::<Cause>()
            .expect("a Cause");
        let io = cause
            .get_ref()
            .expect("the error")
            .downcast_ref::<std::io::Error>();
        assert_eq!(io.map(|e| e.kind()), Some(std::io::ErrorKind::NotFound));
    }

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
    fn toml_errors_are_one_line() {
        let cases: [(&str, &[&str]); 4] = [
            (
                "groupings = [[\"a\", [1, 2]]\n",
                &[
                    "g.toml: groupings are not valid: TOML line 1, column 27: ",
                    "unclosed array",
                ],
            ),
            (
                "# ids\ngroupings = [\n  [\"a\", [1]],\n  [\"b\" [2]],\n]\n",
                &["TOML line 4, column "],
            ),
            (
                "groupings = [[\"a\", [3, 9223372036854775808]]]\n",
                &[
                    "TOML line 1, column 24: integer 9223372036854775808 is out of range",
                    "2^63",
                    "JSON",
                ],
            ),
            (
                "groupings = [[\"a\", [0xffff_ffff_ffff_ffff]]]\n",
                &["integer 0xffff_ffff_ffff_ffff is out of range", "JSON"],
            ),
        ];
        for (text, want) in cases {
            let msg = ChannelGroupings::from_toml_str(text, "g.toml")
                .unwrap_err()
                .to_string();
            assert!(!msg.contains('\n'), "{text:?}: not one line: {msg}");
            assert!(!msg.contains(" | "), "{text:?}: has a snippet: {msg}");
            assert!(msg.starts_with("g.toml: "), "{msg}");
            for w in want {
                assert!(msg.contains(w), "{text:?}: {msg} lacks {w:?}");
            }
        }
        // The largest TOML integer is still an id; the same id as JSON goes beyond it.
        let g =
            Groupings::from_toml_str("groupings = [[\"a\", [9223372036854775807]]]", "t").unwrap();
        assert_eq!(g.channels()[0].ids, [i64::MAX as u64]);
        assert!(Groupings::from_json_str(r#"[["a", [9223372036854775808]]]"#, "j").is_ok());
    }

    #[test]
    fn no_channels_blame_the_groupings() {
        let texts = [
            ("g.json", "[]"),
            ("g.json", r#"{"groupings": []}"#),
            ("g.toml", ""),
            ("g.toml", "# nothing yet\n"),
            ("g.toml", "groupings = []\n"),
        ];
        for (name, text) in texts {
            let value = if name.ends_with(".toml") {
                toml_value(text, name).unwrap()
            } else {
                json_value(text, name).unwrap()
            };
            for err in [
                Groupings::from_value(&value, name).unwrap_err(),
                ClassGroupings::from_value(&value, name).unwrap_err(),
                ChannelGroupings::from_value(&value, name).unwrap_err(),
            ] {
                assert_eq!(
                    err,
                    GroupingsError::NoChannels {
                        source_name: name.into()
                    },
                    "{name}: {text:?}"
                );
                assert!(
                    err.to_string()
                        .starts_with(&format!("{name}: the groupings have no channels")),
                    "{err}"
                );
            }
        }
        // A TOML file with other keys but no `groupings` is still told where to put them.
        let msg = Groupings::from_toml_str("channels = []\n", "g.toml")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("under `groupings`"), "{msg}");
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
        let err = ClassGroupings::from_file("/nonexistent/c.json").unwrap_err();
        assert!(matches!(err, GroupingsError::Read { .. }), "{err}");
        assert!(err.to_string().contains("/nonexistent/c.json"));
    }

    #[test]
    fn class_groupings_forms_and_errors() {
        let a =
            ClassGroupings::from_json_str(r#"[["mito", ["mito_mem", "mito_lum"]]]"#, "a").unwrap();
        let b = ClassGroupings::from_toml_str(
            "groupings = [[\"mito\", [\"mito_mem\", \"mito_lum\"]]]\n",
            "b",
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.classes(), ["mito_mem", "mito_lum"]);
        let cases: [(&str, &str); 5] = [
            (r#"[["mito", []]]"#, "channel \"mito\" lists no class"),
            (r#"[["mito", ["a", 3]]]"#, "member 1 is 3, not a class name"),
            (r#"[["mito", [""]]]"#, "member 0 is \"\", not a class name"),
            (
                r#"[["m", ["a"]], ["m", ["b"]]]"#,
                "\"m\" is used by channels 0 and 1",
            ),
            (r#"[["", ["a"]]]"#, "channel 0 has an empty name"),
        ];
        for (text, want) in cases {
            let msg = ClassGroupings::from_json_str(text, "c.json")
                .unwrap_err()
                .to_string();
            assert!(
                msg.starts_with("c.json: ") && msg.contains(want),
                "{text}: {msg}"
            );
        }
    }

    #[test]
    fn channel_groupings_detect_the_kind() {
        let ids = ChannelGroupings::from_json_str(r#"[["a", [1]], ["fg", []]]"#, "x").unwrap();
        assert_eq!(ids.kind(), "label ids");
        let classes =
            ChannelGroupings::from_json_str(r#"{"groupings": [["a", ["x"]], ["b", ["y"]]]}"#, "x")
                .unwrap();
        assert_eq!(classes.kind(), "class names");
        assert_eq!(classes.names(), ["a", "b"]);
        let err = ChannelGroupings::from_json_str(r#"[["a", [1]], ["b", ["y"]]]"#, "x")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("channel \"a\" member 0 is 1, not a class name"),
            "{err}"
        );
    }
}
