//! N5 label arrays (read-only): an `attributes.json` with `dimensions`, `blockSize`, `dataType`
//! and `compression` (raw, gzip, bzip2, blosc, zstd), read through the maintained `zarrs_n5`
//! crate's `N5Store`, which presents the array to zarrs as zarr v3 metadata with its N5 block
//! codec. N5 lists axes fastest first (`x, y, z`), so the array zarrs sees is the reverse of the
//! zarr view every N5 tool shows (zarr-python's `N5Store`, z5py, funlib): [`LabelVolume`]
//! reverses it back (shape, chunks, every region read) and reads funlib's `resolution` and
//! `offset` (written in N5 order) reversed too, so an N5 array and the same data as zarr give
//! the same mask and geometry. Edge blocks may be stored truncated (Java N5, z5) or padded to
//! the block size (zarr-python, tensorstore); both are read. Output stays zarr.
//!
//! [`LabelVolume`]: crate::volume::LabelVolume

use std::sync::Arc;

use serde_json::{Map, Value};
use zarrs::storage::byte_range::ByteRangeIterator;
use zarrs::storage::{Bytes, MaybeBytesIterator, ReadableStorageTraits, StorageError, StoreKey};
use zarrs_n5::N5Store;

use crate::node::{Node, Storage};

/// Whether `node` is an N5 array: an `attributes.json` with `dimensions` and `dataType`, and no
/// zarr metadata.
pub fn is_n5_array(node: &Node) -> bool {
    if node.has("zarr.json") || node.has(".zarray") {
        return false;
    }
    matches!(
        node.read_json("attributes.json"),
        Some(Ok(Value::Object(a))) if a.contains_key("dimensions") && a.contains_key("dataType")
    )
}

/// The store to open an N5 array of `node`'s store through.
pub fn store(node: &Node) -> Arc<dyn ReadableStorageTraits> {
    Arc::new(N5Store::new(Shared(node.store().clone())))
}

/// The attributes of an N5 array in zarr (reversed) axis order: `resolution`, `offset`,
/// `axis_names` and `units` reversed where they list one value per axis; `_n5` (the converted
/// metadata `zarrs_n5` adds) dropped.
pub fn zarr_order_attributes(attributes: &Map<String, Value>, ndim: usize) -> Map<String, Value> {
    let mut out = attributes.clone();
    out.remove("_n5");
    for key in ["resolution", "offset", "axis_names", "units"] {
        if let Some(Value::Array(values)) = out.get_mut(key)
            && values.len() == ndim
        {
            values.reverse();
        }
    }
    out
}

/// The bytes of a dtype N5 names (`uint16`, ...).
fn dtype_size(name: &str) -> Option<u64> {
    let digits: String = name.chars().filter(char::is_ascii_digit).collect();
    digits.parse::<u64>().ok().map(|bits| bits / 8)
}

/// An N5 `attributes.json` as `zarrs_n5` can convert it: a shuffled blosc `compression`
/// without `typesize` (the N5 blosc writers store none: blosc's own header holds it) gets the
/// dtype's size, which `zarrs_n5` 0.2 requires. Anything else is returned unchanged.
fn with_blosc_typesize(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut value: Value = serde_json::from_slice(bytes).ok()?;
    let size = dtype_size(value.get("dataType")?.as_str()?)?;
    let compression = value.get_mut("compression")?.as_object_mut()?;
    if compression.get("type")?.as_str()? != "blosc" || compression.contains_key("typesize") {
        return None;
    }
    compression.insert("typesize".into(), size.into());
    serde_json::to_vec(&value).ok()
}

/// A node's shared store as the sized store `N5Store` wraps (filling in what `zarrs_n5` needs
/// of `attributes.json`: [`with_blosc_typesize`]).
struct Shared(Storage);

impl ReadableStorageTraits for Shared {
    fn get_partial_many<'a>(
        &'a self,
        key: &StoreKey,
        byte_ranges: ByteRangeIterator<'a>,
    ) -> Result<MaybeBytesIterator<'a>, StorageError> {
        if key.as_str().rsplit('/').next() == Some("attributes.json")
            && let Some(bytes) = self.0.get(key)?
            && let Some(fixed) = with_blosc_typesize(&bytes)
        {
            let whole = Bytes::from(fixed);
            let parts = byte_ranges
                .map(|range| {
                    let start =
                        usize::try_from(range.start(whole.len() as u64)).unwrap_or(usize::MAX);
                    let end = usize::try_from(range.end(whole.len() as u64)).unwrap_or(usize::MAX);
                    whole
                        .get(start..end)
                        .map(|_| whole.slice(start..end))
                        .ok_or_else(|| {
                            StorageError::Other(format!(
                                "{key}: byte range {range} is out of bounds"
                            ))
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Some(Box::new(parts.into_iter().map(Ok))));
        }
        self.0.get_partial_many(key, byte_ranges)
    }

    fn size_key(&self, key: &StoreKey) -> Result<Option<u64>, StorageError> {
        self.0.size_key(key)
    }

    fn supports_get_partial(&self) -> bool {
        self.0.supports_get_partial()
    }
}
