//! `annomask demo`: synthesise a crop, mask it, summarise.

use std::path::PathBuf;
use std::time::Instant;

use annomask::{EngineChoice, MaskOptions, MissingAnnotationsMask, ZarrFormat, synth};
use clap::Args;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Edge length of the synthetic cubic crop, in voxels.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Engine: auto (GPU if found, else CPU), cpu or gpu.
    #[arg(long, default_value = "auto")]
    engine: EngineChoice,
    /// Write the crop here instead of a temporary directory (kept afterwards).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Zarr format of the synthetic crop.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(2..=3))]
    zarr_format: u8,
}

pub fn run(args: DemoArgs) -> Result<(), annomask::Error> {
    let temp;
    let dir = match &args.out {
        Some(d) => d.clone(),
        None => {
            temp = tempfile::tempdir().map_err(|e| annomask::StorageError::Write {
                path: std::env::temp_dir().display().to_string(),
                what: "a temporary directory".into(),
                message: e.to_string(),
            })?;
            temp.path().to_path_buf()
        }
    };
    let format = if args.zarr_format == 2 {
        ZarrFormat::V2
    } else {
        ZarrFormat::V3
    };
    let crop = synth::write_demo_crop(&dir, args.size, format)?;
    println!(
        "annomask demo: synthesised a {n}^3 uint64 crop (8 nm voxels, zarr v{}) with annotation metadata at\n  {}",
        format.number(),
        crop.display(),
        n = args.size
    );
    let options = MaskOptions::default().engine(args.engine);
    let mask = MissingAnnotationsMask::open(&crop, synth::demo_groupings(), options)?;
    println!("engine: {}", mask.engine().describe());
    print!("\n{}", mask.plan());
    let start = Instant::now();
    let data = mask.get(&mask.roi())?;
    let seconds = start.elapsed().as_secs_f64();
    let voxels = mask
        .roi()
        .shape()
        .as_slice()
        .iter()
        .map(|&s| s / 8.0)
        .product::<f64>() as u64;
    println!(
        "\ncomputed {} channels x {} voxels (read + mask) in {:.1} ms\n",
        mask.num_channels(),
        voxels,
        seconds * 1e3,
    );
    println!("{}", annomask::report::channel_table(&mask, &data));
    if args.out.is_none() {
        println!(
            "(the crop was written to a temporary directory and is now removed; pass --out DIR to keep it)"
        );
    }
    Ok(())
}
