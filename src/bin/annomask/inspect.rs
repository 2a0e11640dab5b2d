//! `annomask inspect`: what annomask sees in a label array, for people or (`--json`) machines.

use std::path::PathBuf;

use annomask::inspect::Inspection;
use annomask::{Error, Groupings, LabelVolume};
use clap::Args;

use crate::args::MaskArgs;

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The label array (a zarr v2 or v3 directory).
    #[arg(value_name = "LABELS")]
    labels: PathBuf,
    /// Channel groupings, to show the plan per channel and check the ids against the metadata.
    #[arg(long, value_name = "FILE")]
    groupings: Option<PathBuf>,
    #[command(flatten)]
    mask: MaskArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: InspectArgs) -> Result<(), Error> {
    let groupings = args
        .groupings
        .as_ref()
        .map(Groupings::from_file)
        .transpose()?;
    let volume = LabelVolume::open(&args.labels)?;
    let report = Inspection::of(&volume, groupings.as_ref(), &args.mask.options())?;
    if args.json {
        say!("{}", report.to_json());
    } else {
        say_raw!("{report}");
    }
    Ok(())
}
