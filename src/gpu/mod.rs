//! The GPU engine (contract, section 5): wgpu compute with the kernels in `shaders/`.
//!
//! A [`GpuEngine`] is a device ([`GpuContext`]) and a registry of kernels
//! ([`kernels::Kernels`]): each kernel ([`kernels::GpuKernel`]: the label-array mask,
//! `shaders/mask.wgsl`, and the crop-group kernel, `shaders/cellmap.wgsl`) is built on first
//! use, kept with its reusable buffers, and shares the device and the double-buffered block loop
//! (`double_buffer.rs`). Per block of voxels the input is uploaded once, one dispatch computes
//! every channel, and the output is copied to a staging buffer and read back; two buffer sets
//! alternate, so block `k + 1` is uploaded and computed while block `k` is read back. Blocks are
//! sized so that no binding exceeds the device's `max_storage_buffer_binding_size` and no
//! dispatch dimension exceeds 65535 workgroups.
//!
//! ```no_run
//! use std::collections::BTreeSet;
//! use annomask::engine::Outputs;
//! use annomask::{gpu::GpuEngine, Groupings, LabelSlice, MaskOptions, MaskPlan};
//! let gpu = GpuEngine::new()?; // any adapter, software ones included
//! let plan = MaskPlan::new(&Groupings::new([("mito", vec![3])])?, &BTreeSet::new(),
//!     &MaskOptions::default());
//! let labels = vec![0u32, 3, 3, 7];
//! let mut out = vec![0u8; 4];
//! gpu.run(&plan, &[LabelSlice::from(&labels[..])], Outputs::bytes(&mut out))?;
//! assert_eq!(out, [0, 1, 1, 1]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! | module | what |
//! | --- | --- |
//! | [`context`] | the adapter and device, error scopes, device loss |
//! | [`kernels`] | the registry and the kernels: [`kernels::mask`], [`kernels::cellmap`] |
//! | `layout` | the host-side data layout of each kernel, shared with its CPU twin |
//! | `twins` | the CPU twins of the shaders, one per kernel (for the tests) |
//! | `shader` | compiling a WGSL module and the bind group layout both kernels use |
//! | `double_buffer` | the double-buffered block loop (upload, dispatch, read back) |
//! | `buffers` | buffers that grow to the largest block seen |
//! | [`device`] | a mask and targets left on the device (the feeder) |
//! | [`timing`] | the kernel alone and the transfers alone (the benchmarks) |
//! | [`quiet`] | silencing the drivers' own messages |

pub(crate) mod buffers;
pub mod context;
pub mod device;
pub(crate) mod double_buffer;
pub mod kernels;
#[doc(hidden)]
pub mod layout;
pub mod quiet;
pub(crate) mod shader;
pub mod timing;
#[doc(hidden)]
pub mod twins;

use std::sync::OnceLock;

pub use context::{AdapterPolicy, GpuContext};
use kernels::{GpuKernel, Kernels};

use crate::error::GpuError;

/// Default upper bound on voxels per block: 16 Mi (128 MiB of u64 labels).
pub const DEFAULT_MAX_BLOCK_VOXELS: usize = 16 << 20;

/// The GPU engine: a device and its kernels with their reusable buffers. Create it once and
/// share it (`Arc`); the calls of one kernel are serialised internally.
pub struct GpuEngine {
    ctx: GpuContext,
    /// Every kernel this engine has built, by type (`kernels/`); the label-array kernel is built
    /// with the engine, the others on first use.
    kernels: Kernels,
    max_block_voxels: usize,
    /// Set by [`GpuEngine::give_up`]: the first failure of a computation, after which
    /// [`crate::Engine`] computes on the CPU instead.
    failed: OnceLock<GpuError>,
}

impl std::fmt::Debug for GpuEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuEngine")
            .field("adapter", &self.ctx.describe())
            .field("max_block_voxels", &self.max_block_voxels)
            .finish_non_exhaustive()
    }
}

impl GpuEngine {
    /// An engine on the best adapter, software adapters (lavapipe) included.
    pub fn new() -> Result<Self, GpuError> {
        Self::with_policy(AdapterPolicy::AnyAdapter)
    }

    /// An engine on the best adapter that `policy` allows.
    pub fn with_policy(policy: AdapterPolicy) -> Result<Self, GpuError> {
        let engine = Self {
            ctx: GpuContext::new(policy)?,
            kernels: Kernels::default(),
            max_block_voxels: DEFAULT_MAX_BLOCK_VOXELS,
            failed: OnceLock::new(),
        };
        // The label-array kernel is compiled now, so that a device that cannot compile it
        // fails here rather than on the first block.
        engine.with_kernel(|_: &mut kernels::mask::MaskKernel| Ok(()))?;
        Ok(engine)
    }

    /// Runs `f` on this engine's kernel `K`, building it on first use ([`GpuKernel::build`]);
    /// calls on the same kernel are serialised. A new kernel needs no change here: it
    /// implements [`GpuKernel`] in its own module and calls this.
    pub fn with_kernel<K: GpuKernel, R>(
        &self,
        f: impl FnOnce(&mut K) -> Result<R, GpuError>,
    ) -> Result<R, GpuError> {
        self.kernels.with(&self.ctx, f)
    }

    /// The failure after which this engine was given up ([`GpuEngine::give_up`]), if any.
    pub fn failure(&self) -> Option<&GpuError> {
        self.failed.get()
    }

    /// Records `error` as the reason to compute nothing more on this engine (a lost device, a
    /// failed submission); returns whether it is the first such failure (the one to report).
    /// [`crate::Engine`] calls it when a GPU computation fails, and computes on the CPU from
    /// then on.
    pub fn give_up(&self, error: GpuError) -> bool {
        self.failed.set(error).is_ok()
    }

    /// Caps the voxels per block below the device's own limits (tests use it to force many
    /// blocks on small volumes).
    pub fn with_max_block_voxels(mut self, voxels: usize) -> Self {
        self.max_block_voxels = voxels.max(4);
        self
    }

    /// The cap on voxels per block ([`GpuEngine::with_max_block_voxels`]).
    pub fn max_block_voxels(&self) -> usize {
        self.max_block_voxels
    }

    /// The device.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// Voxels per block for `channels` channels of labels of `label_size` bytes: the cap, and
    /// what the binding limit allows for the labels and for the output.
    pub fn block_voxels(&self, channels: usize, label_size: usize) -> usize {
        let limit = self.ctx.max_binding() as usize;
        let by_labels = limit / label_size;
        let by_output = limit / channels.max(1);
        // Bytes output is the larger: one byte per voxel per channel (bits need an eighth).
        let voxels = self.max_block_voxels.min(by_labels).min(by_output);
        voxels / layout::BLOCK_QUANTUM * layout::BLOCK_QUANTUM
    }
}
