//! The blocks of a blockwise run and their split into shards (SPEC 6).
//!
//! A [`BlockGrid`] cuts the output's spatial extent along its chunk grid: block `k` is exactly
//! the spatial extent of output chunk `k` (clipped at the array's end), so each output chunk is
//! written by exactly one block, and blocks never share a chunk. Blocks are numbered in C order
//! of their chunk indices. A [`Shard`] `i/n` is the `i`-th of `n` contiguous, disjoint ranges of
//! block numbers; together the `n` shards cover every block once, so `n` processes can write one
//! array without coordination.
//!
//! ```
//! use annomask::blocks::{BlockGrid, Shard};
//! let grid = BlockGrid::new(vec![100, 64], vec![64, 64]);
//! assert_eq!(grid.num_blocks(), 2);
//! let b = grid.block(1);
//! assert_eq!((b.chunk.as_slice(), b.start.as_slice(), b.shape.as_slice()), (&[1, 0][..], &[64, 0][..], &[36, 64][..]));
//! let shard: Shard = "1/2".parse()?;
//! assert_eq!(shard.range(grid.num_blocks()), 1..2);
//! # Ok::<(), String>(())
//! ```

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

/// One block: the spatial extent of one output chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// Block number (C order over the chunk grid).
    pub number: u64,
    /// Spatial chunk indices of the output chunk.
    pub chunk: Vec<u64>,
    /// First voxel, in output coordinates.
    pub start: Vec<u64>,
    /// Shape in voxels (the chunk shape, clipped at the array's end).
    pub shape: Vec<u64>,
}

impl Block {
    /// Number of voxels.
    pub fn num_voxels(&self) -> u64 {
        self.shape.iter().product()
    }
}

/// The spatial chunk grid of an output array.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockGrid {
    shape: Vec<u64>,
    chunks: Vec<u64>,
    counts: Vec<u64>,
}

impl BlockGrid {
    /// The grid of an array of spatial `shape` with spatial chunk shape `chunks` (each >= 1).
    ///
    /// # Panics
    /// Where [`BlockGrid::try_new`] fails.
    pub fn new(shape: Vec<u64>, chunks: Vec<u64>) -> Self {
        Self::try_new(shape, chunks).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The grid of an array of spatial `shape` with spatial chunk shape `chunks`; fails unless
    /// there is one chunk size per axis, each at least 1, and the numbers of voxels and of
    /// blocks each fit in 64 bits.
    ///
    /// ```
    /// use annomask::blocks::BlockGrid;
    /// let err = BlockGrid::try_new(vec![1 << 40, 1 << 40, 8], vec![4, 4, 8]).unwrap_err();
    /// assert!(err.contains("more than 2^64 voxels"), "{err}");
    /// let err = BlockGrid::try_new(vec![8, 8], vec![0, 4]).unwrap_err();
    /// assert!(err.contains("positive"), "{err}");
    /// ```
    pub fn try_new(shape: Vec<u64>, chunks: Vec<u64>) -> Result<Self, String> {
        if shape.len() != chunks.len() {
            return Err(format!(
                "the chunk shape {chunks:?} does not have one entry per axis of the shape {shape:?}"
            ));
        }
        if chunks.contains(&0) {
            return Err(format!("chunk sizes must be positive, got {chunks:?}"));
        }
        if shape
            .iter()
            .try_fold(1u64, |n, &s| n.checked_mul(s))
            .is_none()
        {
            return Err(format!("shape {shape:?} holds more than 2^64 voxels"));
        }
        let counts: Vec<u64> = shape
            .iter()
            .zip(&chunks)
            .map(|(&s, &c)| s.div_ceil(c))
            .collect();
        if counts
            .iter()
            .try_fold(1u64, |n, &c| n.checked_mul(c))
            .is_none()
        {
            return Err(format!(
                "shape {shape:?} in chunks of {chunks:?} makes {counts:?} blocks, more than \
                 2^64 blocks in all"
            ));
        }
        Ok(Self {
            shape,
            chunks,
            counts,
        })
    }

    /// The number of voxels in blocks `0..n` (all voxels for `n >= num_blocks()`), in O(axes).
    ///
    /// ```
    /// use annomask::blocks::BlockGrid;
    /// let grid = BlockGrid::new(vec![10, 7], vec![4, 3]);
    /// let by_sum = |n: u64| (0..n).map(|k| grid.block(k).num_voxels()).sum::<u64>();
    /// for n in 0..=grid.num_blocks() {
    ///     assert_eq!(grid.voxels_before(n), by_sum(n));
    /// }
    /// ```
    pub fn voxels_before(&self, n: u64) -> u64 {
        let total: u64 = self.shape.iter().product();
        if n >= self.num_blocks() {
            return total;
        }
        let dims = self.counts.len();
        let mut digits = vec![0u64; dims];
        let mut rest = n;
        for d in (0..dims).rev() {
            digits[d] = rest % self.counts[d];
            rest /= self.counts[d];
        }
        // Blocks before `n` in C order: for each axis `d`, those that equal `n`'s chunk on the
        // axes before `d` and come before it on axis `d`, whatever they are on the axes after.
        let mut voxels: u128 = 0;
        let mut prefix: u128 = 1;
        for (d, &digit) in digits.iter().enumerate() {
            let start = digit * self.chunks[d];
            let along = start.min(self.shape[d]);
            let after: u128 = self.shape[d + 1..].iter().map(|&s| u128::from(s)).product();
            voxels += prefix * u128::from(along) * after;
            prefix *= u128::from(self.chunks[d].min(self.shape[d] - start));
        }
        voxels as u64
    }

    /// The spatial shape.
    pub fn shape(&self) -> &[u64] {
        &self.shape
    }

    /// The spatial chunk shape.
    pub fn chunks(&self) -> &[u64] {
        &self.chunks
    }

    /// Number of chunks along each axis.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Number of blocks (0 if some axis is empty; fits in 64 bits, see [`BlockGrid::try_new`]).
    pub fn num_blocks(&self) -> u64 {
        self.counts.iter().product()
    }

    /// The number of voxels in the blocks of `shard`.
    pub fn shard_voxels(&self, shard: Shard) -> u64 {
        let range = shard.range(self.num_blocks());
        self.voxels_before(range.end) - self.voxels_before(range.start)
    }

    /// The number of the block with chunk indices `chunk`, if inside the grid.
    pub fn number_of(&self, chunk: &[u64]) -> Option<u64> {
        if chunk.len() != self.counts.len() || chunk.iter().zip(&self.counts).any(|(c, n)| c >= n) {
            return None;
        }
        Some(
            chunk
                .iter()
                .zip(&self.counts)
                .fold(0, |acc, (&c, &n)| acc * n + c),
        )
    }

    /// Block `number` (`< num_blocks()`).
    pub fn block(&self, number: u64) -> Block {
        assert!(
            number < self.num_blocks(),
            "block {number} is outside the grid"
        );
        let mut chunk = vec![0; self.counts.len()];
        let mut rest = number;
        for d in (0..self.counts.len()).rev() {
            chunk[d] = rest % self.counts[d];
            rest /= self.counts[d];
        }
        let start: Vec<u64> = chunk
            .iter()
            .zip(&self.chunks)
            .map(|(&i, &c)| i * c)
            .collect();
        let shape = start
            .iter()
            .zip(&self.chunks)
            .zip(&self.shape)
            .map(|((&s, &c), &n)| c.min(n - s))
            .collect();
        Block {
            number,
            chunk,
            start,
            shape,
        }
    }
}

/// The `index`-th of `count` disjoint parts of a run (`--shard i/n`); `0/1` is the whole run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shard {
    index: u64,
    count: u64,
}

impl Default for Shard {
    fn default() -> Self {
        Self { index: 0, count: 1 }
    }
}

impl Shard {
    /// Shard `index` of `count`; `None` unless `index < count`.
    pub fn new(index: u64, count: u64) -> Option<Self> {
        (index < count).then_some(Self { index, count })
    }

    /// The shard's position, from 0.
    pub fn index(self) -> u64 {
        self.index
    }

    /// The number of shards.
    pub fn count(self) -> u64 {
        self.count
    }

    /// Whether this is the whole run (`0/1`).
    pub fn is_whole(self) -> bool {
        self.count == 1
    }

    /// The block numbers of this shard among `num_blocks`: the `index`-th of `count` contiguous
    /// ranges whose lengths differ by at most one.
    pub fn range(self, num_blocks: u64) -> Range<u64> {
        let at = |i: u64| (u128::from(num_blocks) * u128::from(i) / u128::from(self.count)) as u64;
        at(self.index)..at(self.index + 1)
    }

    /// Whether block `number` of `num_blocks` belongs to this shard.
    pub fn contains(self, number: u64, num_blocks: u64) -> bool {
        self.range(num_blocks).contains(&number)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid shard {s:?}: expected i/n with 0 <= i < n, e.g. 0/4");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (i, n) = (
            i.trim().parse::<u64>().map_err(|_| bad())?,
            n.trim().parse::<u64>().map_err(|_| bad())?,
        );
        Shard::new(i, n).ok_or_else(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_tile_the_array_once() {
        let grid = BlockGrid::new(vec![10, 7, 5], vec![4, 3, 5]);
        assert_eq!(grid.counts(), &[3, 3, 1]);
        let mut covered = vec![0u8; 10 * 7 * 5];
        for k in 0..grid.num_blocks() {
            let b = grid.block(k);
            assert_eq!(grid.number_of(&b.chunk), Some(k));
            for z in b.start[0]..b.start[0] + b.shape[0] {
                for y in b.start[1]..b.start[1] + b.shape[1] {
                    for x in b.start[2]..b.start[2] + b.shape[2] {
                        covered[(z * 35 + y * 5 + x) as usize] += 1;
                    }
                }
            }
        }
        assert!(covered.iter().all(|&c| c == 1));
        assert_eq!(grid.number_of(&[3, 0, 0]), None);
        assert_eq!(grid.number_of(&[0, 0]), None);
    }

    #[test]
    fn shards_are_disjoint_and_cover_everything() {
        for blocks in [0u64, 1, 2, 7, 100, 101] {
            for n in 1..9u64 {
                let mut seen = vec![0u8; blocks as usize];
                for i in 0..n {
                    let shard = Shard::new(i, n).unwrap();
                    for k in shard.range(blocks) {
                        seen[k as usize] += 1;
                        assert!(shard.contains(k, blocks));
                    }
                    let len = shard.range(blocks).count() as u64;
                    assert!(len == blocks / n || len == blocks / n + 1);
                }
                assert!(seen.iter().all(|&s| s == 1), "{blocks} blocks, {n} shards");
            }
        }
    }

    #[test]
    fn shard_parsing() {
        assert_eq!("2/3".parse::<Shard>().unwrap(), Shard::new(2, 3).unwrap());
        assert_eq!(Shard::default().to_string(), "0/1");
        for bad in ["3/3", "1", "a/2", "-1/2", "1/0", ""] {
            let err = bad.parse::<Shard>().unwrap_err();
            assert!(err.contains("expected i/n"), "{bad}: {err}");
        }
    }
}
