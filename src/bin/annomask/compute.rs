//! `annomask compute`: masks one or many label arrays into zarr arrays, block by block.

use std::path::PathBuf;

use annomask::batch::{self, OutputTemplate};
use annomask::blocks::Shard;
use annomask::output::{MaskOutput, OutputOptions};
use annomask::pipeline::{self, RunOptions, Summary};
use annomask::zarr_array::Compression;
use annomask::{
    Engine, EngineChoice, Error, Groupings, LabelVolume, MissingAnnotationsMask, Roi, ZarrFormat,
};
use clap::Args;

use crate::args::MaskArgs;
use crate::progress::{Reporter, duration, voxel_rate};

#[derive(Args, Debug)]
pub struct ComputeArgs {
    /// Label arrays (zarr v2 or v3 directories), or quoted glob patterns matching them.
    #[arg(required = true, value_name = "LABELS")]
    labels: Vec<String>,
    /// Channel groupings: JSON `[["mito", [3, 4, 5]], ...]` or TOML `groupings = [...]`.
    #[arg(long, value_name = "FILE")]
    groupings: PathBuf,
    /// Output array. With several inputs, a template: {name} (crop), {stem}, {path}, {index}.
    #[arg(long, value_name = "OUT.zarr")]
    out: String,
    #[command(flatten)]
    mask: MaskArgs,
    /// auto (a hardware GPU if found, else the CPU), cpu or gpu.
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
    /// Blocks waiting between read, compute and write (memory: about 2 x depth + 2 + writers
    /// blocks).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
    queue_depth: u64,
    /// Threads encoding and writing chunks; more keep more writes in flight (slow or network
    /// storage).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
    writers: u64,
    /// No progress and no summary; errors only.
    #[arg(long, short)]
    quiet: bool,
}

pub fn run(args: ComputeArgs) -> Result<(), Error> {
    if let Some(n) = args.threads {
        // Fails only if a pool exists already, which it does not this early.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n as usize)
            .build_global();
    }
    let groupings = Groupings::from_file(&args.groupings)?;
    let inputs = batch::expand_inputs(&args.labels)?;
    let outs = OutputTemplate::new(&args.out).render_all(&inputs)?;
    let options = args.mask.options().engine(args.engine).verify(args.verify);
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
    };

    // Check every input and output before writing anything (and before looking for a GPU).
    let mut volumes = Vec::with_capacity(inputs.len());
    for input in &inputs {
        let volume = LabelVolume::open(input)?;
        let region = match &args.roi {
            Some(roi) => Some(volume.geometry().voxel_region(volume.name(), roi)?),
            None => None,
        };
        annomask::LabelMetadata::from_attributes(
            volume.name(),
            volume.attributes(),
            options.allow_missing_metadata,
        )?;
        volumes.push((volume, region));
    }
    let engine = Engine::select(options.engine)?;
    let mut jobs = Vec::with_capacity(inputs.len());
    for ((volume, region), out) in volumes.into_iter().zip(&outs) {
        let mask = MissingAnnotationsMask::from_volume(
            volume,
            groupings.clone(),
            options,
            engine.clone(),
        )?;
        let output = MaskOutput::new(out, &mask, region.as_ref(), &output_options)?;
        output.check()?;
        jobs.push((mask, output));
    }

    if !args.quiet {
        say!("engine: {}", engine.describe());
    }
    let run_options = RunOptions {
        shard: args.shard,
        resume: args.resume,
        queue_depth: args.queue_depth as usize,
        writers: args.writers as usize,
    };
    let count = jobs.len();
    for (i, (mask, output)) in jobs.iter().enumerate() {
        let label = if count > 1 {
            format!("[{}/{count}] {}", i + 1, mask.volume().name())
        } else {
            mask.volume().name().to_string()
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

/// Runs the pipeline for one crop with a progress reporter.
pub fn compute_one(
    mask: &MissingAnnotationsMask,
    output: &MaskOutput,
    options: &RunOptions,
    label: &str,
    quiet: bool,
) -> Result<Summary, Error> {
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
        "wrote {} block(s){skipped}{removed}: {} channels x {} voxels in {} ({}; busy: read {}, compute {}, write {} over all writers)",
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
            annomask::report::channel_table_counts(mask, &summary.trained, summary.voxels)
        );
    }
}
