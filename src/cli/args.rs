//! Options shared by subcommands, and which of them fit which kind of source.

use std::path::Path;

use crate::cellmap::CropOptions;
use crate::node::Node;
use crate::remote::StoreOptions;
use crate::source::{SourceFormat, SourceOption};
use crate::{MaskOptions, MaskPolicy, SparsePolicy};
use clap::Args;

use crate::cli::CliError;

/// How object-store URLs (`s3://`, `gs://`, `https://`) are opened; credentials and endpoints
/// come from the environment (docs/remote.md).
#[derive(Args, Debug, Clone, Copy)]
pub struct StoreArgs {
    /// Read object stores without credentials (unsigned requests): public buckets such as the
    /// CellMap and OpenOrganelle data on S3.
    #[arg(long)]
    pub anonymous: bool,
}

impl StoreArgs {
    pub fn options(&self) -> StoreOptions {
        StoreOptions::anonymous(self.anonymous)
    }
}

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

    /// The options given on the command line, with their flags.
    fn given(&self) -> Vec<(SourceOption, &'static str)> {
        [
            (self.policy.is_some(), SourceOption::Policy, "--policy"),
            (self.sparse.is_some(), SourceOption::Sparse, "--sparse"),
            (
                self.background.is_some(),
                SourceOption::Background,
                "--background",
            ),
            (
                self.allow_missing_metadata,
                SourceOption::AllowMissingMetadata,
                "--allow-missing-metadata",
            ),
        ]
        .into_iter()
        .filter_map(|(given, option, flag)| given.then_some((option, flag)))
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

/// The node at `path` and its format ([`crate::formats::detect`], the one detection of a
/// run), after checking that it can be opened as one (e.g. a zarr group that is no source
/// fails here, naming why) and that no option was given that its format refuses: a
/// label-array option for a crop group, or `--scale` for a label array.
pub fn check_source(
    path: &Path,
    mask: &MaskArgs,
    crop: &CropArgs,
    store: StoreOptions,
) -> Result<(Node, &'static dyn SourceFormat), CliError> {
    let node = Node::open(&path.to_string_lossy(), store).map_err(crate::Error::from)?;
    let format = crate::formats::detect(&node);
    format.check(&node)?;
    let given = mask
        .given()
        .into_iter()
        .map(|(option, flag)| (option, flag.to_string(), String::new()))
        .chain(
            crop.scale
                .iter()
                .map(|s| (SourceOption::Scale, format!("--scale {s}"), s.clone())),
        );
    for (option, flag, value) in given {
        if let Some(why) = format.refuses(option, &value) {
            let accepted: Vec<&str> = crate::formats::FORMATS
                .iter()
                .filter(|f| f.refuses(option, &value).is_none())
                .map(|f| f.name())
                .collect();
            return Err(CliError::Usage(format!(
                "{}: {flag} applies to {}s only; {why}",
                path.display(),
                accepted.join("s and ")
            )));
        }
    }
    Ok((node, format))
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
