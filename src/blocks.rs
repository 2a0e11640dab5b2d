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
    pub fn new(shape: Vec<u64>, chunks: Vec<u64>) -> Self {
        assert_eq!(
            shape.len(),
            chunks.len(),
            "shape and chunks have one entry per axis"
        );
        assert!(chunks.iter().all(|&c| c > 0), "chunk sizes are positive");
        let counts = shape
            .iter()
            .zip(&chunks)
            .map(|(&s, &c)| s.div_ceil(c))
            .collect();
        Self {
            shape,
            chunks,
            counts,
        }
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

    /// Number of blocks (0 if some axis is empty).
    pub fn num_blocks(&self) -> u64 {
        self.counts.iter().product()
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
