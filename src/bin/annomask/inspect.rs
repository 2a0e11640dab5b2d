//! `annomask inspect`: what annomask sees in a label array or a CellMap crop group, for people
//! or (`--json`) machines.

use std::path::PathBuf;

use annomask::cellmap::CropReport;
use annomask::inspect::Inspection;
use annomask::{ChannelGroupings, CropGroup, LabelVolume};
use clap::Args;

use crate::CliError;
use crate::args::{CropArgs, MaskArgs, check_source};

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The label array or CellMap crop group (a zarr v2 or v3 directory).
    #[arg(value_name = "LABELS")]
    labels: PathBuf,
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
    let path = &annomask::store::local_path(&args.labels.to_string_lossy())?;
    if check_source(path, &args.mask, &args.crop)? {
        // A crop group: its class table, the plan, warnings. What would stop `compute` (a
        // scale some class lacks, arrays that disagree) is a warning here.
        let groupings = groupings.map(|g| g.into_classes(path)).transpose()?;
        let crop = CropGroup::open(path)?;
        let report = CropReport::new(&crop, groupings.as_ref(), &args.crop.options());
        if args.json {
            say!(
                "{}",
                serde_json::to_string_pretty(&report.to_json()).expect("JSON values serialise")
            );
        } else {
            say_raw!("{report}");
        }
        return Ok(());
    }
    let volume = LabelVolume::open(path)?;
    volume.check_decodes()?;
    let groupings = groupings.map(|g| g.into_ids(path)).transpose()?;
    let report = Inspection::of(&volume, groupings.as_ref(), &args.mask.options())?;
    if args.json {
        say!("{}", report.to_json());
    } else {
        say_raw!("{report}");
    }
    Ok(())
}
