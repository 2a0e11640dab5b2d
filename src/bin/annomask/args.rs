//! Options shared by subcommands, and which of them fit which kind of source.

use std::path::Path;

use annomask::cellmap::CropOptions;
use annomask::{MaskOptions, MaskPolicy, SparsePolicy};
use clap::Args;

use crate::CliError;

/// How ids are judged and masked (SPEC 1.2, 1.5, 2). Label arrays only: a CellMap crop group
/// has no background and no annotation states (SPEC 1.4), so giving one of these for a crop
/// group is an error (hence `Option`s: a default and a given value must be told apart).
#[derive(Args, Debug, Clone)]
pub struct MaskArgs {
    /// whole-channel: a channel with a missing id is 0 everywhere; per-voxel: only voxels
    /// holding a missing id are 0. [default: whole-channel] (label arrays only)
    #[arg(long)]
    pub policy: Option<MaskPolicy>,
    /// Whether sparsely annotated classes count as missing or as annotated. [default: missing]
    /// (label arrays only)
    #[arg(long)]
    pub sparse: Option<SparsePolicy>,
    /// The label value that means "unlabelled"; never trained. [default: 0] (label arrays only)
    #[arg(long)]
    pub background: Option<u64>,
    /// Treat a label array without a `labels` attribute as "nothing is missing".
    #[arg(long)]
    pub allow_missing_metadata: bool,
}

impl MaskArgs {
    pub fn options(&self) -> MaskOptions {
        let defaults = MaskOptions::default();
        defaults
            .policy(self.policy.unwrap_or(defaults.policy))
            .sparse(self.sparse.unwrap_or(defaults.sparse))
            .background(self.background.unwrap_or(defaults.background))
            .allow_missing_metadata(self.allow_missing_metadata)
    }

    /// The options given on the command line, by flag.
    fn given(&self) -> Vec<&'static str> {
        [
            (self.policy.is_some(), "--policy"),
            (self.sparse.is_some(), "--sparse"),
            (self.background.is_some(), "--background"),
            (self.allow_missing_metadata, "--allow-missing-metadata"),
        ]
        .into_iter()
        .filter_map(|(given, flag)| given.then_some(flag))
        .collect()
    }
}

/// How a CellMap crop group is read (SPEC 1.4).
#[derive(Args, Debug, Clone)]
pub struct CropArgs {
    /// The multiscale level of every class array of a CellMap crop group, e.g. s1.
    /// [default: s0] (crop groups only: for a label array, give the array of that level)
    #[arg(long, value_name = "LEVEL")]
    pub scale: Option<String>,
}

impl CropArgs {
    pub fn options(&self) -> CropOptions {
        match &self.scale {
            Some(s) => CropOptions::default().scale(s.clone()),
            None => CropOptions::default(),
        }
    }
}

/// Fails if an option was given that does not apply to the source at `path`: a label-array
/// option for a crop group, or `--scale` for a label array; or if the source is a zarr group
/// that is not a crop group, or its zarr metadata is not valid JSON. Returns whether it is a
/// crop group.
pub fn check_source(path: &Path, mask: &MaskArgs, crop: &CropArgs) -> Result<bool, CliError> {
    let is_crop = annomask::CropGroup::is_crop_group(path);
    if is_crop {
        if let Some(flag) = mask.given().first() {
            return Err(CliError::Usage(format!(
                "{}: {flag} applies to label arrays only; this is a CellMap crop group, masked \
                 where its classes are known (no background, no annotation states)",
                path.display()
            )));
        }
    } else if let Some(why) = annomask::cellmap::crop::why_not_a_source(path) {
        // A zarr group without `cellmap` attributes, or metadata that is not valid JSON: say
        // so, rather than the zarr library's "not a zarr array" about the array it looked for.
        return Err(CliError::Lib(why.into()));
    } else if let Some(scale) = &crop.scale {
        return Err(CliError::Usage(format!(
            "{}: --scale {scale} applies to CellMap crop groups only; this is not one (for a \
             level of a multiscale label image, give that level's array itself, e.g. .../{scale})",
            path.display()
        )));
    }
    Ok(is_crop)
}

/// Starts the global thread pool (the CPU engine's, and chunk decoding's) with `n` threads,
/// for `--threads n`. Fails in one line if the system does not grant them (a process or
/// memory limit): ignoring that would leave no pool, and the first parallel step would panic.
pub fn start_threads(n: u64) -> Result<(), CliError> {
    // Far more threads than cores only costs memory, and a thread that cannot get its signal
    // stack aborts the process where no error can be returned: refuse before starting any.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let most = (cores * 8).max(64);
    if n > most {
        return Err(CliError::Usage(format!(
            "--threads {n}: more than {most} threads (8 per core, {cores} cores) is not \
             supported; give at most {most}"
        )));
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(n as usize)
        .build_global()
        .map_err(|e| {
            CliError::Usage(format!(
                "--threads {n}: cannot start {n} threads: {e}; give fewer, or raise the limit \
                 on processes or memory (ulimit -u / -v)"
            ))
        })
}
