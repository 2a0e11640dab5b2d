//! The `annomask` command line: `compute`, `inspect`, `demo`, `bench`, `gpu-info`. Built with
//! the `cli` feature; `gpu-info` also needs the `gpu` feature (without it, `--engine gpu` fails
//! and `auto` is the CPU).

/// `println!` that ignores a closed stdout (`annomask inspect ... | head` must not panic).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// `print!` that ignores a closed stdout.
macro_rules! say_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout().lock(), $($arg)*);
    }};
}

mod args;
mod bench;
mod compute;
mod demo;
#[cfg(feature = "gpu")]
mod gpu_info;
mod inspect;
mod progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Missing-annotation masks for volumetric EM label data, on the GPU or the CPU.
#[derive(Parser, Debug)]
#[command(name = "annomask", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Compute the masks of label arrays or CellMap crop groups into zarr arrays, block by block
    /// (resumable, shardable).
    Compute(compute::ComputeArgs),
    /// Show a label array's layout, geometry, annotation metadata, plan and warnings, or a CellMap
    /// crop group's classes, plan and warnings.
    Inspect(inspect::InspectArgs),
    /// Synthesise a crop with annotation metadata, mask it, and summarise each channel.
    Demo(demo::DemoArgs),
    /// Time the engines against a memcpy and numpy, or (--pipeline) whole compute runs against
    /// plain zarrs I/O and a Python pipeline.
    Bench(bench::BenchArgs),
    /// Show the GPU adapters found, the one --engine gpu selects (driver, limits), and what
    /// --engine auto picks and why.
    #[cfg(feature = "gpu")]
    GpuInfo(gpu_info::GpuInfoArgs),
}

/// What a subcommand fails with: a library error, or an option that does not fit the input.
#[derive(Debug)]
pub enum CliError {
    Lib(annomask::Error),
    Usage(String),
}

impl<E: Into<annomask::Error>> From<E> for CliError {
    fn from(e: E) -> Self {
        CliError::Lib(e.into())
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Lib(e) => e.fmt(f),
            CliError::Usage(message) => f.write_str(message),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Compute(args) => compute::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Bench(args) => bench::run(args),
        #[cfg(feature = "gpu")]
        Command::GpuInfo(args) => gpu_info::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
