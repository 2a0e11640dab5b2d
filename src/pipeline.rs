//! The blockwise pipeline behind `compute` (SPEC 6): read, compute and write overlap, memory
//! stays bounded whatever the volume size.
//!
//! ```text
//! reader threads --(queue: depth blocks)--> compute (this thread) --(queue: depth blocks)--> writer threads
//! ```
//!
//! The readers (default 2, each decoding its own blocks) read block `k+1` (and beyond, up to
//! the queue depth) while block `k` is computed
//! and block `k-1` is encoded and written, so a run takes about as long as its slowest stage,
//! not the sum. Several writers (default 2) keep more than one chunk write in flight, which hides
//! per-file latency (`fsync`, network filesystems); chunks are independent and written
//! atomically, so their order does not matter. At most `2 * depth + 1 + readers + writers` blocks are
//! alive at once, whatever the volume's size: the full volume and the full mask are never in
//! memory.
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

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::blocks::{Block, Shard};
use crate::error::Error;
use crate::geometry::VoxelRegion;
use crate::mask::{MissingAnnotationsMask, SourceBlock};
use crate::output::MaskOutput;

/// A computed block on its way to the writers.
type Computed = (Block, Vec<u8>);

/// The writers' shared end of the compute -> write queue; `None` once a writer failed.
type WriterQueue = Mutex<Option<Receiver<Computed>>>;

/// Mask buffers the writers hand back to compute, so blocks after the first few reuse memory
/// that is already mapped instead of faulting in fresh pages for every block.
type BufferPool = Mutex<Vec<Vec<u8>>>;

/// The number of 1 bytes in a 0/1 mask (summed in `u32` pieces, which vectorise).
fn count_ones(mask: &[u8]) -> u64 {
    mask.chunks(1 << 16)
        .map(|piece| u64::from(piece.iter().map(|&v| u32::from(v)).sum::<u32>()))
        .sum()
}

/// How a run proceeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunOptions {
    /// The part of the blocks this run computes (default: all).
    pub shard: Shard,
    /// Skip blocks whose chunks are all stored already.
    pub resume: bool,
    /// Blocks waiting between two stages (default 2, at least 1).
    pub queue_depth: usize,
    /// Threads encoding and writing chunks (default 2, at least 1).
    pub writers: usize,
    /// Threads reading and decoding blocks (default 2, at least 1).
    pub readers: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            shard: Shard::default(),
            resume: false,
            queue_depth: 2,
            writers: 2,
            readers: 2,
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
    /// Time the writers spent encoding and writing chunks (summed over writers).
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
    let (write_tx, write_rx) = sync_channel::<Computed>(depth);
    // Shared by the writers; the first to fail drops it, which stops compute and then the reader.
    let write_rx = Mutex::new(Some(write_rx));
    let todo = Arc::new(todo);
    let report = |block: &Block| {
        let mut p = state.lock().expect("progress lock");
        p.blocks_done += 1;
        p.voxels_done += block.num_voxels();
        p.elapsed = start.elapsed();
        progress(&p);
    };
    let next_block = AtomicUsize::new(0);
    let pool = BufferPool::default();
    let (read_results, compute_result, write_results) = std::thread::scope(|scope| {
        let readers: Vec<_> = (0..options.readers.max(1))
            .map(|_| {
                let queue = read_tx.clone();
                let next_block = &next_block;
                let todo = &todo;
                scope.spawn(move || read_stage(mask, output, todo, next_block, queue))
            })
            .collect();
        drop(read_tx);
        let writers: Vec<_> = (0..options.writers.max(1))
            .map(|_| scope.spawn(|| write_stage(output, &write_rx, &pool, &report)))
            .collect();
        let computed = compute_stage(mask, num_channels, read_rx, write_tx, &pool);
        let read: Vec<_> = readers
            .into_iter()
            .map(|r| r.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect();
        let written: Vec<_> = writers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect();
        (read, computed, written)
    });
    let mut read_time = Duration::ZERO;
    for result in read_results {
        read_time += result?;
    }
    let (trained, voxels, compute_time) = compute_result?;
    let (mut blocks_written, mut write_time) = (0, Duration::ZERO);
    for result in write_results {
        let (blocks, busy) = result?;
        blocks_written += blocks;
        write_time += busy;
    }
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

/// Reads the source of blocks into the queue, taking the next block of `todo` each time (the
/// readers share `next`, so blocks go out roughly in order). Stops early when the queue is
/// closed (a later stage failed).
fn read_stage(
    mask: &MissingAnnotationsMask,
    output: &MaskOutput,
    todo: &[u64],
    next: &AtomicUsize,
    queue: SyncSender<(Block, SourceBlock)>,
) -> Result<Duration, Error> {
    let mut busy = Duration::ZERO;
    while let Some(&k) = todo.get(next.fetch_add(1, Ordering::Relaxed)) {
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
    output: SyncSender<Computed>,
    pool: &BufferPool,
) -> Result<(Vec<u64>, u64, Duration), Error> {
    let mut trained = vec![0u64; num_channels];
    let mut voxels = 0u64;
    let mut busy = Duration::ZERO;
    for (block, source) in input {
        let n = block.num_voxels() as usize;
        let t = Instant::now();
        let mut data = pool
            .lock()
            .expect("buffer pool lock")
            .pop()
            .unwrap_or_default();
        data.resize(n * num_channels, 0);
        mask.compute_block(&source, &mut data)?;
        drop(source);
        for (c, count) in trained.iter_mut().enumerate() {
            *count += count_ones(&data[c * n..(c + 1) * n]);
        }
        busy += t.elapsed();
        voxels += n as u64;
        if output.send((block, data)).is_err() {
            break;
        }
    }
    Ok((trained, voxels, busy))
}

/// Encodes and writes blocks' chunks from the shared queue until it is empty and closed; calls
/// `done` after each block. On an error, drops the queue (stopping the run) and returns it.
fn write_stage(
    output: &MaskOutput,
    input: &WriterQueue,
    pool: &BufferPool,
    done: &(dyn Fn(&Block) + Sync),
) -> Result<(u64, Duration), Error> {
    let mut written = 0;
    let mut busy = Duration::ZERO;
    loop {
        let next = {
            let queue = input.lock().expect("writer queue lock");
            match queue.as_ref() {
                Some(rx) => rx.recv().ok(),
                None => None,
            }
        };
        let Some((block, data)) = next else {
            break;
        };
        let t = Instant::now();
        if let Err(e) = output.write_block(&block, &data) {
            input.lock().expect("writer queue lock").take();
            return Err(e);
        }
        busy += t.elapsed();
        written += 1;
        done(&block);
        pool.lock().expect("buffer pool lock").push(data);
    }
    Ok((written, busy))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::OutputOptions;
    use crate::{EngineChoice, MaskOptions, ZarrFormat, synth};

    fn demo(dir: &std::path::Path) -> MissingAnnotationsMask {
        let crop = synth::write_demo_crop(dir, 40, ZarrFormat::V3).unwrap();
        let mask = MissingAnnotationsMask::open(
            &crop,
            synth::demo_groupings(),
            MaskOptions::default().engine(EngineChoice::Cpu),
        )
        .unwrap();
        assert_eq!(mask.chunk_shape(), &[40, 40, 40]);
        mask
    }

    fn output(mask: &MissingAnnotationsMask, path: &std::path::Path) -> MaskOutput {
        let options = OutputOptions {
            chunks: Some(vec![8, 16, 16]),
            ..OutputOptions::default()
        };
        MaskOutput::new(path, mask, None, &options).unwrap()
    }

    fn bytes(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let data = std::fs::read(&p).unwrap();
                    out.push((p.strip_prefix(dir).unwrap().to_path_buf(), data));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn queue_shapes_do_not_change_the_bytes_and_resume_counts_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let mask = demo(dir.path());
        let mut reference = None;
        for (depth, writers) in [(1, 1), (2, 2), (5, 4)] {
            let path = dir.path().join(format!("m{depth}_{writers}.zarr"));
            let out = output(&mask, &path);
            let options = RunOptions {
                queue_depth: depth,
                writers,
                ..RunOptions::default()
            };
            let calls = Mutex::new(0u64);
            let summary = run(&mask, &out, &options, &|p| {
                *calls.lock().unwrap() += 1;
                assert!(p.blocks_done <= p.blocks_total && p.voxels_done <= p.voxels_total);
            })
            .unwrap();
            assert_eq!(summary.blocks_written, 5 * 3 * 3);
            assert_eq!(summary.voxels, 40 * 40 * 40);
            assert_eq!(
                *calls.lock().unwrap(),
                1 + 45,
                "once at the start, once per block"
            );
            let files = bytes(&path);
            match &reference {
                None => reference = Some((files, summary.trained)),
                Some((f, t)) => {
                    assert_eq!(&files, f, "depth {depth}, writers {writers}");
                    assert_eq!(&summary.trained, t);
                }
            }
            let again = RunOptions {
                resume: true,
                ..options
            };
            let resumed = run(&mask, &out, &again, &|_| {}).unwrap();
            assert_eq!((resumed.blocks_written, resumed.blocks_skipped), (0, 45));
        }
    }

    #[test]
    fn a_write_error_stops_every_stage_and_is_returned() {
        let dir = tempfile::tempdir().unwrap();
        let mask = demo(dir.path());
        let path = dir.path().join("m.zarr");
        let out = output(&mask, &path);
        out.create().unwrap();
        // Chunks [0, 2, y, x] go under `c/0/2/`: a file there makes their writes fail, midway.
        std::fs::create_dir_all(path.join("c/0")).unwrap();
        std::fs::write(path.join("c/0/2"), b"in the way").unwrap();
        for writers in [1, 3] {
            let options = RunOptions {
                writers,
                ..RunOptions::default()
            };
            let err = run(&mask, &out, &options, &|_| {}).unwrap_err().to_string();
            assert!(
                err.contains(&path.display().to_string()) && err.contains("cannot write chunk"),
                "{err}"
            );
        }
    }
}
