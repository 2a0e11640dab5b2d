//! Reading a region of a label array chunk by chunk, checking every chunk it touches.
//!
//! `zarrs` checks a chunk's decoded size only when it decodes the whole chunk; reading part of
//! a chunk (an edge block, an ROI across chunk borders) takes byte ranges of whatever is stored,
//! so a truncated chunk, one written with another dtype or random bytes would be read as
//! labels. Here every chunk a region touches is decoded whole, where its size is checked (and
//! its compressed stream bounded, see [`crate::bounded_codecs`]), and the part inside the
//! region is copied out: straight from the decoded bytes (shared with the chunk cache, never
//! converted or copied whole) into the region's array, one contiguous run at a time, in
//! parallel over the region's planes. A chunk that decodes to more than the memory budget's chunk limit is
//! read in part only when that is safe to check: stored uncompressed (its stored size must be
//! exactly its decoded size) or in shards (the shard index locates each inner chunk, which is
//! decoded whole); any other such chunk is refused, naming it and the limit. Every error names
//! the chunk's key.

use std::sync::Arc;

use ndarray::{ArrayD, IxDyn};
use rayon::prelude::*;
use zarrs::array::chunk_cache::{ChunkCache, ChunkCacheDecodedLruSizeLimit};
use zarrs::array::codec::{BytesCodec, ShardingCodec};
use zarrs::array::{Array, ArrayBytes, ArraySubset, CodecOptions};
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
                .collect::<Result<Vec<(ArraySubset, Part)>, Error>>()
        };
        let parts = match self.remote && indices.len() > 1 {
            true => crate::remote::io_pool().install(read_all)?,
            false => read_all()?,
        };
        let mut out = ArrayD::from_elem(IxDyn(&shape), T::zeroed());
        let values = out.as_slice_mut().expect("a new array is standard");
        copy_parts(
            &parts,
            region,
            bytemuck::cast_slice_mut::<T, u8>(values),
            size_of::<T>(),
        );
        Ok(out)
    }

    /// Reads the part `inside` (array coordinates) of the chunk `chunk`, which covers
    /// `chunk_subset`, as decoded bytes of `T` (the whole chunk, or only `inside` when the
    /// chunk is too large to decode whole).
    fn read_part<T: Label>(
        &self,
        chunk: &[u64],
        chunk_subset: &ArraySubset,
        inside: &ArraySubset,
    ) -> Result<Part, Error> {
        let fail = |e: Cause| self.error(self.chunk_name(chunk), e);
        let elements = chunk_subset.num_elements();
        let size = size_of::<T>() as u64;
        let decoded = elements.saturating_mul(size);
        let options = CodecOptions::default();
        if decoded <= self.chunk_limit {
            // The cache's decoded chunk is shared, not copied: only the voxels inside the
            // region are (in `read`).
            let whole: Arc<ArrayBytes<'static>> = match self.cache {
                Some(cache) => cache.retrieve_chunk_bytes(chunk, &options),
                None => self.array.retrieve_chunk(chunk),
            }
            .map_err(|e| fail(Cause::error(e)))?;
            return Part::new(whole, chunk_subset, decoded).map_err(fail);
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
        let data: Arc<ArrayBytes<'static>> = self
            .array
            .retrieve_chunk_subset(chunk, &relative)
            .map_err(|e| fail(Cause::error(e)))?;
        let bytes = inside.num_elements().saturating_mul(size);
        Part::new(data, inside, bytes).map_err(fail)
    }
}

/// Decoded voxels of (part of) a chunk: fixed-size elements in C order, native byte order.
struct Part {
    bytes: Arc<ArrayBytes<'static>>,
    /// The voxels held, per axis.
    shape: Vec<u64>,
    /// The array coordinates of the first.
    start: Vec<u64>,
}

impl Part {
    /// The part covering `subset`, checked to hold `expected` bytes of fixed-size elements.
    fn new(
        bytes: Arc<ArrayBytes<'static>>,
        subset: &ArraySubset,
        expected: u64,
    ) -> Result<Self, Cause> {
        let held = match bytes.as_ref() {
            ArrayBytes::Fixed(fixed) => fixed.len() as u64,
            _ => {
                return Err(Cause::text(
                    "it decodes to variable-length or optional elements",
                ));
            }
        };
        if held != expected {
            return Err(Cause::text(format!(
                "it decodes to {held} bytes, {expected} expected"
            )));
        }
        Ok(Self {
            bytes,
            shape: subset.shape().to_vec(),
            start: subset.start().to_vec(),
        })
    }

    fn bytes(&self) -> &[u8] {
        match self.bytes.as_ref() {
            ArrayBytes::Fixed(fixed) => fixed,
            _ => unreachable!("checked in Part::new"),
        }
    }
}

/// A C-order block of voxels: its shape and the array coordinates of its first voxel.
#[derive(Clone, Copy)]
struct Block<'a> {
    shape: &'a [u64],
    origin: &'a [u64],
}

impl Block<'_> {
    /// The byte strides per axis, for voxels of `size` bytes.
    fn strides(&self, size: usize) -> Vec<usize> {
        let mut strides = vec![size; self.shape.len()];
        for axis in (0..self.shape.len().saturating_sub(1)).rev() {
            strides[axis] = strides[axis + 1] * self.shape[axis + 1] as usize;
        }
        strides
    }

    /// The byte offset of the voxel at array coordinates `at`.
    fn offset(&self, at: &[u64], strides: &[usize]) -> usize {
        at.iter()
            .zip(self.origin)
            .zip(strides)
            .map(|((&a, &o), &s)| (a - o) as usize * s)
            .sum()
    }
}

/// Copies the decoded parts into `out` (the C-order bytes of `region`), each part's voxels
/// inside the region straight into place. In parallel over the region's first axis (each
/// worker owns whole planes of the output) when it has more than one.
fn copy_parts(parts: &[(ArraySubset, Part)], region: &VoxelRegion, out: &mut [u8], size: usize) {
    let into = Block {
        shape: &region.shape,
        origin: &region.start,
    };
    let copy = |out: &mut [u8], into: Block<'_>, start: &[u64], shape: &[u64], part: &Part| {
        let from = Block {
            shape: &part.shape,
            origin: &part.start,
        };
        copy_subset(part.bytes(), from, out, into, start, shape, size);
    };
    let planes = region.shape.first().copied().unwrap_or(1) as usize;
    if region.shape.len() < 2 || planes < 2 || out.is_empty() {
        for (inside, part) in parts {
            copy(out, into, inside.start(), inside.shape(), part);
        }
        return;
    }
    let plane_bytes = out.len() / planes;
    out.par_chunks_mut(plane_bytes)
        .enumerate()
        .for_each(|(z, plane)| {
            let z = region.start[0] + z as u64;
            let mut origin = region.start.clone();
            origin[0] = z;
            let mut plane_shape = region.shape.clone();
            plane_shape[0] = 1;
            let into = Block {
                shape: &plane_shape,
                origin: &origin,
            };
            for (inside, part) in parts {
                let (from, n) = (inside.start()[0], inside.shape()[0]);
                if (from..from + n).contains(&z) {
                    let mut start = inside.start().to_vec();
                    start[0] = z;
                    let mut shape = inside.shape().to_vec();
                    shape[0] = 1;
                    copy(plane, into, &start, &shape, part);
                }
            }
        });
}

/// Copies the voxels of the subset `start`/`shape` (inside both blocks) of `size` bytes each
/// from `from` to `to`, one contiguous run at a time (the last axis, and the axes before it
/// along which both blocks are whole).
fn copy_subset(
    from_bytes: &[u8],
    from: Block<'_>,
    to_bytes: &mut [u8],
    to: Block<'_>,
    start: &[u64],
    shape: &[u64],
    size: usize,
) {
    let dims = shape.len();
    if shape.contains(&0) {
        return;
    }
    let (from_strides, to_strides) = (from.strides(size), to.strides(size));
    let (mut src, mut dst) = (
        from.offset(start, &from_strides),
        to.offset(start, &to_strides),
    );
    // The run: the last axis, widened while the axis is whole in both blocks.
    let mut inner = dims;
    let mut run = size;
    while inner > 0 {
        inner -= 1;
        run *= shape[inner] as usize;
        let whole = shape[inner] == from.shape[inner] && shape[inner] == to.shape[inner];
        if !whole {
            break;
        }
    }
    let outer = &shape[..inner];
    let mut index = vec![0u64; outer.len()];
    loop {
        to_bytes[dst..dst + run].copy_from_slice(&from_bytes[src..src + run]);
        // The next run: an odometer over the outer axes, offsets moved by their strides.
        let mut axis = outer.len();
        loop {
            if axis == 0 {
                return;
            }
            axis -= 1;
            index[axis] += 1;
            src += from_strides[axis];
            dst += to_strides[axis];
            if index[axis] < outer[axis] {
                break;
            }
            src -= from_strides[axis] * outer[axis] as usize;
            dst -= to_strides[axis] * outer[axis] as usize;
            index[axis] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The voxels of `shape`, in C order.
    fn voxels(shape: &[u64]) -> Vec<Vec<u64>> {
        let mut all = vec![vec![]];
        for &n in shape {
            all = all
                .into_iter()
                .flat_map(|p: Vec<u64>| {
                    (0..n).map(move |i| {
                        let mut q = p.clone();
                        q.push(i);
                        q
                    })
                })
                .collect();
        }
        all
    }

    /// Blocks `from` and `to` around a common subset, per axis: (subset start, subset size,
    /// voxels of `from` before / after it, voxels of `to` before / after it).
    fn case() -> impl Strategy<Value = Vec<(u64, u64, u64, u64, u64, u64)>> {
        proptest::collection::vec((0..5u64, 1..4u64, 0..3u64, 0..3u64, 0..3u64, 0..3u64), 0..4)
    }

    proptest! {
        /// `copy_subset` (runs, odometer, widened runs) and `copy_parts` (planes in parallel)
        /// put every voxel where a per-voxel copy does, and touch nothing else.
        #[test]
        fn copies_match_per_voxel(axes in case(), size in prop_oneof![Just(1usize), Just(2), Just(8)]) {
            let start: Vec<u64> = axes.iter().map(|a| a.0 + a.2.max(a.4)).collect();
            let shape: Vec<u64> = axes.iter().map(|a| a.1).collect();
            let from_origin: Vec<u64> = axes.iter().zip(&start).map(|(a, s)| s - a.2).collect();
            let from_shape: Vec<u64> = axes.iter().map(|a| a.2 + a.1 + a.3).collect();
            let to_origin: Vec<u64> = axes.iter().zip(&start).map(|(a, s)| s - a.4).collect();
            let to_shape: Vec<u64> = axes.iter().map(|a| a.4 + a.1 + a.5).collect();
            let count = |s: &[u64]| s.iter().product::<u64>() as usize * size;
            let src: Vec<u8> = (0..count(&from_shape)).map(|i| (i % 251) as u8 + 1).collect();
            let from = Block { shape: &from_shape, origin: &from_origin };
            let to = Block { shape: &to_shape, origin: &to_origin };
            let mut got = vec![0u8; count(&to_shape)];
            copy_subset(&src, from, &mut got, to, &start, &shape, size);
            let mut want = vec![0u8; count(&to_shape)];
            // C-order index of `at` in a block, written out independently of `Block`.
            let flat = |at: &[u64], origin: &[u64], shape: &[u64]| {
                let mut index = 0u64;
                for axis in 0..at.len() {
                    index = index * shape[axis] + (at[axis] - origin[axis]);
                }
                index as usize * size
            };
            for v in voxels(&shape) {
                let at: Vec<u64> = v.iter().zip(&start).map(|(i, s)| i + s).collect();
                let (a, b) = (flat(&at, &from_origin, &from_shape), flat(&at, &to_origin, &to_shape));
                want[b..b + size].copy_from_slice(&src[a..a + size]);
            }
            prop_assert_eq!(&got, &want);

            // The same through copy_parts, the region being the `to` block.
            let part = Part {
                bytes: Arc::new(ArrayBytes::new_flen(src.clone())),
                shape: from_shape.clone(),
                start: from_origin.clone(),
            };
            let inside = ArraySubset::new_with_start_shape(start.clone(), shape.clone()).unwrap();
            let region = VoxelRegion { start: to_origin.clone(), shape: to_shape.clone() };
            let mut parted = vec![0u8; count(&to_shape)];
            copy_parts(&[(inside, part)], &region, &mut parted, size);
            prop_assert_eq!(&parted, &want);
        }
    }
}
