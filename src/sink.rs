//! [`MaskSink`]: where a blockwise run ([`crate::pipeline::run`]) writes a mask. The pipeline
//! knows nothing else about its output: a new output form (another layout, another store, an
//! in-memory collector) implements this trait and needs no pipeline change.
//!
//! [`crate::output::MaskOutput`], a zarr array written chunk by chunk through an atomic store,
//! is the one the command line uses.
//!
//! ```
//! use std::sync::Mutex;
//! use annomask::blocks::{Block, BlockGrid, Shard};
//! use annomask::geometry::VoxelRegion;
//! use annomask::pipeline::{self, RunOptions};
//! use annomask::sink::MaskSink;
//! use annomask::{synth, EngineChoice, MaskOptions, MissingAnnotationsMask, ZarrFormat};
//!
//! /// Counts the bytes written (an output form of its own: nothing is stored).
//! struct Counter { grid: BlockGrid, bytes: Mutex<u64> }
//! impl MaskSink for Counter {
//!     fn grid(&self) -> &BlockGrid { &self.grid }
//!     fn source_region(&self, block: &Block) -> VoxelRegion {
//!         VoxelRegion { start: block.start.clone(), shape: block.shape.clone() }
//!     }
//!     fn check_memory(&self, _blocks: u64) -> annomask::Result<()> { Ok(()) }
//!     fn prepare(&self, _shard: Shard, _start: std::time::SystemTime) -> annomask::Result<usize> { Ok(0) }
//!     fn is_complete(&self, _block: &Block) -> annomask::Result<bool> { Ok(false) }
//!     fn write_block(&self, _block: &Block, data: &[u8]) -> annomask::Result<()> {
//!         *self.bytes.lock().unwrap() += data.len() as u64;
//!         Ok(())
//!     }
//! }
//!
//! let dir = tempfile::tempdir()?;
//! let crop = synth::write_demo_crop(dir.path(), 16, ZarrFormat::V3)?;
//! let mask = MissingAnnotationsMask::open(&crop, synth::demo_groupings(),
//!     MaskOptions::default().engine(EngineChoice::Cpu))?;
//! let sink = Counter { grid: BlockGrid::try_new(vec![16, 16, 16], vec![8, 8, 8])?, bytes: Mutex::new(0) };
//! let summary = pipeline::run(&mask, &sink, &RunOptions::default(), &|_| {})?;
//! assert_eq!(summary.blocks_written, 8);
//! assert_eq!(*sink.bytes.lock().unwrap(), 16 * 16 * 16 * mask.num_channels() as u64);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::time::SystemTime;

use crate::blocks::{Block, BlockGrid, Shard};
use crate::error::Result;
use crate::geometry::VoxelRegion;

/// An output a blockwise run writes block by block, from any number of threads.
///
/// Blocks are the cells of [`MaskSink::grid`]; each is computed as
/// `(channels, *block.shape)` bytes, channel-major, and written once. A sink that keeps the
/// promise "a block reported complete was written whole" makes `resume` and shards correct.
pub trait MaskSink: Sync {
    /// The blocks of the output (one per output chunk for [`crate::output::MaskOutput`]).
    fn grid(&self) -> &BlockGrid;

    /// The source voxels an output block covers (the block, moved by the output's origin).
    fn source_region(&self, block: &Block) -> VoxelRegion;

    /// Fails, naming the budget, unless `blocks` computed blocks in flight fit in memory.
    fn check_memory(&self, blocks: u64) -> Result<()>;

    /// Makes the output ready before any block is written (creates it; the same bytes every
    /// time, so shards and resumed runs may all call it), and removes what a killed run of
    /// `shard` provably left behind before `run_start`. Returns how many leftovers it removed.
    fn prepare(&self, shard: Shard, run_start: SystemTime) -> Result<usize>;

    /// Whether `block` is already written whole (a resumed run skips it).
    fn is_complete(&self, block: &Block) -> Result<bool>;

    /// Writes `block`'s mask, `data` channel-major: `channels * block voxels` bytes.
    fn write_block(&self, block: &Block, data: &[u8]) -> Result<()>;
}
