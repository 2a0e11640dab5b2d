//! `annomask bench`: the engines against a memcpy of the same bytes and the numpy reference
//! ([`engines`]), or with `--pipeline` whole compute jobs against plain zarrs I/O and a
//! Python user's pipeline ([`compute`]), or with `--feeder` the training feeder against a
//! DaCapo-style numpy feeder ([`feeder`]), in one run.
//!
//! The harness is part of the binary, not of the library: it starts Python and reads
//! `/proc/cpuinfo`, which no library user needs.

mod compute;
mod engines;
mod feeder;
mod feeder_cellmap;

use std::path::{Path, PathBuf};

use crate::{EngineChoice, LabelDtype, MaskPolicy};
use clap::Args;

use self::compute::ComputeBenchConfig;
use self::engines::BenchConfig;
use self::feeder::FeederBenchConfig;
use crate::cli::CliError;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Edge of the cubic volume, in voxels (the kernel benchmark holds the labels and masks in
    /// memory: 1024 takes about 16 GiB).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=1024))]
    size: u64,
    /// Number of channels.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=1024))]
    channels: u64,
    /// Label dtype: uint8/16/32/64, int8/16/32/64 [default: uint64] (kernels only; the
    /// pipeline's and the feeder's crops are uint64).
    #[arg(long, conflicts_with_all = ["pipeline", "feeder"])]
    dtype: Option<LabelDtype>,
    /// Mask policy [default: whole-channel] (kernels only; the pipeline and the feeder
    /// compare with DaCapo's whole-channel mask).
    #[arg(long, conflicts_with_all = ["pipeline", "feeder"])]
    policy: Option<MaskPolicy>,
    /// auto (the CPU, and the GPU if any adapter, software ones included, is found), cpu or
    /// gpu. With --pipeline: the engine of the compute runs, chosen as `compute` does.
    #[arg(long, default_value = "auto")]
    engine: EngineChoice,
    /// Rounds (interleaved); the best is reported. [default: 5, with --pipeline 3]
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1000))]
    repeat: Option<u64>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also write the JSON report to this file (the table or the JSON is printed as well).
    #[arg(long, value_name = "FILE")]
    json_out: Option<PathBuf>,
    /// Python with numpy (and zarr 3, for --pipeline) for the reference rows
    /// [default: $ANNOMASK_REFERENCE_PYTHON, else /tmp/annomask-ref/bin/python if present].
    #[arg(long, value_name = "PYTHON", conflicts_with = "no_reference")]
    reference: Option<PathBuf>,
    /// The reference script [default: $ANNOMASK_REFERENCE_SCRIPT, else the crate's
    /// reference/reference_mask.py].
    #[arg(long, value_name = "FILE", conflicts_with = "no_reference")]
    reference_script: Option<PathBuf>,
    /// Skip the numpy reference / Python pipeline rows.
    #[arg(long)]
    no_reference: bool,
    /// Time whole compute jobs on a SIZE^3 uint64 zarr crop: annomask compute, plain zarrs read
    /// + write (the ceiling), and a Python pipeline (zarr-python + DaCapo's numpy mask).
    #[arg(long)]
    pipeline: bool,
    /// Time the training feeder: batches of random ROIs (--roi edge) of a SIZE^3 uint64 zarr
    /// crop, targets and mask fused, against a DaCapo-style numpy feeder over the same ROIs;
    /// then on a SIZE^3 CellMap crop group in the challenge layout, with and without the
    /// chunk cache, against cellmap-data's loader (where installed) over the same ROIs.
    #[arg(long, conflicts_with = "pipeline")]
    feeder: bool,
    /// With --feeder: edge of the cubic ROI, in voxels.
    #[arg(long, default_value_t = 128, requires = "feeder", value_parser = clap::value_parser!(u64).range(1..=1024))]
    roi: u64,
    /// With --feeder: batches (of one ROI) per round.
    #[arg(long, default_value_t = 16, requires = "feeder", value_parser = clap::value_parser!(u64).range(1..=100000))]
    batches: u64,
    /// With --feeder: Python with cellmap-data for the cellmap-data rows [default:
    /// $ANNOMASK_CELLMAP_PYTHON, else the reference's Python, if `cellmap_data` is importable
    /// there; else the rows are skipped with a note].
    #[arg(
        long,
        value_name = "PYTHON",
        requires = "feeder",
        conflicts_with = "no_cellmap"
    )]
    cellmap_python: Option<PathBuf>,
    /// With --feeder: skip the cellmap-data rows.
    #[arg(long, requires = "feeder")]
    no_cellmap: bool,
    /// With --pipeline: where to write the crop and outputs (a temporary directory inside it,
    /// removed afterwards) [default: the system's temporary directory].
    #[arg(long, value_name = "DIR", requires = "pipeline")]
    dir: Option<PathBuf>,
}

/// `ANNOMASK_REFERENCE_PYTHON`, else `/tmp/annomask-ref/bin/python` (the venv that
/// `reference/setup.sh` makes) if it exists.
fn default_reference_python() -> Option<PathBuf> {
    std::env::var_os("ANNOMASK_REFERENCE_PYTHON")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from("/tmp/annomask-ref/bin/python")).filter(|p| p.exists()))
}

/// `ANNOMASK_REFERENCE_SCRIPT`, else the crate's `reference/reference_mask.py` (which may not
/// exist where the binary runs outside its source tree).
fn default_reference_script() -> PathBuf {
    std::env::var_os("ANNOMASK_REFERENCE_SCRIPT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("reference/reference_mask.py")
        })
}

/// The Python for the cellmap-data rows: `--cellmap-python`, else `$ANNOMASK_CELLMAP_PYTHON`,
/// else the reference's Python; `Err` says why there is none (`cellmap_data` is looked up with
/// `importlib.util.find_spec`, which does not import it).
fn cellmap_python(args: &BenchArgs) -> Result<PathBuf, String> {
    if args.no_cellmap {
        return Err("--no-cellmap".into());
    }
    let (python, whence) = match (
        &args.cellmap_python,
        std::env::var_os("ANNOMASK_CELLMAP_PYTHON"),
    ) {
        (Some(p), _) => (p.clone(), "--cellmap-python"),
        (None, Some(p)) => (PathBuf::from(p), "$ANNOMASK_CELLMAP_PYTHON"),
        (None, None) => match default_reference_python() {
            Some(p) => (p, "the reference's Python"),
            None => {
                return Err(
                    "no Python found (set ANNOMASK_CELLMAP_PYTHON to a Python with \
                            cellmap-data)"
                        .into(),
                );
            }
        },
    };
    let found = std::process::Command::new(&python)
        .args([
            "-c",
            "import importlib.util, sys; sys.exit(importlib.util.find_spec('cellmap_data') is None)",
        ])
        .output();
    match found {
        Ok(o) if o.status.success() => Ok(python),
        Ok(_) => Err(format!(
            "cellmap_data is not installed in {} ({whence}; pip install cellmap-data there, or \
             set ANNOMASK_CELLMAP_PYTHON)",
            python.display()
        )),
        Err(e) => Err(format!("{} ({whence}): {e}", python.display())),
    }
}

/// The CPU model name from `/proc/cpuinfo`, where there is one (else the architecture).
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// The reference's Python and script: as given (each must exist), else the defaults (skipped
/// with a note when absent).
fn reference(args: &BenchArgs) -> Result<Option<(PathBuf, PathBuf)>, CliError> {
    if args.no_reference {
        return Ok(None);
    }
    for (flag, path) in [
        ("--reference", &args.reference),
        ("--reference-script", &args.reference_script),
    ] {
        if let Some(p) = path.as_ref().filter(|p| !p.is_file()) {
            return Err(CliError::Usage(format!(
                "{flag} {}: no such file",
                p.display()
            )));
        }
    }
    let python = args.reference.clone().or_else(default_reference_python);
    let script = args
        .reference_script
        .clone()
        .unwrap_or_else(default_reference_script);
    Ok(python.filter(|_| script.is_file()).map(|p| (p, script)))
}

pub fn run(args: BenchArgs) -> Result<(), CliError> {
    let reference = reference(&args)?;
    if args.pipeline {
        let config = ComputeBenchConfig {
            size: args.size as usize,
            channels: args.channels as usize,
            engine: args.engine,
            repeat: args.repeat.unwrap_or(3) as usize,
            dir: args.dir.clone(),
            reference,
        };
        let report = compute::run(&config, &|line| eprintln!("bench: {line}"))?;
        return show(&report, report.to_json(), &args);
    }
    if args.feeder {
        let config = FeederBenchConfig {
            size: args.size as usize,
            roi: args.roi as usize,
            channels: args.channels as usize,
            batches: args.batches as usize,
            engine: args.engine,
            repeat: args.repeat.unwrap_or(3) as usize,
            reference,
            cellmap: cellmap_python(&args),
        };
        let report = feeder::run(&config, &|line| eprintln!("bench: {line}"))?;
        return show(&report, report.to_json(), &args);
    }
    let config = BenchConfig {
        size: args.size as usize,
        channels: args.channels as usize,
        dtype: args.dtype.unwrap_or(LabelDtype::U64),
        policy: args.policy.unwrap_or(MaskPolicy::WholeChannel),
        engines: vec![args.engine],
        repeat: args.repeat.unwrap_or(5) as usize,
        reference,
    };
    let report = engines::run(&config)?;
    show(&report, report.to_json(), &args)
}

/// Prints a report as its table, or as pretty JSON (`--json`), and writes the JSON to
/// `--json-out`.
fn show(
    report: &dyn std::fmt::Display,
    json: serde_json::Value,
    args: &BenchArgs,
) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(&json).expect("JSON values serialise");
    if args.json {
        say!("{text}");
    } else {
        say_raw!("{report}");
    }
    if let Some(path) = &args.json_out {
        std::fs::write(path, format!("{text}\n")).map_err(|e| {
            CliError::Usage(format!("--json-out {}: cannot write: {e}", path.display()))
        })?;
    }
    Ok(())
}
