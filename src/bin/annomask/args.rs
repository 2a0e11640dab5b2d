//! Options shared by subcommands.

use annomask::{MaskOptions, MaskPolicy, SparsePolicy};
use clap::Args;

/// How ids are judged and masked (SPEC 1.2, 1.5, 2).
#[derive(Args, Debug, Clone)]
pub struct MaskArgs {
    /// whole-channel: a channel with a missing id is 0 everywhere; per-voxel: only voxels
    /// holding a missing id are 0.
    #[arg(long, default_value = "whole-channel")]
    pub policy: MaskPolicy,
    /// Whether sparsely annotated classes count as missing or as annotated.
    #[arg(long, default_value = "missing")]
    pub sparse: SparsePolicy,
    /// The label value that means "unlabelled"; never trained.
    #[arg(long, default_value_t = 0)]
    pub background: u64,
    /// Treat a label array without a `labels` attribute as "nothing is missing".
    #[arg(long)]
    pub allow_missing_metadata: bool,
}

impl MaskArgs {
    pub fn options(&self) -> MaskOptions {
        MaskOptions::default()
            .policy(self.policy)
            .sparse(self.sparse)
            .background(self.background)
            .allow_missing_metadata(self.allow_missing_metadata)
    }
}
