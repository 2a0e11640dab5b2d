//! `annomask demo`: synthesise a crop with annotation metadata (or, `--cellmap`, a CellMap crop
//! group), run the real compute pipeline on it, and summarise each channel.

use std::path::{Path, PathBuf};

use crate::cellmap::{self, CropReport};
use crate::output::{MaskOutput, OutputOptions};
use crate::pipeline::RunOptions;
use crate::{
    CropGroup, CropOptions, EngineChoice, MaskOptions, MissingAnnotationsMask, ZarrFormat, synth,
};
use clap::Args;

use crate::cli::CliError;
use crate::cli::args::StoreArgs;
use crate::cli::compute::{compute_one, print_summary};

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Edge length of the synthetic cubic crop, in voxels.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    size: u64,
    /// Engine: auto (the CPU, or a hardware GPU where it measures faster), cpu or gpu.
    #[arg(long, default_value = "auto")]
    engine: EngineChoice,
    /// Write the crop and its mask here instead of a temporary directory (kept afterwards): a
    /// local directory, or an s3:// or gs:// URL (the crop is synthesised locally, uploaded,
    /// and masked from there).
    #[arg(long)]
    out: Option<String>,
    #[command(flatten)]
    store: StoreArgs,
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
    let url = match &args.out {
        Some(out) => crate::remote::StoreUrl::parse(out)?,
        None => None,
    };
    let dir = match &args.out {
        Some(d) if url.is_none() => crate::store::local_path(d),
        _ => {
            temp = tempfile::tempdir().map_err(|e| crate::StorageError::Write {
                path: std::env::temp_dir().display().to_string(),
                what: "a temporary directory".into(),
                message: crate::error::Cause::error(e),
            })?;
            temp.path().to_path_buf()
        }
    };
    let format = if args.zarr_format == 2 {
        ZarrFormat::V2
    } else {
        ZarrFormat::V3
    };
    let mut options = MaskOptions::default().engine(args.engine);
    options.store = args.store.options();
    // Where the mask is read from: the local crop, or its copy on the object store.
    let place = |crop: &Path| -> Result<PathBuf, CliError> {
        let Some(url) = &url else {
            return Ok(crop.to_path_buf());
        };
        let name = crop.strip_prefix(&dir).unwrap_or(crop);
        let first = name
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        let target = url.join(&first);
        let files = crate::remote::upload(&dir.join(&first), &target, options.store)?;
        say!("uploaded {files} files to {target}");
        Ok(PathBuf::from(url.join(&name.to_string_lossy()).as_str()))
    };
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
        let mask = MissingAnnotationsMask::open(place(&crop)?, groupings, options)?;
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
        let mask = MissingAnnotationsMask::open(place(&crop)?, synth::demo_groupings(), options)?;
        say!("engine: {}", mask.engine().describe());
        say_raw!("\n{}", mask.plan());
        mask
    };
    let out = match &url {
        Some(url) => PathBuf::from(url.join("demo_mask.zarr").as_str()),
        None => dir.join("demo_mask.zarr"),
    };
    let output_options = OutputOptions {
        store: options.store,
        ..OutputOptions::default()
    };
    let output = MaskOutput::new(&out, &mask, None, &output_options)?;
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
