//! The blockwise pipeline behind `compute` (SPEC 6): read, compute and write overlap, memory
//! stays bounded whatever the volume size.
//!
//! ```text
//! worker threads (read + compute) --(queue: depth blocks)--> writer threads
//! ```
//!
//! Each worker (default 2) takes the next block, reads and decodes its labels and computes its
//! mask at once, while the labels are still in the worker's cache; the workers share the engine
//! (the GPU engine takes one block at a time, the other worker reads meanwhile). With at least
//! as many workers as CPU engine threads, each worker computes on its own thread; with fewer,
//! the CPU engine spreads each block over its thread pool. Writers (default 2) encode and write
//! the computed blocks, so block `k+1` is read and computed while block `k` is written, and a
//! run takes about as long as its slowest stage, not the sum. Several writers keep more than
//! one chunk write in flight, which hides per-file latency (`fsync`, network filesystems);
//! chunks are independent and written atomically, so their order does not matter. With no
//! writers (`writers: 0`) each worker writes the blocks it computed itself: on fast local
//! storage that beats handing each mask to another thread. At most `depth + workers + writers`
//! blocks are alive at once, whatever the volume's size: the full volume and the full mask are
//! never in memory. Per-channel counts of trained voxels are accumulated as blocks stream by,
//! looking at one channel of each kind ([`crate::source::SourcePlan::first_equal_channels`]).
//!
//! The first error of any stage stops the run: a failed writer drops the queue, so the workers
//! stop at their next block, and a failed worker tells the others to stop before their next
//! block; the error is returned. Chunks written before it are complete
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

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use crate::blocks::{Block, Shard};
use crate::error::Error;
use crate::mask::MissingAnnotationsMask;
use crate::sink::MaskSink;

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
    /// Computed blocks waiting for the writers (default 2, at least 1).
    pub queue_depth: usize,
    /// Threads encoding and writing chunks (default 2). 0: each worker writes the blocks it
    /// computed itself, with no queue (fastest on fast local storage, where handing a block to
    /// another thread costs more than it hides).
    pub writers: usize,
    /// Worker threads reading, decoding and computing blocks (default 2, at least 1).
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
    /// Time the workers spent reading (and decoding) labels (summed over workers).
    pub read_time: Duration,
    /// Time the workers spent computing masks and counting trained voxels (summed over workers).
    pub compute_time: Duration,
    /// Time the writers spent encoding and writing chunks (summed over writers).
    pub write_time: Duration,
}

/// Computes the mask of `mask` into `output` block by block (see the module docs): prepares the
/// output ([`MaskSink::prepare`]: its metadata, this shard's stale temporary files), skips complete blocks under
/// `resume`, and calls `progress` after each written block.
pub fn run(
    mask: &MissingAnnotationsMask,
    output: &dyn MaskSink,
    options: &RunOptions,
    progress: &(dyn Fn(&Progress) + Sync),
) -> Result<Summary, Error> {
    let start = Instant::now();
    let run_start = std::time::SystemTime::now();
    let num_workers = options.readers.max(1);
    let depth = options.queue_depth.max(1);
    let in_flight = if options.writers == 0 {
        num_workers
    } else {
        num_workers + depth + options.writers
    };
    output.check_memory(in_flight as u64)?;
    let grid = output.grid();
    let range = options.shard.range(grid.num_blocks());
    // Decode the first block's chunks before creating anything: a codec the input names but
    // cannot decode fails here, not midway with the output half written.
    if let Some(first) = range.clone().next() {
        mask.read_block(&output.source_region(&grid.block(first)))?;
    }
    let temporaries_removed = output.prepare(options.shard, run_start)?;
    let num_channels = mask.num_channels();
    // Blocks are taken one at a time from the shard's range (never listed: a grid may have
    // more blocks than memory holds numbers); under `resume` each is checked as it comes, and
    // complete ones leave the totals.
    let state = Mutex::new(Progress {
        blocks_done: 0,
        blocks_total: range.end - range.start,
        voxels_done: 0,
        voxels_total: grid.shard_voxels(options.shard),
        blocks_skipped: 0,
        elapsed: Duration::ZERO,
    });
    progress(&lock(&state).clone());

    let inline = options.writers == 0;
    let (write_tx, write_rx) = sync_channel::<Computed>(depth);
    // Shared by the writers; the first to fail drops it, which stops the workers.
    let write_rx = Mutex::new(Some(write_rx));
    let report = |block: &Block| {
        let mut p = lock(&state);
        p.blocks_done += 1;
        p.voxels_done += block.num_voxels();
        p.elapsed = start.elapsed();
        progress(&p);
    };
    let skip = |block: &Block| {
        let mut p = lock(&state);
        p.blocks_skipped += 1;
        p.blocks_total -= 1;
        p.voxels_total -= block.num_voxels();
        p.elapsed = start.elapsed();
        progress(&p);
    };
    let equal = mask.plan().first_equal_channels();
    let next_block = AtomicU64::new(range.start);
    let stop = AtomicBool::new(false);
    let pool = BufferPool::default();
    let writer = BlockWriter {
        output,
        pool: &pool,
        report: &report,
    };
    let (work_results, write_results) = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..num_workers)
            .map(|_| {
                let queue = (!inline).then(|| write_tx.clone());
                let work = Work {
                    mask,
                    output,
                    blocks: range.clone(),
                    next: &next_block,
                    resume: options.resume,
                    skip: &skip,
                    equal: &equal,
                    own_thread: num_workers >= rayon::current_num_threads(),
                    stop: &stop,
                    writer,
                };
                scope.spawn(move || work_stage(&work, queue))
            })
            .collect();
        drop(write_tx);
        let writers: Vec<_> = (0..options.writers)
            .map(|_| {
                let queue = &write_rx;
                let stop = &stop;
                scope.spawn(move || write_stage(&writer, queue, stop))
            })
            .collect();
        let worked: Vec<Result<Worked, Error>> = workers.into_iter().map(join).collect();
        let written: Vec<_> = writers.into_iter().map(join).collect();
        (worked, written)
    });
    let mut done = Worked::new(num_channels);
    let mut first_error = None;
    for result in work_results {
        match result {
            Ok(worked) => done.add(&worked),
            Err(e) => keep_first(&mut first_error, e),
        }
    }
    let (mut blocks_written, mut write_time) = (done.blocks_written, done.write_time);
    for result in write_results {
        match result {
            Ok((blocks, busy)) => {
                blocks_written += blocks;
                write_time += busy;
            }
            Err(e) => keep_first(&mut first_error, e),
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let blocks_skipped = lock(&state).blocks_skipped;
    Ok(Summary {
        trained: done.trained,
        voxels: done.voxels,
        blocks_written,
        blocks_skipped,
        temporaries_removed,
        elapsed: start.elapsed(),
        read_time: done.read_time,
        compute_time: done.compute_time,
        write_time,
    })
}

/// Keeps the first error that is not a consequence of another (a stage stopped because another
/// failed returns no error of its own); a panic is kept over anything else.
fn keep_first(first: &mut Option<Error>, e: Error) {
    let replace = match first {
        None => true,
        Some(Error::Panic { .. }) => false,
        Some(_) => matches!(e, Error::Panic { .. }),
    };
    if replace {
        *first = Some(e);
    }
}

/// Locks `m`, also after a thread panicked holding it (the data are counters: still valid).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs `f`, turning a panic into [`Error::Panic`] naming `stage`.
fn catch<T>(stage: &str, f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".into());
        Err(Error::Panic {
            stage: stage.to_string(),
            message,
        })
    })
}

/// What a worker shares with the others.
struct Work<'a> {
    mask: &'a MissingAnnotationsMask,
    output: &'a dyn MaskSink,
    /// The blocks of this run; the workers take the next one from `next`.
    blocks: std::ops::Range<u64>,
    next: &'a AtomicU64,
    /// Skip blocks whose chunks are all stored, reporting them to `skip`.
    resume: bool,
    skip: &'a (dyn Fn(&Block) + Sync),
    /// [`crate::source::SourcePlan::first_equal_channels`] of the mask.
    equal: &'a [Option<usize>],
    /// Compute on the worker's own thread (there are at least as many workers as engine
    /// threads), not on the engine's shared pool.
    own_thread: bool,
    /// Set by the first worker that fails: the others stop before their next block.
    stop: &'a AtomicBool,
    /// Where computed blocks go when the workers write their own blocks; its pool also lends
    /// the workers their mask buffers.
    writer: BlockWriter<'a>,
}

/// Writes computed blocks: a writer thread's, or each worker's with no writers.
#[derive(Clone, Copy)]
struct BlockWriter<'a> {
    output: &'a dyn MaskSink,
    /// Mask buffers handed back after writing, for the next blocks.
    pool: &'a BufferPool,
    /// Called after each block written.
    report: &'a (dyn Fn(&Block) + Sync),
}

impl BlockWriter<'_> {
    /// Encodes and writes `block`'s chunks from `data`, reports the block, and returns `data` to
    /// the pool; returns the time it took.
    fn write(&self, block: &Block, data: Vec<u8>) -> Result<Duration, Error> {
        let t = Instant::now();
        self.output.write_block(block, &data)?;
        let busy = t.elapsed();
        (self.report)(block);
        lock(self.pool).push(data);
        Ok(busy)
    }
}

/// What a worker did: per-channel trained voxels, voxels, blocks it wrote itself, and its busy
/// times.
struct Worked {
    trained: Vec<u64>,
    voxels: u64,
    blocks_written: u64,
    read_time: Duration,
    compute_time: Duration,
    write_time: Duration,
}

impl Worked {
    fn new(num_channels: usize) -> Self {
        Self {
            trained: vec![0; num_channels],
            voxels: 0,
            blocks_written: 0,
            read_time: Duration::ZERO,
            compute_time: Duration::ZERO,
            write_time: Duration::ZERO,
        }
    }

    fn add(&mut self, other: &Worked) {
        for (t, o) in self.trained.iter_mut().zip(&other.trained) {
            *t += o;
        }
        self.voxels += other.voxels;
        self.blocks_written += other.blocks_written;
        self.read_time += other.read_time;
        self.compute_time += other.compute_time;
        self.write_time += other.write_time;
    }
}

/// The result of a stage's thread (whose panics [`catch`] turned into errors already).
fn join<T>(handle: std::thread::ScopedJoinHandle<'_, Result<T, Error>>) -> Result<T, Error> {
    handle.join().unwrap_or_else(|_| {
        Err(Error::Panic {
            stage: "pipeline".into(),
            message: "a thread ended without a result".into(),
        })
    })
}

/// Reads, computes and counts blocks, taking the next block of `todo` each time (the workers
/// share `next`, so blocks go out roughly in order), and queues them for the writers, or
/// writes them itself without a `queue`. Stops early when the queue is closed (a writer
/// failed) or another worker failed; on its own error, tells the others to stop.
fn work_stage(work: &Work<'_>, queue: Option<SyncSender<Computed>>) -> Result<Worked, Error> {
    // The queue is dropped (unblocking the writers) however this ends, a panic included.
    let result = catch("reader", move || work_blocks(work, queue));
    if result.is_err() {
        work.stop.store(true, Ordering::Relaxed);
    }
    result
}

fn work_blocks(work: &Work<'_>, queue: Option<SyncSender<Computed>>) -> Result<Worked, Error> {
    let (mask, output) = (work.mask, work.output);
    let mut done = Worked::new(work.equal.len());
    // With a worker per engine thread or more, the blocks already keep every core busy: each
    // worker computes its blocks on its own thread, where the labels it just decoded are in
    // cache, instead of handing them to the shared pool.
    let own_pool = work
        .own_thread
        .then(|| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .use_current_thread()
                .build()
                .ok()
        })
        .flatten();
    loop {
        let k = work.next.fetch_add(1, Ordering::Relaxed);
        if k >= work.blocks.end || work.stop.load(Ordering::Relaxed) {
            break;
        }
        let block = output.grid().block(k);
        if work.resume && output.is_complete(&block)? {
            (work.skip)(&block);
            continue;
        }
        let region = output.source_region(&block);
        let t = Instant::now();
        let source = mask.read_block(&region)?;
        let read = t.elapsed();
        let n = block.num_voxels() as usize;
        let mut data = lock(work.writer.pool).pop().unwrap_or_default();
        data.resize(n * work.equal.len(), 0);
        match &own_pool {
            Some(pool) => pool.install(|| mask.compute_block(&source, &mut data))?,
            None => mask.compute_block(&source, &mut data)?,
        }
        drop(source);
        count_trained(&data, n, work.equal, &mut done.trained);
        done.compute_time += t.elapsed() - read;
        done.read_time += read;
        done.voxels += n as u64;
        match &queue {
            Some(queue) => {
                if queue.send((block, data)).is_err() {
                    break;
                }
            }
            None => {
                done.write_time += work.writer.write(&block, data)?;
                done.blocks_written += 1;
            }
        }
    }
    Ok(done)
}

/// Adds the 1 voxels of each channel of `data` (channel-major, `n` voxels a channel) to
/// `trained`, counting one channel of each kind (`equal`, see
/// [`crate::source::SourcePlan::first_equal_channels`]): zeroed channels add nothing, and a channel
/// equal to an earlier one adds that one's count.
fn count_trained(data: &[u8], n: usize, equal: &[Option<usize>], trained: &mut [u64]) {
    let mut counts = vec![0u64; equal.len()];
    for (c, first) in equal.iter().enumerate() {
        counts[c] = match *first {
            None => 0,
            Some(f) if f < c => counts[f],
            Some(_) => count_ones(&data[c * n..(c + 1) * n]),
        };
        trained[c] += counts[c];
    }
}

/// Writes blocks from the shared queue through `writer` until it is empty and closed, or
/// `stop` is set. On an error or a panic, drops the queue (stopping the workers, which are
/// blocked on it otherwise) and returns it.
fn write_stage(
    writer: &BlockWriter<'_>,
    input: &WriterQueue,
    stop: &AtomicBool,
) -> Result<(u64, Duration), Error> {
    let result = catch("writer", || {
        let mut written = 0;
        let mut busy = Duration::ZERO;
        loop {
            let next = {
                let queue = lock(input);
                match queue.as_ref() {
                    Some(rx) => rx.recv().ok(),
                    None => None,
                }
            };
            let Some((block, data)) = next else {
                break;
            };
            if stop.load(Ordering::Relaxed) {
                // A worker failed: drop the queue, so no other worker stays blocked on it.
                lock(input).take();
                break;
            }
            busy += writer.write(&block, data)?;
            written += 1;
        }
        Ok((written, busy))
    });
    if result.is_err() {
        lock(input).take();
        stop.store(true, Ordering::Relaxed);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::OutputOptions;
    use crate::{EngineChoice, MaskOptions, MaskPolicy, ZarrFormat, synth};

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

    fn output(mask: &MissingAnnotationsMask, path: &std::path::Path) -> crate::output::MaskOutput {
        let options = OutputOptions {
            chunks: Some(vec![8, 16, 16]),
            ..OutputOptions::default()
        };
        crate::output::MaskOutput::new(path, mask, None, &options).unwrap()
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
        for (depth, writers) in [(1, 1), (2, 2), (5, 4), (2, 0)] {
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
    fn trained_counts_equal_the_mask_with_any_number_of_workers() {
        let dir = tempfile::tempdir().unwrap();
        let crop = synth::write_demo_crop(dir.path(), 40, ZarrFormat::V3).unwrap();
        for policy in [MaskPolicy::WholeChannel, MaskPolicy::PerVoxel] {
            let options = MaskOptions::default()
                .engine(EngineChoice::Cpu)
                .policy(policy);
            let mask =
                MissingAnnotationsMask::open(&crop, synth::demo_groupings(), options).unwrap();
            let whole = mask.get(&mask.roi()).unwrap();
            let want: Vec<u64> = whole
                .outer_iter()
                .map(|channel| channel.iter().map(|&v| u64::from(v)).sum())
                .collect();
            // One worker computes on the shared pool, more than the pool's threads on their own.
            for readers in [1, rayon::current_num_threads() + 1] {
                let path = dir.path().join(format!("{policy:?}_{readers}.zarr"));
                let options = RunOptions {
                    readers,
                    ..RunOptions::default()
                };
                let summary = run(&mask, &output(&mask, &path), &options, &|_| {}).unwrap();
                assert_eq!(summary.trained, want, "{policy:?}, {readers} workers");
            }
        }
    }

    #[test]
    fn count_trained_counts_one_channel_of_each_kind() {
        // Channels: 0 counted, 1 zeroed, 2 equal to 0, 3 counted; 4 voxels each.
        let data = [1, 0, 1, 1, 9, 9, 9, 9, 7, 7, 7, 7, 0, 1, 0, 0];
        let mut trained = vec![10, 10, 10, 10];
        count_trained(&data, 4, &[Some(0), None, Some(0), Some(3)], &mut trained);
        assert_eq!(trained, [13, 10, 13, 11]);
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
        for writers in [0, 1, 3] {
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
