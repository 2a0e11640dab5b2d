//! Reading a region of a label array chunk by chunk, checking every chunk it touches.
//!
//! `zarrs` checks a chunk's decoded size only when it decodes the whole chunk; reading part of
//! a chunk (an edge block, an ROI across chunk borders) takes byte ranges of whatever is stored,
//! so a truncated chunk, one written with another dtype or random bytes would be read as
//! labels. Here every chunk a region touches is decoded whole, where its size is checked (and
//! its compressed stream bounded, see [`crate::bounded_codecs`]), and the part inside the
//! region is copied out. A chunk that decodes to more than the memory budget's chunk limit is
//! read in part only when that is safe to check: stored uncompressed (its stored size must be
//! exactly its decoded size) or in shards (the shard index locates each inner chunk, which is
//! decoded whole); any other such chunk is refused, naming it and the limit. Every error names
//! the chunk's key.

use ndarray::{ArrayD, IxDyn, SliceInfoElem};
use rayon::prelude::*;
use zarrs::array::chunk_cache::{ChunkCache, ChunkCacheDecodedLruSizeLimit};
use zarrs::array::codec::{BytesCodec, ShardingCodec};
use zarrs::array::{Array, ArraySubset, CodecOptions};
use zarrs::storage::ReadableStorageTraits;

use crate::budget::human_bytes;
use crate::error::{Cause, Error, StorageError};
use crate::geometry::VoxelRegion;
use crate::label::Label;

/// What the reader needs of a label array.
pub(crate) struct ChunkSource<'a> {
    /// The path as errors print it.
    pub name: &'a str,
    pub array: &'a Array<dyn ReadableStorageTraits>,
    pub cache: Option<&'a ChunkCacheDecodedLruSizeLimit>,
    /// The largest decoded chunk read whole (bytes).
    pub chunk_limit: u64,
    /// The array is in an object store: read the chunks of a region on the I/O pool
    /// ([`crate::remote::io_pool`]), many requests in flight, not on the cores' pool.
    pub remote: bool,
}

/// How the chunks of an array can be read in part.
fn partial_reads_are_checked(array: &Array<dyn ReadableStorageTraits>) -> (bool, bool) {
    let codecs = array.codecs();
    let to_bytes = codecs.array_to_bytes_codec().as_any();
    let raw = codecs.array_to_array_codecs().is_empty()
        && codecs.bytes_to_bytes_codecs().is_empty()
        && to_bytes.is::<BytesCodec>();
    let sharded = to_bytes.is::<ShardingCodec>();
    (raw, sharded)
}

impl ChunkSource<'_> {
    fn error(&self, what: String, message: impl Into<Cause>) -> Error {
        StorageError::Read {
            path: self.name.to_string(),
            what,
            message: message.into(),
        }
        .into()
    }

    /// `chunk <key>`, the key relative to the array (as its store is rooted anywhere above it).
    fn chunk_name(&self, chunk: &[u64]) -> String {
        let key = self.array.chunk_key(chunk);
        let node = self.array.path().as_str().trim_matches('/');
        let relative = match node.is_empty() {
            true => key.as_str(),
            false => key
                .as_str()
                .strip_prefix(node)
                .and_then(|k| k.strip_prefix('/'))
                .unwrap_or(key.as_str()),
        };
        format!("chunk {relative}")
    }

    /// Reads `region` (inside the array) as labels of type `T`.
    pub fn read<T: Label>(&self, region: &VoxelRegion) -> Result<ArrayD<T>, Error> {
        let describe = || format!("voxels start {:?} shape {:?}", region.start, region.shape);
        let subset = ArraySubset::new_with_start_shape(region.start.clone(), region.shape.clone())
            .map_err(|e| self.error(describe(), Cause::error(e)))?;
        let chunks = self
            .array
            .chunks_in_array_subset(&subset)
            .map_err(|e| self.error(describe(), Cause::error(e)))?
            .ok_or_else(|| self.error(describe(), "the chunk grid does not cover the region"))?;
        let indices: Vec<Vec<u64>> = chunks.indices().into_iter().map(|c| c.to_vec()).collect();
        if let [chunk] = indices.as_slice() {
            let chunk_subset = self
                .array
                .chunk_subset(chunk)
                .map_err(|e| self.error(self.chunk_name(chunk), Cause::error(e)))?;
            if chunk_subset == subset {
                return Ok(self.read_part(chunk, &chunk_subset, &chunk_subset)?.data);
            }
        }
        let shape: Vec<usize> = region
            .shape
            .iter()
            .map(|&s| usize::try_from(s))
            .collect::<Result<_, _>>()
            .map_err(|e| self.error(describe(), Cause::error(e)))?;
        let read_all = || {
            indices
                .par_iter()
                .map(|chunk| {
                    let chunk_subset = self
                        .array
                        .chunk_subset(chunk)
                        .map_err(|e| self.error(self.chunk_name(chunk), Cause::error(e)))?;
                    let inside = chunk_subset
                        .overlap(&subset)
                        .map_err(|e| self.error(self.chunk_name(chunk), Cause::error(e)))?;
                    let part = self.read_part::<T>(chunk, &chunk_subset, &inside)?;
                    Ok((inside, part))
                })
                .collect::<Result<Vec<(ArraySubset, Part<T>)>, Error>>()
        };
        let parts = match self.remote && indices.len() > 1 {
            true => crate::remote::io_pool().install(read_all)?,
            false => read_all()?,
        };
        let mut out = ArrayD::from_elem(IxDyn(&shape), T::zeroed());
        for (inside, part) in parts {
            // Straight from the decoded chunk into place: one copy.
            let from = part.data.slice(slices(&inside, &part.start).as_slice());
            out.slice_mut(slices(&inside, &region.start).as_slice())
                .assign(&from);
        }
        Ok(out)
    }

    /// Reads the part `inside` (array coordinates) of the chunk `chunk`, which covers
    /// `chunk_subset`.
    fn read_part<T: Label>(
        &self,
        chunk: &[u64],
        chunk_subset: &ArraySubset,
        inside: &ArraySubset,
    ) -> Result<Part<T>, Error> {
        let fail = |e: Cause| self.error(self.chunk_name(chunk), e);
        let elements = chunk_subset.num_elements();
        let size = std::mem::size_of::<T>() as u64;
        let decoded = elements.saturating_mul(size);
        let options = CodecOptions::default();
        if decoded <= self.chunk_limit {
            let whole: ArrayD<T> = match self.cache {
                Some(cache) => cache.retrieve_chunk(chunk, &options),
                None => self.array.retrieve_chunk(chunk),
            }
            .map_err(|e| fail(Cause::error(e)))?;
            return Ok(Part {
                data: whole,
                start: chunk_subset.start().to_vec(),
            });
        }
        // Too large to decode whole: read in part where that can be checked.
        let key = self.array.chunk_key(chunk);
        let stored = self
            .array
            .storage()
            .size_key(&key)
            .map_err(|e| fail(Cause::error(e)))?;
        let (raw, sharded) = partial_reads_are_checked(self.array);
        match stored {
            // Not stored: the fill value, whatever the codec.
            None => {}
            Some(stored) if raw && stored != decoded => {
                return Err(fail(Cause::text(format!(
                    "it holds {stored} bytes, an uncompressed chunk of {elements} voxels of \
                     {size} bytes holds {decoded}"
                ))));
            }
            Some(_) if raw => {}
            Some(_) if sharded => {}
            Some(_) => {
                return Err(fail(Cause::text(format!(
                    "it decodes to {}, more than the chunk limit of {} (a quarter of the \
                     memory budget); compressed chunks are decoded whole: raise \
                     --memory-budget (or {}), or rechunk the labels",
                    human_bytes(decoded),
                    human_bytes(self.chunk_limit),
                    crate::budget::BUDGET_VARIABLE,
                ))));
            }
        }
        let relative = inside
            .relative_to(chunk_subset.start())
            .map_err(|e| fail(Cause::error(e)))?;
        let data = self
            .array
            .retrieve_chunk_subset::<ArrayD<T>>(chunk, &relative)
            .map_err(|e| fail(Cause::error(e)))?;
        Ok(Part {
            data,
            start: inside.start().to_vec(),
        })
    }
}

/// Decoded labels of (part of) a chunk and the array coordinates of their first voxel.
struct Part<T> {
    data: ArrayD<T>,
    start: Vec<u64>,
}

/// The slices that select `subset` in an array whose first voxel is at `origin`.
fn slices(subset: &ArraySubset, origin: &[u64]) -> Vec<SliceInfoElem> {
    subset
        .start()
        .iter()
        .zip(subset.shape())
        .zip(origin)
        .map(|((&s, &n), &o)| {
            let from = (s - o) as isize;
            SliceInfoElem::from(from..from + n as isize)
        })
        .collect()
}
