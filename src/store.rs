//! [`AtomicStore`]: a zarr store whose every write is atomic (SPEC 6); [`filesystem_output`]
//! makes one over a local directory, [`remote_output`] over an object store.
//!
//! `zarrs`' `FilesystemStore::set` writes the destination file in place, so a process killed
//! mid-write leaves a truncated chunk that looks complete. This store writes each value to a
//! temporary sibling file, flushes it to disk and renames it over the destination: a reader (or
//! a resumed run) sees either no file or the whole value, never a part of it.
//!
//! Temporary files are named `<key file name>.tmp-<host>-<pid>-<counter>-<nanos>`. No zarr key
//! has that shape (chunk keys are integers, metadata keys are fixed names), so a leftover
//! temporary file from a killed run is never taken for a chunk; [`is_temporary`] recognises it
//! and [`crate::output::MaskOutput::remove_stale_temporaries`] removes those of a run's own
//! chunks that are provably stale ([`is_stale`]): a live writer's temporary (another run of the
//! same shard, resubmitted while the first is alive) is never removed.
//!
//! ```
//! use std::sync::Arc;
//! use annomask::store::filesystem_output;
//! use zarrs::storage::{ReadableStorageTraits, StoreKey, WritableStorageTraits};
//! let dir = tempfile::tempdir()?;
//! let store = filesystem_output(dir.path())?;
//! let key = StoreKey::new("c/0/0")?;
//! store.set(&key, vec![1u8, 2, 3].into())?;
//! assert_eq!(store.get(&key)?.unwrap().as_ref(), &[1, 2, 3]);
//! // nothing but the value itself is left behind
//! let files: Vec<_> = std::fs::read_dir(dir.path().join("c"))?.collect();
//! assert_eq!(files.len(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use zarrs::filesystem::{FilesystemStore, FilesystemStoreCreateError};
use zarrs::storage::byte_range::ByteRangeIterator;
use zarrs::storage::{
    Bytes, ListableStorageTraits, MaybeBytesIterator, OffsetBytesIterator, ReadableStorageTraits,
    StorageError, StoreKey, StoreKeys, StoreKeysPrefixes, StorePrefix, WritableStorageTraits,
};

/// The marker between a key's file name and the rest of a temporary file's name.
const TEMP_MARKER: &str = ".tmp-";

/// Whether a file name is that of a temporary file of [`filesystem_output`].
///
/// ```
/// use annomask::store::is_temporary;
/// assert!(is_temporary("0.tmp-4242-0-1732550000000000000"));
/// assert!(!is_temporary("0") && !is_temporary("zarr.json"));
/// ```
pub fn is_temporary(file_name: &str) -> bool {
    file_name.contains(TEMP_MARKER)
}

/// How long a temporary file must have been left untouched before any run may take it for a
/// dead writer's, whatever its host and process: a live writer renames its temporary file
/// within one chunk write.
pub const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(600);

/// This machine's host name as it goes into temporary file names (letters, digits, `.`, `_`).
fn this_host() -> &'static str {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "localhost".into());
        name.trim()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    })
}

/// Whether process `pid` is alive on this machine (on systems without `/proc`: assumed alive).
fn process_alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    !proc.is_dir() || proc.join(pid.to_string()).exists()
}

/// The writer of a temporary file name: its host (`None` in names written before hosts were
/// recorded) and process id.
fn writer_of(file_name: &str) -> Option<(Option<&str>, u32)> {
    let at = file_name.find(TEMP_MARKER)?;
    let tail = &file_name[at + TEMP_MARKER.len()..];
    // `[host-]pid-counter-nanos`: the last three fields are numbers, the host may hold `-`s.
    let mut fields = tail.rsplitn(4, '-');
    let (_nanos, _counter) = (fields.next()?, fields.next()?);
    let pid = fields.next()?.parse().ok()?;
    Some((fields.next(), pid))
}

/// Whether the temporary file `file_name`, last modified at `modified`, is provably left by a
/// dead writer, so a run that started at `run_start` may remove it: it is not this process's,
/// and either its writer was a process on this machine that is no longer alive, or it has not
/// been touched for [`STALE_AFTER`] before the run started.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use annomask::store::{is_stale, STALE_AFTER};
/// let now = SystemTime::now();
/// let mine = format!("0.tmp-{}-0-1", std::process::id());
/// assert!(!is_stale(&mine, now - 2 * STALE_AFTER, now));
/// // another host's fresh temporary: its writer may be alive
/// assert!(!is_stale("0.tmp-elsewhere-1-0-1", now, now));
/// assert!(is_stale("0.tmp-elsewhere-1-0-1", now - 2 * STALE_AFTER, now));
/// ```
pub fn is_stale(
    file_name: &str,
    modified: std::time::SystemTime,
    run_start: std::time::SystemTime,
) -> bool {
    let Some((host, pid)) = writer_of(file_name) else {
        return false;
    };
    let here = host.is_none_or(|h| h == this_host());
    if here && pid == std::process::id() {
        return false;
    }
    let untouched = run_start
        .checked_sub(STALE_AFTER)
        .is_some_and(|limit| modified < limit);
    untouched || (here && !process_alive(pid))
}

/// The destination file name of a temporary file name (`0.tmp-1-2-3` -> `0`), or `None` if the
/// name is not a temporary one.
pub fn destination_of(file_name: &str) -> Option<&str> {
    file_name.find(TEMP_MARKER).map(|at| &file_name[..at])
}

/// A temporary value a writer left in a store, and what it was for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Temporary {
    /// The temporary's own key (`c/0/0.tmp-<host>-<pid>-<counter>-<nanos>`).
    pub key: StoreKey,
    /// The key it was to become (`c/0/0`).
    pub destination: StoreKey,
    /// When it was last written.
    pub modified: std::time::SystemTime,
}

/// How a store makes one value appear whole, and what a killed writer of it leaves behind: the
/// strategy an [`AtomicStore`] applies over its inner store.
pub trait Commit: Send + Sync + std::fmt::Debug {
    /// Writes `value` at `key` so that a reader sees the key absent or whole, never a part.
    fn commit(&self, key: &StoreKey, value: &[u8]) -> Result<(), StorageError>;

    /// The temporaries under `prefix` that writers (dead or alive) left.
    fn temporaries(&self, prefix: &StorePrefix) -> Result<Vec<Temporary>, StorageError>;

    /// Removes a temporary; `false` if it was gone already (renamed or removed meanwhile).
    fn remove(&self, temporary: &Temporary) -> Result<bool, StorageError>;
}

/// The filesystem's [`Commit`]: a temporary sibling file, `fsync`, rename.
#[derive(Debug)]
pub struct RenameCommit {
    files: FilesystemStore,
}

impl Commit for RenameCommit {
    fn commit(&self, key: &StoreKey, value: &[u8]) -> Result<(), StorageError> {
        write_atomically(&self.files.key_to_fspath(key), value).map_err(StorageError::from)
    }

    fn temporaries(&self, prefix: &StorePrefix) -> Result<Vec<Temporary>, StorageError> {
        let mut found = Vec::new();
        for key in self.files.list_prefix(prefix)? {
            let Some(destination) = destination_of(key.as_str()) else {
                continue;
            };
            let Ok(destination) = StoreKey::new(destination) else {
                continue;
            };
            let Ok(meta) = std::fs::metadata(self.files.key_to_fspath(&key)) else {
                continue; // renamed or removed since the listing
            };
            let modified = meta
                .modified()
                .unwrap_or_else(|_| std::time::SystemTime::now());
            found.push(Temporary {
                key,
                destination,
                modified,
            });
        }
        Ok(found)
    }

    fn remove(&self, temporary: &Temporary) -> Result<bool, StorageError> {
        match std::fs::remove_file(self.files.key_to_fspath(&temporary.key)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

/// The [`Commit`] of a store whose every `set` is atomic already (an object store: a PUT
/// appears whole or not at all). It leaves no temporaries.
#[derive(Debug)]
pub struct DirectCommit<S: ?Sized> {
    inner: Arc<S>,
}

impl<S: ?Sized> DirectCommit<S> {
    /// The commit of `inner`, whose `set` must be atomic.
    pub fn new(inner: Arc<S>) -> Self {
        Self { inner }
    }
}

impl<S: ?Sized + WritableStorageTraits + std::fmt::Debug> Commit for DirectCommit<S> {
    fn commit(&self, key: &StoreKey, value: &[u8]) -> Result<(), StorageError> {
        self.inner.set(key, Bytes::copy_from_slice(value))
    }

    fn temporaries(&self, _prefix: &StorePrefix) -> Result<Vec<Temporary>, StorageError> {
        Ok(Vec::new())
    }

    fn remove(&self, _temporary: &Temporary) -> Result<bool, StorageError> {
        Ok(false)
    }
}

/// A storage adapter (in the manner of zarrs' `storage_adapter` modules) over any writable
/// zarrs store: reads and listings pass through (temporaries hidden), every write goes through
/// the store's [`Commit`], so a key is absent or complete — the guarantee `--resume` and
/// shards rest on — and what killed writers left can be listed and removed through the store
/// ([`AtomicStore::temporaries`]).
#[derive(Debug)]
pub struct AtomicStore<S: ?Sized> {
    inner: Arc<S>,
    commit: Box<dyn Commit>,
}

impl<S: ?Sized> AtomicStore<S> {
    /// `inner`, written through `commit`.
    pub fn with_commit(inner: Arc<S>, commit: Box<dyn Commit>) -> Self {
        Self { inner, commit }
    }

    /// The inner store.
    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }

    /// The temporaries under `prefix` that writers left (see [`Commit::temporaries`]).
    pub fn temporaries(&self, prefix: &StorePrefix) -> Result<Vec<Temporary>, StorageError> {
        self.commit.temporaries(prefix)
    }

    /// Removes a temporary; `false` if it was gone already.
    pub fn remove_temporary(&self, temporary: &Temporary) -> Result<bool, StorageError> {
        self.commit.remove(temporary)
    }
}

/// The store an output is written through: any readable, writable, listable zarrs store
/// behind its [`Commit`].
pub type OutputStore = AtomicStore<dyn zarrs::storage::ReadableWritableListableStorageTraits>;

/// An [`OutputStore`] over the local directory `base` (temporary file + rename).
pub fn filesystem_output(
    base: impl AsRef<Path>,
) -> Result<OutputStore, FilesystemStoreCreateError> {
    let base = base.as_ref();
    let commit = RenameCommit {
        files: FilesystemStore::new(base)?,
    };
    Ok(AtomicStore::with_commit(
        Arc::new(FilesystemStore::new(base)?),
        Box::new(commit),
    ))
}

/// An [`OutputStore`] over an object store, whose every PUT is atomic ([`DirectCommit`]).
pub fn remote_output(store: Arc<crate::remote::RemoteStore>) -> OutputStore {
    let commit = DirectCommit::new(store.clone());
    AtomicStore::with_commit(store, Box::new(commit))
}

/// Writes `value` to `path` atomically: temporary sibling, `fsync`, rename. A temporary file
/// removed by someone else before the rename (a run that took it for a dead one's) is written
/// again: a race with another writer never fails the write.
pub fn write_atomically(path: &Path, value: &[u8]) -> std::io::Result<()> {
    let mut attempt = 0;
    loop {
        match write_once(path, value) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt < 3 => attempt += 1,
            other => return other,
        }
    }
}

fn write_once(path: &Path, value: &[u8]) -> std::io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let name = path
        .file_name()
        .map_or_else(|| "value".into(), |n| n.to_string_lossy().into_owned());
    let temp = parent.join(format!(
        "{name}{TEMP_MARKER}{}-{}-{}-{nanos}",
        this_host(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(value)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

impl<S: ?Sized + ReadableStorageTraits> ReadableStorageTraits for AtomicStore<S> {
    fn get_partial_many<'a>(
        &'a self,
        key: &StoreKey,
        byte_ranges: ByteRangeIterator<'a>,
    ) -> Result<MaybeBytesIterator<'a>, StorageError> {
        self.inner.get_partial_many(key, byte_ranges)
    }

    fn size_key(&self, key: &StoreKey) -> Result<Option<u64>, StorageError> {
        self.inner.size_key(key)
    }

    fn supports_get_partial(&self) -> bool {
        self.inner.supports_get_partial()
    }
}

impl<S: ?Sized + ReadableStorageTraits + WritableStorageTraits> WritableStorageTraits
    for AtomicStore<S>
{
    fn set(&self, key: &StoreKey, value: Bytes) -> Result<(), StorageError> {
        self.commit.commit(key, &value)
    }

    fn set_partial_many(
        &self,
        key: &StoreKey,
        offset_values: OffsetBytesIterator,
    ) -> Result<(), StorageError> {
        // Read, patch, and write the whole value back atomically.
        let mut value = self.inner.get(key)?.map(|b| b.to_vec()).unwrap_or_default();
        for (offset, bytes) in offset_values {
            let offset = usize::try_from(offset)
                .map_err(|_| StorageError::Other(format!("offset {offset} is too large")))?;
            if value.len() < offset + bytes.len() {
                value.resize(offset + bytes.len(), 0);
            }
            value[offset..offset + bytes.len()].copy_from_slice(&bytes);
        }
        self.set(key, value.into())
    }

    fn erase(&self, key: &StoreKey) -> Result<(), StorageError> {
        self.inner.erase(key)
    }

    fn erase_prefix(&self, prefix: &StorePrefix) -> Result<(), StorageError> {
        self.inner.erase_prefix(prefix)
    }

    fn supports_set_partial(&self) -> bool {
        false
    }
}

impl<S: ?Sized + ListableStorageTraits> ListableStorageTraits for AtomicStore<S> {
    fn list(&self) -> Result<StoreKeys, StorageError> {
        Ok(self
            .inner
            .list()?
            .into_iter()
            .filter(|k| !is_temporary(k.as_str()))
            .collect())
    }

    fn list_prefix(&self, prefix: &StorePrefix) -> Result<StoreKeys, StorageError> {
        Ok(self
            .inner
            .list_prefix(prefix)?
            .into_iter()
            .filter(|k| !is_temporary(k.as_str()))
            .collect())
    }

    fn list_dir(&self, prefix: &StorePrefix) -> Result<StoreKeysPrefixes, StorageError> {
        let listed = self.inner.list_dir(prefix)?;
        let keys = listed
            .keys()
            .iter()
            .filter(|k| !is_temporary(k.as_str()))
            .cloned()
            .collect();
        Ok(StoreKeysPrefixes::new(keys, listed.prefixes().clone()))
    }

    fn size_prefix(&self, prefix: &StorePrefix) -> Result<u64, StorageError> {
        self.inner.size_prefix(prefix)
    }
}

/// A read-only filesystem store that reads regular files only: a FIFO, a device or a directory
/// where a key's file should be is an error naming it, never a read that blocks forever.
#[derive(Debug)]
pub struct RegularFileStore {
    inner: FilesystemStore,
}

impl RegularFileStore {
    /// A store rooted at `base`.
    pub fn new(base: impl AsRef<Path>) -> Result<Self, FilesystemStoreCreateError> {
        Ok(Self {
            inner: FilesystemStore::new(base)?,
        })
    }

    /// Fails with a [`NotAFile`] unless `key` is absent or a regular file (symbolic links
    /// followed).
    fn check(&self, key: &StoreKey) -> Result<(), StorageError> {
        let path = self.inner.key_to_fspath(key);
        match std::fs::metadata(&path) {
            Ok(meta) if !meta.is_file() => {
                let kind = match meta.is_dir() {
                    true => NotAFileKind::Directory,
                    false => NotAFileKind::Special,
                };
                let not = NotAFile {
                    path,
                    key: key.as_str().to_string(),
                    kind,
                };
                let io = std::io::Error::new(std::io::ErrorKind::InvalidInput, not);
                Err(StorageError::IOError(std::sync::Arc::new(io)))
            }
            _ => Ok(()),
        }
    }
}

/// What [`RegularFileStore`] found where a key's file should be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotAFileKind {
    /// A directory.
    Directory,
    /// A FIFO, socket or device.
    Special,
}

impl NotAFileKind {
    /// `a directory`, or `not a regular file (a FIFO, socket or device)`.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Directory => "a directory",
            Self::Special => "not a regular file (a FIFO, socket or device)",
        }
    }
}

/// The error of [`RegularFileStore`] for a key whose file is a directory, FIFO, socket or
/// device (carried in a zarrs `StorageError::IOError`; [`NotAFile::of`] finds it again).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} is {}, where the key {key} should be a file", path.display(), kind.describe())]
pub struct NotAFile {
    /// The file.
    pub path: PathBuf,
    /// The key.
    pub key: String,
    /// What it is instead.
    pub kind: NotAFileKind,
}

impl NotAFile {
    /// The [`NotAFile`] inside a zarrs storage error, if that is what it is.
    pub fn of(error: &StorageError) -> Option<&NotAFile> {
        match error {
            StorageError::IOError(io) => io.get_ref()?.downcast_ref(),
            _ => None,
        }
    }
}

impl ReadableStorageTraits for RegularFileStore {
    fn get_partial_many<'a>(
        &'a self,
        key: &StoreKey,
        byte_ranges: ByteRangeIterator<'a>,
    ) -> Result<MaybeBytesIterator<'a>, StorageError> {
        self.check(key)?;
        self.inner.get_partial_many(key, byte_ranges)
    }

    fn size_key(&self, key: &StoreKey) -> Result<Option<u64>, StorageError> {
        self.check(key)?;
        self.inner.size_key(key)
    }

    fn supports_get_partial(&self) -> bool {
        self.inner.supports_get_partial()
    }
}

impl ListableStorageTraits for RegularFileStore {
    fn list(&self) -> Result<StoreKeys, StorageError> {
        self.inner.list()
    }

    fn list_prefix(&self, prefix: &StorePrefix) -> Result<StoreKeys, StorageError> {
        self.inner.list_prefix(prefix)
    }

    fn list_dir(&self, prefix: &StorePrefix) -> Result<StoreKeysPrefixes, StorageError> {
        self.inner.list_dir(prefix)
    }

    fn size_prefix(&self, prefix: &StorePrefix) -> Result<u64, StorageError> {
        self.inner.size_prefix(prefix)
    }
}

/// A path or `file://` URL as a local path (the caller has told it from an object-store URL
/// with [`crate::remote::StoreUrl::parse`]).
///
/// ```
/// use annomask::store::local_path;
/// use std::path::PathBuf;
/// assert_eq!(local_path("file:///data/crop.zarr"), PathBuf::from("/data/crop.zarr"));
/// assert_eq!(local_path("crop.zarr"), PathBuf::from("crop.zarr"));
/// ```
pub fn local_path(text: &str) -> PathBuf {
    PathBuf::from(text.strip_prefix("file://").unwrap_or(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replace_atomically_and_leave_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let store = filesystem_output(dir.path()).unwrap();
        let key = StoreKey::new("a/b/0").unwrap();
        store.set(&key, vec![1u8; 10].into()).unwrap();
        store.set(&key, vec![2u8; 3].into()).unwrap();
        assert_eq!(store.get(&key).unwrap().unwrap().as_ref(), &[2, 2, 2]);
        let names: Vec<String> = std::fs::read_dir(dir.path().join("a/b"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["0"]);
    }

    #[test]
    fn temporaries_are_hidden_from_listings() {
        let dir = tempfile::tempdir().unwrap();
        let store = filesystem_output(dir.path()).unwrap();
        store
            .set(&StoreKey::new("c/0").unwrap(), vec![1u8].into())
            .unwrap();
        std::fs::write(dir.path().join("c/1.tmp-1-2-3"), b"partial").unwrap();
        let keys: Vec<String> = store
            .list()
            .unwrap()
            .iter()
            .map(|k| k.as_str().to_string())
            .collect();
        assert_eq!(keys, ["c/0"]);
        assert_eq!(destination_of("1.tmp-1-2-3"), Some("1"));
        assert_eq!(destination_of("1"), None);
        assert_eq!(writer_of("1.tmp-1-2-3"), Some((None, 1)));
        assert_eq!(writer_of("1.tmp-a-b.c-7-2-3"), Some((Some("a-b.c"), 7)));
        assert_eq!(writer_of("1.tmp-x"), None);
    }

    #[test]
    fn partial_writes_patch_the_whole_value() {
        let dir = tempfile::tempdir().unwrap();
        let store = filesystem_output(dir.path()).unwrap();
        let key = StoreKey::new("k").unwrap();
        store.set(&key, vec![0u8; 4].into()).unwrap();
        store.set_partial(&key, 2, vec![7u8, 7, 7].into()).unwrap();
        assert_eq!(store.get(&key).unwrap().unwrap().as_ref(), &[0, 0, 7, 7, 7]);
    }
}
