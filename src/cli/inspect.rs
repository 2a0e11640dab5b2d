//! `annomask inspect`: what annomask sees in a label array or a CellMap crop group, for people
//! or (`--json`) machines.

use std::path::PathBuf;

use crate::ChannelGroupings;
use clap::Args;

use crate::cli::CliError;
use crate::cli::args::{CropArgs, MaskArgs, StoreArgs, check_source};

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The label array or CellMap crop group (a zarr v2 or v3 directory, an N5 array, or an
    /// s3://, gs:// or https:// URL of one).
    #[arg(value_name = "LABELS")]
    labels: PathBuf,
    #[command(flatten)]
    store: StoreArgs,
    /// Channel groupings (label ids, or class names for a crop group), to show the plan per
    /// channel and check them against the source.
    #[arg(long, value_name = "FILE")]
    groupings: Option<PathBuf>,
    #[command(flatten)]
    mask: MaskArgs,
    #[command(flatten)]
    crop: CropArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: InspectArgs) -> Result<(), CliError> {
    let groupings = args
        .groupings
        .as_ref()
        .map(ChannelGroupings::from_file)
        .transpose()?;
    let (node, format) = check_source(&args.labels, &args.mask, &args.crop, args.store.options())?;
    let report = format.inspect(&node, groupings, &args.mask.options(), &args.crop.options())?;
    if args.json {
        say!("{}", report.to_json());
    } else {
        say_raw!("{report}");
    }
    Ok(())
}
