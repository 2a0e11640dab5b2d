//! Resuming and sharing an output: an existing output is accepted only if its metadata equals
//! this run's ([`MaskOutput::check`]), a block is complete when all its chunks are stored
//! ([`MaskOutput::is_complete`]), and temporaries a killed run left are removed
//! ([`MaskOutput::remove_stale_temporaries`]).

use serde_json::Value;

use super::{METADATA_FILES, MaskOutput, chunk_indices};
use crate::blocks::{Block, Shard};
use crate::error::{Cause, Error, StorageError};
use zarrs::storage::{ListableStorageTraits, ReadableStorageTraits, StoreKey, StorePrefix};

use crate::store::{NotAFile, is_temporary};
use crate::volume::ZarrFormat;

impl MaskOutput {
    /// Checks, without writing, that this output can be written: the path is absent, an empty
    /// directory, or holds metadata equal to this run's (a run to resume, or a sibling shard's).
    /// Returns whether matching metadata was found.
    pub fn check(&self) -> Result<bool, Error> {
        let name = self.name();
        if let Some(root) = &self.local_root
            && root.exists()
            && !root.is_dir()
        {
            return Err(StorageError::OutputExists {
                path: name,
                problem: "is a file, not a directory".into(),
            }
            .into());
        }
        let read_error = |what: String, e: &dyn std::fmt::Display| -> Error {
            StorageError::Read {
                path: self.name(),
                what,
                message: Cause::text(e.to_string()),
            }
            .into()
        };
        let mut found = false;
        for doc in &self.documents {
            let key =
                StoreKey::new(doc.key.as_str()).map_err(|e| read_error(doc.key.clone(), &e))?;
            let bytes = match self.store.get(&key) {
                Ok(Some(bytes)) => bytes,
                Ok(None) => continue,
                Err(e) if NotAFile::of(&e).is_some() => {
                    return Err(StorageError::OutputExists {
                        path: name,
                        problem: format!("holds {} which is not a regular file", doc.key),
                    }
                    .into());
                }
                // A local path that cannot be read (a file in the way of a directory): the
                // write says why.
                Err(_) if self.local_root.is_some() => continue,
                Err(e) => return Err(read_error(format!("metadata {}", doc.key), &e)),
            };
            let existing: Value =
                serde_json::from_slice(&bytes).map_err(|e| StorageError::OutputExists {
                    path: name.clone(),
                    problem: format!("holds unreadable metadata {}: {e}", doc.key),
                })?;
            if let Some(difference) = first_difference(&existing, &doc.value, "") {
                return Err(StorageError::OutputMismatch {
                    path: name,
                    file: doc.key.clone(),
                    difference,
                }
                .into());
            }
            found = true;
        }
        // Metadata of the other zarr format, or files that are not ours, mean someone else's
        // data: refuse it. (Sub-directories, and the temporaries the store hides, are expected
        // while sibling shards create the output.)
        let mut prefixes = vec![StorePrefix::root()];
        if !self.dataset.is_empty() {
            prefixes.push(
                StorePrefix::new(self.dataset.as_str())
                    .map_err(|e| read_error(self.dataset.clone(), &e))?,
            );
        }
        for prefix in prefixes {
            let listing = match self.store.list_dir(&prefix) {
                Ok(listing) => listing,
                // A local directory that is not there yet.
                Err(_) if self.local_root.is_some() => continue,
                Err(e) => return Err(read_error("(listing)".into(), &e)),
            };
            for key in listing.keys() {
                let key = key.as_str();
                let file_name = key.rsplit('/').next().unwrap_or(key);
                if is_temporary(file_name) || self.documents.iter().any(|d| d.key == key) {
                    continue;
                }
                let problem = if METADATA_FILES.contains(&file_name) {
                    format!(
                        "holds zarr metadata {key} that this run (zarr v{}) would not write",
                        self.format.number()
                    )
                } else {
                    format!("is not empty and not a mask output (found {key})")
                };
                return Err(StorageError::OutputExists {
                    path: name.clone(),
                    problem,
                }
                .into());
            }
        }
        Ok(found)
    }

    /// Whether every chunk of `block` is stored (and so complete: chunks are written atomically).
    pub fn is_complete(&self, block: &Block) -> Result<bool, Error> {
        for j in 0..self.channel_chunks() {
            let key = self.array.chunk_key(&chunk_indices(j, block));
            let present = self
                .array
                .storage()
                .size_key(&key)
                .map_err(|e| self.read_error(block, e))?
                .is_some();
            if !present {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn read_error(
        &self,
        block: &Block,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        StorageError::Read {
            path: self.name(),
            what: format!("output chunk {:?}", block.chunk),
            message: Cause::error(e),
        }
        .into()
    }

    /// Removes the temporary files of the chunks of `shard` (the chunks no other shard writes)
    /// that dead writers left ([`crate::store::is_stale`], for a run started at `run_start`);
    /// returns how many. A live writer's temporary file is left alone, and so are temporary
    /// metadata files: a sibling shard may be writing them right now.
    pub fn remove_stale_temporaries(
        &self,
        shard: Shard,
        run_start: std::time::SystemTime,
    ) -> Result<usize, Error> {
        let store = &self.store;
        let num_blocks = self.grid.num_blocks();
        let listing_error = |e: zarrs::storage::StorageError| {
            self.write_error("(listing temporaries)".to_string(), Cause::error(e))
        };
        let mut removed = 0;
        for temporary in store
            .temporaries(&StorePrefix::root())
            .map_err(listing_error)?
        {
            let Some(chunk) = self.chunk_of(temporary.destination.as_str()) else {
                continue;
            };
            let mine = self
                .grid
                .number_of(&chunk[1..])
                .is_some_and(|k| shard.contains(k, num_blocks));
            let file_name = temporary
                .key
                .as_str()
                .rsplit('/')
                .next()
                .unwrap_or_default();
            if mine && crate::store::is_stale(file_name, temporary.modified, run_start) {
                // `false`: renamed or removed meanwhile by its writer or another run: fine.
                if store.remove_temporary(&temporary).map_err(|e| {
                    self.write_error(
                        format!(
                            "(removing stale temporary {})",
                            self.root.join(temporary.key.as_str()).display()
                        ),
                        Cause::error(e),
                    )
                })? {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// The chunk indices of the chunk `key` (relative to the output's root), if it is one of this
    /// array's chunk keys.
    fn chunk_of(&self, key: &str) -> Option<Vec<u64>> {
        let key = key.strip_prefix(self.dataset.as_str())?;
        let mut parts: Vec<&str> = key.split('/').collect();
        if self.format == ZarrFormat::V3 {
            if parts.first() != Some(&"c") {
                return None;
            }
            parts.remove(0);
        }
        let indices: Vec<u64> = parts
            .iter()
            .map(|p| p.parse().ok())
            .collect::<Option<_>>()?;
        (indices.len() == self.shape.len()).then_some(indices)
    }
}

/// Where two JSON documents first differ, as `a.b[2]: existing X, this run Y`.
fn first_difference(existing: &Value, expected: &Value, at: &str) -> Option<String> {
    let here = || if at.is_empty() { "(document)" } else { at };
    match (existing, expected) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|k| {
                let path = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => first_difference(x, y, &path),
                    (Some(x), None) => Some(format!("{path}: existing {x}, this run has none")),
                    (None, Some(y)) => Some(format!("{path}: existing has none, this run {y}")),
                    (None, None) => None,
                }
            })
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (x, y))| first_difference(x, y, &format!("{at}[{i}]"))),
        (a, b) if a == b => None,
        (a, b) => Some(format!("{}: existing {a}, this run {b}", here())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn first_difference_names_the_path() {
        let a = json!({"attributes": {"policy": "per-voxel", "ids": [1, 2]}});
        let b = json!({"attributes": {"policy": "whole-channel", "ids": [1, 2]}});
        let d = first_difference(&a, &b, "").unwrap();
        assert!(
            d.starts_with("attributes.policy: existing \"per-voxel\""),
            "{d}"
        );
        assert_eq!(first_difference(&a, &a, ""), None);
        let c = json!({"attributes": {"policy": "per-voxel", "ids": [1, 3]}});
        assert!(
            first_difference(&a, &c, "")
                .unwrap()
                .starts_with("attributes.ids[1]")
        );
        let d = first_difference(&json!({"x": 1}), &json!({}), "").unwrap();
        assert!(d.contains("this run has none"), "{d}");
    }
}
