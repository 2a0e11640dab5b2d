//! `annomask compute`: masks one or many label arrays or CellMap crop groups into zarr arrays,
//! block by block.

use std::path::{Path, PathBuf};

use crate::batch::{self, OutputTemplate};
use crate::blocks::Shard;
use crate::output::{MaskOutput, OutputOptions};
use crate::pipeline::{self, RunOptions, Summary};
use crate::zarr_array::Compression;
use crate::{ChannelGroupings, Engine, EngineChoice, MissingAnnotationsMask, Roi, ZarrFormat};
use clap::Args;

use crate::cli::CliError;
use crate::cli::args::{CropArgs, MaskArgs, StoreArgs, check_source};
use crate::cli::progress::{Reporter, duration, voxel_rate};

#[derive(Args, Debug)]
pub struct ComputeArgs {
    /// Label arrays or CellMap crop groups (zarr v2 or v3 directories, N5 arrays, or s3://,
    /// gs:// or https:// URLs of them), or quoted glob patterns matching them (in a URL: over
    /// the store's keys).
    #[arg(required = true, value_name = "LABELS")]
    labels: Vec<String>,
    /// Channel groupings: JSON `[["mito", [3, 4, 5]], ...]` (label ids) or
    /// `[["mito", ["mito_mem", "mito_lum"]], ...]` (class names, for crop groups), or TOML
    /// `groupings = [...]`.
    #[arg(long, value_name = "FILE")]
    groupings: PathBuf,
    /// Output array (a local path, or an s3:// or gs:// URL). With several inputs, a template:
    /// {name} (crop), {stem}, {path}, {index}.
    #[arg(long, value_name = "OUT.zarr")]
    out: String,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    mask: MaskArgs,
    #[command(flatten)]
    crop: CropArgs,
    /// auto (the CPU, or a hardware GPU where it measures faster end to end on a trial block;
    /// see docs/auto-engine.md), cpu or gpu.
    #[arg(long, default_value = "auto")]
    engine: EngineChoice,
    /// Recompute every block on the CPU and fail on any difference.
    #[arg(long)]
    verify: bool,
    /// Output chunk shape: one value per spatial axis (all channels per chunk), or the channel
    /// axis first. Default: (channels, *label chunk shape).
    #[arg(long, value_delimiter = ',', value_name = "Z,Y,X")]
    chunks: Option<Vec<u64>>,
    /// Output zarr format (default: the input's).
    #[arg(long, value_parser = clap::value_parser!(u8).range(2..=3))]
    zarr_format: Option<u8>,
    /// Output chunk compression: raw, blosc-lz4, blosc-zstd, zstd or gzip.
    #[arg(long, default_value = "blosc-lz4")]
    compression: Compression,
    /// Compute only this region, in world units: begin:end, e.g. 0,0,0:512,512,512 (voxel-aligned,
    /// inside every input).
    #[arg(long, value_name = "BEGIN:END", allow_hyphen_values = true)]
    roi: Option<Roi>,
    /// Skip chunks that are already written (they are complete: chunks are written atomically).
    #[arg(long)]
    resume: bool,
    /// Compute the i-th of n disjoint chunk-aligned parts (job arrays), e.g. 0/4.
    #[arg(long, default_value = "0/1", value_name = "I/N")]
    shard: Shard,
    /// Threads of the CPU engine (and of chunk decoding). Default: one per core.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=4096))]
    threads: Option<u64>,
    /// Computed blocks waiting to be written (memory: about depth + readers + writers blocks).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
    queue_depth: u64,
    /// Threads encoding and writing chunks; more keep more writes in flight (slow or network
    /// storage). 0: each reader writes the blocks it computed (fast local storage).
    /// [default: 2; 8 for an object-store output]
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=64))]
    writers: Option<u64>,
    /// Threads reading, decoding and computing blocks (each on its own thread when there are
    /// at least as many as engine threads); each keeps one request in flight on an object
    /// store. [default: 2; 16 when an input is an object-store URL]
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=64))]
    readers: Option<u64>,
    /// The memory a run may hold at once (labels and masks of the blocks in flight), e.g.
    /// 16GiB; output chunks whose blocks do not fit are refused, compressed label chunks
    /// larger than a quarter of it too. [default: 8GiB, or ANNOMASK_MEMORY_BUDGET]
    #[arg(long, value_name = "BYTES", default_value_t = crate::budget::MemoryBudget::default())]
    memory_budget: crate::budget::MemoryBudget,
    /// No progress and no summary; errors only.
    #[arg(long, short)]
    quiet: bool,
}

/// Readers when an input is an object-store URL: requests in flight, enough to hide 20 ms a
/// request (BENCHMARKS.md, "Remote data").
pub const REMOTE_READERS: usize = 16;
/// Writers when the output is an object-store URL.
pub const REMOTE_WRITERS: usize = 8;

pub fn run(args: ComputeArgs) -> Result<(), CliError> {
    if let Some(n) = args.threads {
        crate::cli::args::start_threads(n)?;
    }
    let groupings = ChannelGroupings::from_file(&args.groupings)?;
    let store = args.store.options();
    let inputs = batch::expand_inputs(&args.labels, store)?;
    let outs = OutputTemplate::new(args.out.as_str()).render_all(&inputs)?;
    let mut options = args.mask.options().engine(args.engine).verify(args.verify);
    options.store = store;
    let crop_options = args.crop.options();
    let output_options = OutputOptions {
        format: args.zarr_format.map(|f| {
            if f == 2 {
                ZarrFormat::V2
            } else {
                ZarrFormat::V3
            }
        }),
        chunks: args.chunks.clone(),
        compression: args.compression,
        memory_budget: args.memory_budget,
        store,
    };

    // Check every input and output before writing anything and before looking for a GPU: the
    // masks are opened with the CPU engine, and given the chosen one afterwards.
    let mut checked = Vec::with_capacity(inputs.len());
    for (input, out) in inputs.iter().zip(&outs) {
        let (node, format) = check_source(input, &args.mask, &args.crop, store)?;
        let source = format.open(&node, groupings.clone(), &options, &crop_options)?;
        let mut mask = MissingAnnotationsMask::from_source(source, options, Engine::cpu());
        mask.set_memory_budget(args.memory_budget);
        let region = match &args.roi {
            Some(roi) => Some(
                mask.volume()
                    .geometry()
                    .voxel_region(&input.display().to_string(), roi)?,
            ),
            None => None,
        };
        let output = MaskOutput::new(out, &mask, region.as_ref(), &output_options)?;
        output.check()?;
        checked.push((input, mask, output));
    }
    let engine = Engine::select(options.engine)?;
    let jobs: Vec<_> = checked
        .into_iter()
        .map(|(input, mask, output)| (input, mask.with_engine(engine.clone()), output))
        .collect();

    if !args.quiet {
        say!("engine: {}", engine.describe());
    }
    // Object stores answer each request after tens of milliseconds: more readers (writers)
    // keep more requests in flight; the memory check above them counts every one.
    let is_url = |p: &PathBuf| crate::remote::is_url(&p.to_string_lossy());
    let local = RunOptions::default();
    let run_options = RunOptions {
        shard: args.shard,
        resume: args.resume,
        queue_depth: args.queue_depth as usize,
        writers: match (args.writers, outs.iter().any(is_url)) {
            (Some(n), _) => n as usize,
            (None, true) => REMOTE_WRITERS,
            (None, false) => local.writers,
        },
        readers: match (args.readers, inputs.iter().any(is_url)) {
            (Some(n), _) => n as usize,
            (None, true) => REMOTE_READERS,
            (None, false) => local.readers,
        },
    };
    let count = jobs.len();
    for (i, (input, mask, output)) in jobs.iter().enumerate() {
        let label = if count > 1 {
            format!("[{}/{count}] {}", i + 1, source_name(input, mask))
        } else {
            source_name(input, mask)
        };
        if !args.quiet {
            let shard = if run_options.shard.is_whole() {
                String::new()
            } else {
                format!(" (shard {})", run_options.shard)
            };
            say!("\n{label} -> {}{shard}", output.root().display());
        }
        let summary = compute_one(mask, output, &run_options, &label, args.quiet)?;
        if !args.quiet {
            print_summary(mask, &summary, !run_options.shard.is_whole());
        }
    }
    Ok(())
}

/// How a source is named in the log: its path, and for a crop group the scale read.
pub fn source_name(input: &Path, mask: &MissingAnnotationsMask) -> String {
    match mask.source().describe() {
        Some(how) => format!("{} ({how})", input.display()),
        None => input.display().to_string(),
    }
}

/// Runs the pipeline for one crop with a progress reporter.
pub fn compute_one(
    mask: &MissingAnnotationsMask,
    output: &MaskOutput,
    options: &RunOptions,
    label: &str,
    quiet: bool,
) -> Result<Summary, crate::Error> {
    let reporter = Reporter::new(quiet, label);
    let summary = pipeline::run(mask, output, options, &|p| reporter.update(p));
    reporter.finish();
    summary
}

/// The per-channel table and the run's numbers.
/// `partial`: this run computes only part of the output (a shard).
pub fn print_summary(mask: &MissingAnnotationsMask, summary: &Summary, partial: bool) {
    let seconds = summary.elapsed.as_secs_f64();
    let skipped = if summary.blocks_skipped > 0 {
        format!(", {} skipped as complete", summary.blocks_skipped)
    } else {
        String::new()
    };
    let removed = if summary.temporaries_removed > 0 {
        format!(
            ", {} stale temporary file(s) of a killed run removed",
            summary.temporaries_removed
        )
    } else {
        String::new()
    };
    say!(
        "wrote {} block(s){skipped}{removed}: {} channels x {} voxels in {} ({}; busy, summed over threads: read {}, compute {}, write {})",
        summary.blocks_written,
        mask.num_channels(),
        summary.voxels,
        duration(seconds),
        voxel_rate(summary.voxels as f64 / seconds.max(1e-9)),
        duration(summary.read_time.as_secs_f64()),
        duration(summary.compute_time.as_secs_f64()),
        duration(summary.write_time.as_secs_f64()),
    );
    if summary.blocks_written > 0 {
        let note = if summary.blocks_skipped > 0 || partial {
            " (in the blocks written by this run)"
        } else {
            ""
        };
        say!("trained voxels per channel{note}:");
        say_raw!(
            "{}",
            crate::report::channel_table_counts(mask, &summary.trained, summary.voxels)
        );
    }
}
