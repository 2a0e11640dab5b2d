//! [`Node`]: a zarr node (group or array) in a store — a zarrs storage handle and the node's
//! path in it — named in messages as the user gave it. Sources open from a node and read every
//! attribute, every metadata document and every listing through it: no source touches
//! `std::fs`, so a store other than the local filesystem is a different [`Storage`] and
//! nothing else.
//!
//! ```
//! use annomask::node::Node;
//! let dir = tempfile::tempdir()?;
//! let crop = annomask::cellmap::synth::write_demo_crop(dir.path(), 8, annomask::ZarrFormat::V3)?;
//! let node = Node::local(&crop)?;
//! assert!(node.is_group());
//! assert!(node.attributes().unwrap().contains_key("cellmap"));
//! assert!(node.child("mito").child("s0").is_array());
//! assert!(node.child_names()?.contains(&"mito".to_string()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};
use zarrs::storage::{ReadableListableStorageTraits, StoreKey, StorePrefix};

use crate::error::{Cause, StorageError};
use crate::remote::{StoreOptions, StoreUrl};
use crate::store::{NotAFile, RegularFileStore};

/// A readable, listable zarr store.
pub type Storage = Arc<dyn ReadableListableStorageTraits>;

/// Why a metadata document of a node cannot be read: the document (as a path or URL) and the
/// problem.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct MetadataProblem {
    /// The document, named as its node is plus `/<file>`.
    pub path: String,
    /// What is wrong with it.
    pub problem: String,
}

/// A zarr node in a store.
#[derive(Clone)]
pub struct Node {
    store: Storage,
    /// The node's path in the store: `""` for the root, else `a/b` (no leading or trailing
    /// `/`).
    path: String,
    /// How messages name it.
    name: String,
    /// The local path, for a node of the local filesystem.
    local: Option<PathBuf>,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.name)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Nodes are equal when they have the same path and name (the store is not compared).
impl PartialEq for Node {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path && self.name == other.name
    }
}

impl Node {
    /// The node at `path` in `store`, named `name` in messages.
    pub fn new(store: Storage, path: &str, name: impl Into<String>) -> Self {
        Self {
            store,
            path: path.trim_matches('/').to_string(),
            name: name.into(),
            local: None,
        }
    }

    /// The node at `location`: a local path, a `file://` URL, or an object-store URL
    /// (`s3://bucket/key`, `gs://bucket/key`, `https://host/path`; see [`crate::remote`]),
    /// opened with `options`.
    ///
    /// Errors: [`StorageError::NotFound`] if nothing is there; for a URL,
    /// [`StorageError::Remote`] (no such bucket, access denied, cannot connect: one line) and
    /// [`StorageError::BadUrl`].
    pub fn open(location: &str, options: StoreOptions) -> Result<Self, StorageError> {
        let Some(url) = StoreUrl::parse(location)? else {
            return Self::local(crate::store::local_path(location));
        };
        let store = crate::remote::open(&url.root(), options)?;
        let can_list = store.can_list();
        let node = Self::new(store, url.key(), url.as_str());
        node.probe(can_list)?;
        Ok(node)
    }

    /// Fails unless something is stored at a remote node: a listing (or, where the store
    /// cannot list, one of the metadata documents) names a missing bucket, a refusal or an
    /// unreachable server in one line.
    fn probe(&self, can_list: bool) -> Result<(), StorageError> {
        let remote = |e: &dyn std::fmt::Display| StorageError::Remote {
            url: self.name.clone(),
            problem: e.to_string(),
        };
        let found = if can_list {
            let prefix = self.prefix().map_err(|e| remote(&e.problem))?;
            let listing = self.store.list_dir(&prefix).map_err(|e| remote(&e))?;
            !listing.keys().is_empty() || !listing.prefixes().is_empty()
        } else {
            let mut found = false;
            for file in ["zarr.json", ".zarray", ".zgroup", "attributes.json"] {
                let Some(key) = self.key(file) else { continue };
                if self.store.size_key(&key).map_err(|e| remote(&e))?.is_some() {
                    found = true;
                    break;
                }
            }
            found
        };
        match found {
            true => Ok(()),
            false => Err(StorageError::NotFound {
                path: self.name.clone(),
            }),
        }
    }

    /// The node at the local `path`: a [`RegularFileStore`] over the filesystem root (so the
    /// node's parents and children are in reach), named as `path` is given.
    ///
    /// Errors: [`StorageError::NotFound`] if nothing is at `path`.
    pub fn local(path: impl AsRef<Path>) -> Result<Self, StorageError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        if !path.exists() {
            return Err(StorageError::NotFound { path: name });
        }
        // Canonical where it resolves (symbolic links and `..` followed, as the parent of a
        // multiscale level is the directory that holds it).
        let absolute = path
            .canonicalize()
            .or_else(|_| std::path::absolute(path))
            .unwrap_or_else(|_| path.to_path_buf());
        let store = RegularFileStore::new("/").map_err(|e| StorageError::NotAnArray {
            path: name.clone(),
            message: Cause::error(e),
        })?;
        let key_path = absolute.to_string_lossy().trim_matches('/').to_string();
        Ok(Self {
            store: Arc::new(store),
            path: key_path,
            name,
            local: Some(path.to_path_buf()),
        })
    }

    /// The store.
    pub fn store(&self) -> &Storage {
        &self.store
    }

    /// The node's path in the store as zarrs takes it: `/` or `/a/b`.
    pub fn node_path(&self) -> String {
        format!("/{}", self.path)
    }

    /// How messages name it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The local path it was opened from, for a node of the local filesystem.
    pub fn local_path(&self) -> Option<&Path> {
        self.local.as_deref()
    }

    /// The local path, or for a node of another store its name as a path (what a source
    /// reports as its path).
    pub fn display_path(&self) -> PathBuf {
        self.local
            .clone()
            .unwrap_or_else(|| PathBuf::from(&self.name))
    }

    /// The last component of the node's path in the store (`""` for the root).
    pub fn last_name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or("")
    }

    /// The child node `name`.
    pub fn child(&self, name: &str) -> Node {
        let name = name.trim_matches('/');
        let path = match self.path.is_empty() {
            true => name.to_string(),
            false => format!("{}/{name}", self.path),
        };
        Node {
            store: self.store.clone(),
            path,
            name: join_name(&self.name, name),
            local: self.local.as_ref().map(|p| p.join(name)),
        }
    }

    /// The parent node, unless this is the store's root.
    pub fn parent(&self) -> Option<Node> {
        if self.path.is_empty() {
            return None;
        }
        let path = self.path.rsplit_once('/').map_or("", |(p, _)| p);
        Some(Node {
            store: self.store.clone(),
            path: path.to_string(),
            name: format!("/{path}"),
            local: None,
        })
    }

    /// The store key of the node's document `file` (`zarr.json`, `.zattrs`, ...).
    fn key(&self, file: &str) -> Option<StoreKey> {
        let key = match self.path.is_empty() {
            true => file.to_string(),
            false => format!("{}/{file}", self.path),
        };
        StoreKey::new(key).ok()
    }

    /// The metadata document `file` of the node, parsed: `None` if there is none; a problem
    /// naming the document if it cannot be read (not a regular file, a store error) or is not
    /// valid JSON.
    pub fn read_json(&self, file: &str) -> Option<Result<Value, MetadataProblem>> {
        let fail = |problem: String| MetadataProblem {
            path: join_name(&self.name, file),
            problem,
        };
        let key = self.key(file)?;
        let bytes = match self.store.get(&key) {
            Ok(None) => return None,
            Ok(Some(bytes)) => bytes,
            Err(e) => {
                let problem = match NotAFile::of(&e) {
                    Some(not) => format!(
                        "is {}; zarr metadata must be a regular file",
                        not.kind.describe()
                    ),
                    None => format!("cannot read zarr metadata: {e}"),
                };
                return Some(Err(fail(problem)));
            }
        };
        Some(serde_json::from_slice(&bytes).map_err(|e| {
            fail(format!(
                "zarr metadata is truncated or not valid JSON ({e})"
            ))
        }))
    }

    /// The node's attributes (`attributes` of `zarr.json`, else `.zattrs`), if it has a
    /// readable document holding them; `None` otherwise (a lenient read: see
    /// [`Node::attributes_checked`]).
    pub fn attributes(&self) -> Option<Map<String, Value>> {
        if let Some(meta) = self.read_json("zarr.json") {
            return meta
                .ok()?
                .get("attributes")
                .and_then(Value::as_object)
                .cloned();
        }
        self.read_json(".zattrs")?.ok()?.as_object().cloned()
    }

    /// The node's attributes, empty if it has none; a problem names a metadata document that
    /// cannot be read as JSON.
    pub fn attributes_checked(&self) -> Result<Map<String, Value>, MetadataProblem> {
        let object = |v: Value| match v {
            Value::Object(o) => o,
            _ => Map::new(),
        };
        if let Some(meta) = self.read_json("zarr.json") {
            return Ok(meta?
                .get("attributes")
                .cloned()
                .map(object)
                .unwrap_or_default());
        }
        Ok(self
            .read_json(".zattrs")
            .transpose()?
            .map(object)
            .unwrap_or_default())
    }

    /// Whether the node is a zarr group (`.zgroup`, or `zarr.json` with `node_type: group`).
    pub fn is_group(&self) -> bool {
        self.node_type() == Some("group")
    }

    /// Whether the node is a zarr array (`.zarray`, or `zarr.json` with `node_type: array`).
    pub fn is_array(&self) -> bool {
        self.node_type() == Some("array")
    }

    /// `group` or `array` as the node's metadata says, `None` where it says neither.
    fn node_type(&self) -> Option<&'static str> {
        let zarr_json = self.read_json("zarr.json");
        if let Some(Ok(meta)) = &zarr_json {
            return match meta.get("node_type").and_then(Value::as_str) {
                Some("group") => Some("group"),
                Some("array") => Some("array"),
                _ => None,
            };
        }
        // An N5 array: no zarr metadata at all (`n5::is_n5_array`, without asking again).
        if self.has(".zarray") || (zarr_json.is_none() && crate::n5::has_n5_array_attributes(self))
        {
            return Some("array");
        }
        self.has(".zgroup").then_some("group")
    }

    /// Whether the node has a document `file` (a readable key).
    pub fn has(&self, file: &str) -> bool {
        self.key(file)
            .is_some_and(|k| matches!(self.store.size_key(&k), Ok(Some(_))))
    }

    /// The store prefix of everything at or below the node.
    fn prefix(&self) -> Result<StorePrefix, MetadataProblem> {
        match self.path.is_empty() {
            true => Ok(StorePrefix::root()),
            false => StorePrefix::new(format!("{}/", self.path)).map_err(|e| MetadataProblem {
                path: self.name.clone(),
                problem: e.to_string(),
            }),
        }
    }

    /// Whether anything is stored at or below the node.
    pub fn exists(&self) -> bool {
        self.prefix().is_ok_and(|prefix| {
            self.store
                .list_dir(&prefix)
                .is_ok_and(|d| !d.keys().is_empty() || !d.prefixes().is_empty())
        })
    }

    /// The names of the node's children (the sub-prefixes of its path), sorted.
    pub fn child_names(&self) -> Result<Vec<String>, MetadataProblem> {
        let prefix = self.prefix()?;
        let listing = self.store.list_dir(&prefix).map_err(|e| MetadataProblem {
            path: self.name.clone(),
            problem: format!("cannot list: {e}"),
        })?;
        let mut names: Vec<String> = listing
            .prefixes()
            .iter()
            .filter_map(|p| {
                p.as_str()
                    .trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .map(str::to_string)
            })
            .collect();
        names.sort();
        Ok(names)
    }
}

/// `name/child`, without doubling a `/`.
fn join_name(name: &str, child: &str) -> String {
    match name.ends_with('/') {
        true => format!("{name}{child}"),
        false => format!("{name}/{child}"),
    }
}
