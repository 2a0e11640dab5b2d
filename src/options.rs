//! Options of a mask: background, policies, metadata leniency and engine, with the defaults of
//! the contract (docs/contract.md).

use std::fmt;
use std::str::FromStr;

use crate::labels::metadata::SparsePolicy;

/// How a missing id switches a channel off (SPEC 2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MaskPolicy {
    /// DaCapo's released behaviour: a channel with any missing id is 0 everywhere.
    #[default]
    WholeChannel,
    /// DaCapo 758dbd8: only voxels holding a missing id of the channel are 0.
    PerVoxel,
}

impl MaskPolicy {
    /// The name used on the command line and in output attributes.
    pub fn name(self) -> &'static str {
        match self {
            Self::WholeChannel => "whole-channel",
            Self::PerVoxel => "per-voxel",
        }
    }
}

impl fmt::Display for MaskPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for MaskPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "whole-channel" => Ok(Self::WholeChannel),
            "per-voxel" => Ok(Self::PerVoxel),
            _ => Err(format!(
                "unknown policy {s:?} (expected whole-channel or per-voxel)"
            )),
        }
    }
}

impl fmt::Display for SparsePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SparsePolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "missing" => Ok(Self::Missing),
            "annotated" => Ok(Self::Annotated),
            _ => Err(format!(
                "unknown sparse policy {s:?} (expected missing or annotated)"
            )),
        }
    }
}

/// Which engine computes the mask (SPEC 5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum EngineChoice {
    /// The CPU, or a hardware GPU where one measures faster end to end on a trial block (see
    /// [`crate::Engine::select`]).
    #[default]
    Auto,
    /// The CPU engine.
    Cpu,
    /// The GPU engine (an error if no adapter is found).
    Gpu,
}

impl EngineChoice {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Cpu => "cpu",
            Self::Gpu => "gpu",
        }
    }
}

impl fmt::Display for EngineChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for EngineChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "gpu" => Ok(Self::Gpu),
            _ => Err(format!("unknown engine {s:?} (expected auto, cpu or gpu)")),
        }
    }
}

/// Everything that shapes a mask besides the labels and the groupings.
///
/// ```
/// use annomask::{MaskOptions, MaskPolicy, SparsePolicy};
/// let opts = MaskOptions::default().policy(MaskPolicy::PerVoxel).background(255);
/// assert_eq!(opts.sparse, SparsePolicy::Missing);
/// assert!(!opts.allow_missing_metadata);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MaskOptions {
    /// The label value that means "unlabelled" (default 0); never trained.
    pub background: u64,
    /// Whole-channel (default) or per-voxel.
    pub policy: MaskPolicy,
    /// Whether sparse annotations count as missing (default) or annotated.
    pub sparse: SparsePolicy,
    /// Treat a missing `labels` attribute as "nothing is missing" instead of an error.
    pub allow_missing_metadata: bool,
    /// Which engine computes the mask (default auto).
    pub engine: EngineChoice,
    /// Recompute every block with the CPU engine and fail on any difference.
    pub verify: bool,
    /// How a source given as an object-store URL is opened (anonymous access).
    pub store: crate::remote::StoreOptions,
}

impl MaskOptions {
    /// Opens object-store URLs with unsigned requests (public buckets), or not (default).
    pub fn anonymous(mut self, anonymous: bool) -> Self {
        self.store.anonymous = anonymous;
        self
    }

    /// Sets the background value.
    pub fn background(mut self, background: u64) -> Self {
        self.background = background;
        self
    }

    /// Sets the mask policy.
    pub fn policy(mut self, policy: MaskPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets the sparse policy.
    pub fn sparse(mut self, sparse: SparsePolicy) -> Self {
        self.sparse = sparse;
        self
    }

    /// Sets `allow_missing_metadata`.
    pub fn allow_missing_metadata(mut self, allow: bool) -> Self {
        self.allow_missing_metadata = allow;
        self
    }

    /// Sets the engine.
    pub fn engine(mut self, engine: EngineChoice) -> Self {
        self.engine = engine;
        self
    }

    /// Sets verify mode.
    pub fn verify(mut self, verify: bool) -> Self {
        self.verify = verify;
        self
    }
}
