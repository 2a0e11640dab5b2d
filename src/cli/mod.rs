//! The `annomask` command line: `compute`, `inspect`, `demo`, `bench`, `gpu-info`. Built with
//! the `cli` feature; `gpu-info` also needs the `gpu` feature (without it, `--engine gpu` fails
//! and `auto` is the CPU).
//!
//! [`main`] is the whole command: the `annomask` binary (`src/bin/annomask/main.rs`) calls it
//! with its arguments, and so does the Python package's `annomask` console script (through
//! `annomask._annomask.cli_main`), so both are the same program.

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

use std::ffi::OsString;
use std::io::Write as _;

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
pub(crate) enum CliError {
    Lib(crate::Error),
    Usage(String),
}

impl<E: Into<crate::Error>> From<E> for CliError {
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

/// Runs the `annomask` command line on `args` (the program name first, as in
/// [`std::env::args_os`]) and returns the process exit status: 0 on success (and for `--help`
/// and `--version`), 1 when the command fails (after an `error: ...` line on stderr), 2 for a
/// usage error (clap's message on stderr). Output goes to stdout and progress to stderr, as the
/// binary's; unlike clap's `parse`, nothing here calls `std::process::exit`, so a caller hosting
/// it (the Python console script) ends the process itself.
pub fn main<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let code = match Cli::try_parse_from(args) {
        // What clap's `Error::exit` does, less the exit: the message (help and version on
        // stdout, errors on stderr; a broken pipe swallowed), then the status.
        Err(e) => {
            let _ = e.print();
            e.exit_code()
        }
        Ok(cli) => {
            let result = match cli.command {
                Command::Compute(args) => compute::run(args),
                Command::Inspect(args) => inspect::run(args),
                Command::Demo(args) => demo::run(args),
                Command::Bench(args) => bench::run(args),
                #[cfg(feature = "gpu")]
                Command::GpuInfo(args) => gpu_info::run(args),
            };
            match result {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("error: {e}");
                    1
                }
            }
        }
    };
    // A binary's stdout is flushed when its `main` returns; a library's is not (the Python
    // interpreter exits without Rust's runtime clean-up), so flush it here.
    let _ = std::io::stdout().flush();
    code
}
