//! The `annomask` binary: the command line is the library's [`annomask::cli`] (built with the
//! `cli` feature), which the Python package's `annomask` console script runs too.

use std::process::ExitCode;

fn main() -> ExitCode {
    let code = annomask::cli::main(std::env::args_os());
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
