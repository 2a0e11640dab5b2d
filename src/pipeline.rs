//! The blockwise pipeline behind `compute` (SPEC 6): read, compute and write overlap, memory
//! stays bounded whatever the volume size.
//!
//! ```text
//! reader thread --(queue: depth blocks)--> compute (this thread) --(queue: depth blocks)--> writer thread
//! ```
//!
//! The reader reads block `k+1` (and beyond, up to the queue depth) while block `k` is computed
//! and block `k-1` is encoded and written, so a run takes about as long as its slowest stage,
//! not the sum. At most `2 * depth + 3` blocks are alive at once (one in each stage, `depth` in
//! each queue), whatever the volume's size: the full volume and the full mask are never in memory.
//! Per-channel counts of trained voxels are accumulated as blocks stream by.
//!
//! The first error of any stage stops the run: the stage drops its queue ends, the others see
//! a closed queue and stop, and the error is returned. Chunks written before it are complete
//! (they are written atomically) and a `resume` run continues from them.
//!
//! ```
//! use annomask::{synth, EngineChoice, MaskOptions, MissingAnnotationsMask, ZarrFormat};
//! use annomask::output::{MaskOutput, OutputOptions};
//! use annomask::pipeline::{self, RunOptions};
//! let dir = tempfile::tempdir()?;
//! let crop = synth::write_demo_crop(dir.path(), 16, ZarrFormat::V3)?;
//! let mask = MissingAnnotationsMask::open(&crop, synth::demo_groupings(),
//!     MaskOptions::default().engine(EngineChoice::Cpu))?;
//! let out = MaskOutput::new(dir.path().join("mask.zarr"), &mask, None, &OutputOptions::default())?;
//! let summary = pipeline::run(&mask, &out, &RunOptions::default(), &|_| {})?;
//! assert_eq!(summary.blocks_written, 1);
//! // the whole-channel policy switches `mito` (id 5 is missing) off everywhere
//! assert_eq!(summary.trained[0], 0);
//! // `all` (any foreground) is on somewhere, and never on more voxels than there are
//! assert!(summary.trained[4] > 0 && summary.trained[4] <= 16 * 16 * 16);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::blocks::{Block, Shard};
use crate::error::Error;
use crate::geometry::VoxelRegion;
use crate::mask::{MissingAnnotationsMask, SourceBlock};
use crate::output::MaskOutput;

/// How a run proceeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunOptions {
    /// The part of the blocks this run computes (default: all).
    pub shard: Shard,
    /// Skip blocks whose chunks are all stored already.
    pub resume: bool,
    /// Blocks waiting between two stages (default 2, at least 1).
    pub queue_depth: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            shard: Shard::default(),
            resume: false,
            queue_depth: 2,
        }
    }
}

/// Where a run stands, reported after every written block.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// Blocks written so far.
    pub blocks_done: u64,
    /// Blocks this run writes (excluding skipped ones).
    pub blocks_total: u64,
    /// Voxels written so far (spatial voxels; every channel of them).
    pub voxels_done: u64,
    /// Voxels this run writes.
    pub voxels_total: u64,
    /// Blocks skipped because they were complete (resume).
    pub blocks_skipped: u64,
    /// Time since the run started.
    pub elapsed: Duration,
}

/// What a run did.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Per channel, the voxels set to 1 in the blocks this run computed.
    pub trained: Vec<u64>,
    /// Spatial voxels this run computed.
    pub voxels: u64,
    /// Blocks computed and written.
    pub blocks_written: u64,
    /// Blocks skipped as complete (resume).
    pub blocks_skipped: u64,
    /// Stale temporary files of killed runs that were removed.
    pub temporaries_removed: usize,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Time the reader spent reading (and decoding) labels.
    pub read_time: Duration,
    /// Time spent computing masks.
    pub compute_time: Duration,
    /// Time the writer spent encoding and writing chunks.
    pub write_time: Duration,
}

/// Computes the mask of `mask` into `output` block by block (see the module docs): creates the
/// output's metadata, removes this shard's stale temporary files, skips complete blocks under
/// `resume`, and calls `progress` after each written block.
pub fn run(
    mask: &MissingAnnotationsMask,
    output: &MaskOutput,
    options: &RunOptions,
    progress: &(dyn Fn(&Progress) + Sync),
) -> Result<Summary, Error> {
    let start = Instant::now();
    output.create()?;
    let temporaries_removed = output.remove_stale_temporaries(options.shard)?;
    let grid = output.grid();
    let mut todo: Vec<u64> = Vec::new();
    let mut blocks_skipped = 0;
    let mut voxels_total = 0;
    for k in options.shard.range(grid.num_blocks()) {
        let block = grid.block(k);
        if options.resume && output.is_complete(&block)? {
            blocks_skipped += 1;
        } else {
            voxels_total += block.num_voxels();
            todo.push(k);
        }
    }
    let num_channels = mask.num_channels();
    let depth = options.queue_depth.max(1);
    let state = Mutex::new(Progress {
        blocks_done: 0,
        blocks_total: todo.len() as u64,
        voxels_done: 0,
        voxels_total,
        blocks_skipped,
        elapsed: Duration::ZERO,
    });
    progress(&state.lock().expect("progress lock").clone());

    let (read_tx, read_rx) = sync_channel::<(Block, SourceBlock)>(depth);
    let (write_tx, write_rx) = sync_channel::<(Block, Vec<u8>)>(depth);
    let todo = Arc::new(todo);
    let (read_result, compute_result, write_result) = std::thread::scope(|scope| {
        let reader = scope.spawn(|| read_stage(mask, output, &todo, read_tx));
        let writer = scope.spawn(|| {
            write_stage(output, write_rx, |block| {
                let mut p = state.lock().expect("progress lock");
                p.blocks_done += 1;
                p.voxels_done += block.num_voxels();
                p.elapsed = start.elapsed();
                progress(&p);
            })
        });
        let computed = compute_stage(mask, num_channels, read_rx, write_tx);
        let read = reader
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        let written = writer
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        (read, computed, written)
    });
    let read_time = read_result?;
    let (trained, voxels, compute_time) = compute_result?;
    let (blocks_written, write_time) = write_result?;
    Ok(Summary {
        trained,
        voxels,
        blocks_written,
        blocks_skipped,
        temporaries_removed,
        elapsed: start.elapsed(),
        read_time,
        compute_time,
        write_time,
    })
}

/// Reads the labels of each block, in order, into the queue. Stops early when the queue is
/// closed (a later stage failed).
fn read_stage(
    mask: &MissingAnnotationsMask,
    output: &MaskOutput,
    todo: &[u64],
    queue: SyncSender<(Block, SourceBlock)>,
) -> Result<Duration, Error> {
    let mut busy = Duration::ZERO;
    for &k in todo {
        let block = output.grid().block(k);
        let region = VoxelRegion {
            start: block
                .start
                .iter()
                .zip(output.origin())
                .map(|(&s, &o)| s + o)
                .collect(),
            shape: block.shape.clone(),
        };
        let t = Instant::now();
        let source = mask.read_block(&region)?;
        busy += t.elapsed();
        if queue.send((block, source)).is_err() {
            break;
        }
    }
    Ok(busy)
}

/// Computes each block's mask and counts trained voxels per channel.
fn compute_stage(
    mask: &MissingAnnotationsMask,
    num_channels: usize,
    input: Receiver<(Block, SourceBlock)>,
    output: SyncSender<(Block, Vec<u8>)>,
) -> Result<(Vec<u64>, u64, Duration), Error> {
    let mut trained = vec![0u64; num_channels];
    let mut voxels = 0u64;
    let mut busy = Duration::ZERO;
    for (block, source) in input {
        let n = block.num_voxels() as usize;
        let t = Instant::now();
        let mut data = vec![0u8; n * num_channels];
        mask.compute_block(&source, &mut data)?;
        drop(source);
        for (c, count) in trained.iter_mut().enumerate() {
            *count += data[c * n..(c + 1) * n]
                .iter()
                .map(|&v| u64::from(v))
                .sum::<u64>();
        }
        busy += t.elapsed();
        voxels += n as u64;
        if output.send((block, data)).is_err() {
            break;
        }
    }
    Ok((trained, voxels, busy))
}

/// Encodes and writes each block's chunks; calls `done` after each.
fn write_stage(
    output: &MaskOutput,
    input: Receiver<(Block, Vec<u8>)>,
    mut done: impl FnMut(&Block),
) -> Result<(u64, Duration), Error> {
    let mut written = 0;
    let mut busy = Duration::ZERO;
    for (block, data) in input {
        let t = Instant::now();
        output.write_block(&block, &data)?;
        busy += t.elapsed();
        written += 1;
        done(&block);
    }
    Ok((written, busy))
}
