//! `annomask demo`: synthesise a crop with annotation metadata (or, `--cellmap`, a CellMap crop
//! group), run the real compute pipeline on it, and summarise each channel.

use std::path::PathBuf;

use annomask::cellmap::{self, CropReport};
use annomask::output::{MaskOutput, OutputOptions};
use annomask::pipeline::RunOptions;
use annomask::{
    CropGroup, CropOptions, EngineChoice, MaskOptions, MissingAnnotationsMask, ZarrFormat, synth,
};
use clap::Args;

use crate::CliError;
use crate::compute::{compute_one, print_summary};

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Edge length of the synthetic cubic crop, in voxels.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    size: u64,
    /// Engine: auto (the CPU, or a hardware GPU where it measures faster), cpu or gpu.
    #[arg(long, default_value = "auto")]
    engine: EngineChoice,
    /// Write the crop and its mask here instead of a temporary directory (kept afterwards).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Zarr format of the synthetic crop (and so of the mask).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(2..=3))]
    zarr_format: u8,
    /// Synthesise a CellMap crop group (challenge layout: one sub-group per class, scales s0
    /// and s1, groupings by class name) instead of a label array.
    #[arg(long)]
    cellmap: bool,
}

pub fn run(args: DemoArgs) -> Result<(), CliError> {
    let temp;
    let dir = match &args.out {
        Some(d) => annomask::store::local_path(&d.to_string_lossy())?,
        None => {
            temp = tempfile::tempdir().map_err(|e| annomask::StorageError::Write {
                path: std::env::temp_dir().display().to_string(),
                what: "a temporary directory".into(),
                message: annomask::error::Cause::error(e),
            })?;
            temp.path().to_path_buf()
        }
    };
    let format = if args.zarr_format == 2 {
        ZarrFormat::V2
    } else {
        ZarrFormat::V3
    };
    let options = MaskOptions::default().engine(args.engine);
    let mask = if args.cellmap {
        let crop = cellmap::synth::write_demo_crop(&dir, args.size as usize, format)?;
        say!(
            "annomask demo: synthesised a {n}^3 CellMap crop group (challenge layout, zarr v{}, \
             8 nm voxels, scales s0 and s1) at\n  {}",
            format.number(),
            crop.display(),
            n = args.size
        );
        let groupings = cellmap::synth::demo_groupings();
        let report = CropReport::new(
            &CropGroup::open(&crop)?,
            Some(&groupings),
            &CropOptions::default(),
        );
        say_raw!("\n{report}");
        let mask = MissingAnnotationsMask::open(&crop, groupings, options)?;
        say!("\nengine: {}", mask.engine().describe());
        mask
    } else {
        let crop = synth::write_demo_crop(&dir, args.size as usize, format)?;
        say!(
            "annomask demo: synthesised a {n}^3 uint64 crop (8 nm voxels, zarr v{}) with annotation metadata at\n  {}",
            format.number(),
            crop.display(),
            n = args.size
        );
        let mask = MissingAnnotationsMask::open(&crop, synth::demo_groupings(), options)?;
        say!("engine: {}", mask.engine().describe());
        say_raw!("\n{}", mask.plan());
        mask
    };
    let out = dir.join("demo_mask.zarr");
    let output = MaskOutput::new(&out, &mask, None, &OutputOptions::default())?;
    say!(
        "\ncomputing the mask into {}",
        output.array_path().display()
    );
    let summary = compute_one(&mask, &output, &RunOptions::default(), "demo", true)?;
    print_summary(&mask, &summary, false);
    if args.out.is_none() {
        say!(
            "\n(the crop and mask were written to a temporary directory and are now removed; pass --out DIR to keep them)"
        );
    }
    Ok(())
}
