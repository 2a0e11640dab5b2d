//! The `annomask` command line: `demo`, `inspect`, `compute`, `bench`.

mod demo;

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
    /// Synthesise a crop with annotation metadata, mask it, and summarise each channel.
    Demo(demo::DemoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
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
