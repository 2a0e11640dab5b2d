//! The `annomask` command line: `compute`, `inspect`, `demo`.

mod args;
mod compute;
mod demo;
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
    /// Compute the masks of label arrays into zarr arrays, block by block (resumable, shardable).
    Compute(compute::ComputeArgs),
    /// Show a label array's layout, geometry, annotation metadata, plan and warnings.
    Inspect(inspect::InspectArgs),
    /// Synthesise a crop with annotation metadata, mask it, and summarise each channel.
    Demo(demo::DemoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Compute(args) => compute::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Demo(args) => demo::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
