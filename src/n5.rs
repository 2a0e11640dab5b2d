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
    !node.has("zarr.json") && !node.has(".zarray") && has_n5_array_attributes(node)
}

/// Whether `node`'s `attributes.json` describes an N5 array (`dimensions`, `dataType`),
/// whatever else the node holds (for callers that have looked for zarr metadata already).
pub(crate) fn has_n5_array_attributes(node: &Node) -> bool {
    matches!(
        node.read_json("attributes.json"),
        Some(Ok(Value::Object(a))) if a.contains_key("dimensions") && a.contains_key("dataType")
    )
}

/// The store to open an N5 array of `node`'s store through.
pub fn store(node: &Node) -> Arc<dyn ReadableStorageTraits> {
    let block_size = match node.read_json("attributes.json") {
        Some(Ok(attributes)) => attributes
            .get("blockSize")
            .and_then(Value::as_array)
            .map(|b| b.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    Arc::new(N5Store::new(Shared {
        inner: node.store().clone(),
        array: format!("{}/", node.node_path().trim_matches('/')),
        block_size,
    }))
}

/// Fails unless the N5 block `bytes` (of the array whose `blockSize` is `block_size`) has a
/// header of the array's rank whose sizes are within the block size: a header is what the
/// block decodes to, so one that claims more (a hostile or corrupt block) is refused before
/// anything is allocated for it.
fn check_block_header(
    key: &StoreKey,
    bytes: &[u8],
    block_size: &[u64],
) -> Result<(), StorageError> {
    let fail = |problem: String| StorageError::Other(format!("N5 block {key}: {problem}"));
    let ndim = block_size.len();
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(fail(format!(
            "{} bytes, shorter than its header",
            bytes.len()
        )));
    }
    let rank = u16::from_be_bytes([bytes[2], bytes[3]]) as usize;
    if rank != ndim {
        return Err(fail(format!(
            "its header has {rank} dimensions, the array {ndim}"
        )));
    }
    let dims: Vec<u64> = (0..ndim)
        .map(|d| {
            let at = 4 + 4 * d;
            u64::from(u32::from_be_bytes([
                bytes[at],
                bytes[at + 1],
                bytes[at + 2],
                bytes[at + 3],
            ]))
        })
        .collect();
    if dims.iter().zip(block_size).any(|(&n, &b)| n > b) {
        return Err(fail(format!(
            "its header claims a block of {dims:?}, more than the block size {block_size:?}"
        )));
    }
    Ok(())
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

/// A node's shared store as the sized store `N5Store` wraps: it fills in what `zarrs_n5` needs
/// of `attributes.json` ([`with_blosc_typesize`]) and checks every block header of the array
/// ([`check_block_header`]).
struct Shared {
    inner: Storage,
    /// The array's key prefix (`a/b/`).
    array: String,
    /// The array's `blockSize` (N5 order).
    block_size: Vec<u64>,
}

impl ReadableStorageTraits for Shared {
    fn get_partial_many<'a>(
        &'a self,
        key: &StoreKey,
        byte_ranges: ByteRangeIterator<'a>,
    ) -> Result<MaybeBytesIterator<'a>, StorageError> {
        let is_attributes = key.as_str().rsplit('/').next() == Some("attributes.json");
        if !is_attributes
            && !self.block_size.is_empty()
            && key.as_str().starts_with(self.array.as_str())
        {
            // A block of the array: read whole (N5 blocks are), header checked.
            let Some(bytes) = self.inner.get(key)? else {
                return Ok(None);
            };
            check_block_header(key, &bytes, &self.block_size)?;
            let parts: Vec<_> = byte_ranges
                .map(|range| slice(key, &bytes, range))
                .collect::<Result<_, _>>()?;
            return Ok(Some(Box::new(parts.into_iter().map(Ok))));
        }
        if is_attributes
            && let Some(bytes) = self.inner.get(key)?
            && let Some(fixed) = with_blosc_typesize(&bytes)
        {
            let whole = Bytes::from(fixed);
            let parts: Vec<_> = byte_ranges
                .map(|range| slice(key, &whole, range))
                .collect::<Result<_, _>>()?;
            return Ok(Some(Box::new(parts.into_iter().map(Ok))));
        }
        self.inner.get_partial_many(key, byte_ranges)
    }

    fn size_key(&self, key: &StoreKey) -> Result<Option<u64>, StorageError> {
        self.inner.size_key(key)
    }

    fn supports_get_partial(&self) -> bool {
        self.inner.supports_get_partial()
    }
}

/// The part `range` of `whole`.
fn slice(
    key: &StoreKey,
    whole: &Bytes,
    range: zarrs::storage::byte_range::ByteRange,
) -> Result<Bytes, StorageError> {
    let len = whole.len() as u64;
    let (start, end) = (range.start(len), range.end(len));
    match start <= end && end <= len {
        true => Ok(whole.slice(start as usize..end as usize)),
        false => Err(StorageError::Other(format!(
            "{key}: byte range {range} is outside its {len} bytes"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_headers_within_the_block_size_pass() {
        let key = StoreKey::new("a/0/0").unwrap();
        let block = |dims: &[u32]| {
            let mut b = vec![0u8, 0, 0, dims.len() as u8];
            for d in dims {
                b.extend_from_slice(&d.to_be_bytes());
            }
            b
        };
        assert!(check_block_header(&key, &block(&[4, 8]), &[4, 8]).is_ok());
        assert!(check_block_header(&key, &block(&[2, 8]), &[4, 8]).is_ok());
        let e = check_block_header(&key, &block(&[60000, 8]), &[4, 8])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("a/0/0") && e.contains("[60000, 8]") && e.contains("[4, 8]"),
            "{e}"
        );
        assert!(check_block_header(&key, &block(&[4]), &[4, 8]).is_err());
        assert!(check_block_header(&key, &[0, 0], &[4, 8]).is_err());
        assert_eq!(dtype_size("uint16"), Some(2));
    }
}
