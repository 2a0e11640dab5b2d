//! The GPU engine (SPEC 5): wgpu compute with `shaders/mask.wgsl`.
//!
//! Per block of voxels: the labels are uploaded once, one dispatch computes every channel, and
//! the packed output (4 voxels per `u32`, channel-major) is copied into a staging buffer and
//! read back. Two sets of buffers alternate, so block `k + 1` is uploaded and computed while
//! block `k` is read back. Blocks are sized so that no binding exceeds the device's
//! `max_storage_buffer_binding_size` and no dispatch dimension exceeds 65535 workgroups.
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

pub(crate) mod buffers;
pub mod context;
pub mod device;
#[doc(hidden)]
pub mod layout;
pub mod pipeline;
pub(crate) mod pipelined;
pub mod quiet;
pub mod timing;
#[doc(hidden)]
pub mod twin;

use std::sync::{Mutex, OnceLock};

use buffers::GrowBuffer;
pub use context::{AdapterPolicy, GpuContext};
use layout::Kernel;
use pipeline::MaskPipelines;
use pipelined::{Dispatch, Slot, read_back, run_blocks, submit_block};

use crate::engine::{EnginePlan, Outputs};
use crate::error::GpuError;
use crate::label::LabelSlice;
use crate::labels::plan::MaskPlan;

/// Default upper bound on voxels per block: 16 Mi (128 MiB of u64 labels).
pub const DEFAULT_MAX_BLOCK_VOXELS: usize = 16 << 20;

/// What the block loop does on the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Work {
    /// Dispatch the kernel.
    Compute,
    /// Only move the bytes (the transfer baseline of the benchmarks).
    TransferOnly,
}

/// Buffers shared by the calls of one engine.
struct Buffers {
    plan: GrowBuffer,
    slots: [Slot; 2],
}

/// The GPU engine: a device, the compiled kernel and reusable buffers. Create it once and share
/// it (`Arc`); calls are serialised internally.
pub struct GpuEngine {
    ctx: GpuContext,
    pipelines: MaskPipelines,
    buffers: Mutex<Buffers>,
    max_block_voxels: usize,
    /// The crop-group kernel (`shaders/cellmap.wgsl`), built on first use by
    /// `GpuEngine::crop_into` (`src/cellmap/gpu.rs`); the lock serialises its calls.
    pub(crate) cellmap: Mutex<Option<crate::cellmap::gpu::CellmapKernel>>,
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
        let ctx = GpuContext::new(policy)?;
        let pipelines = MaskPipelines::new(&ctx)?;
        Ok(Self {
            ctx,
            pipelines,
            buffers: Mutex::new(Buffers {
                plan: GrowBuffer::new(
                    "plan",
                    wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                ),
                slots: Slot::pair(["params", "labels", "mask", "staging"]),
            }),
            max_block_voxels: DEFAULT_MAX_BLOCK_VOXELS,
            cellmap: Mutex::new(None),
            failed: OnceLock::new(),
        })
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

    /// The one request on this engine alone: computes `plan` over `inputs` into `out`, exactly
    /// as the CPU engine does (see [`crate::Engine::run`], which adds the fallback to the CPU
    /// and `verify`). A failure is returned, not absorbed.
    ///
    /// # Panics
    /// If `inputs` or `out` do not fit the plan (see [`EnginePlan`]).
    pub fn run(
        &self,
        plan: &dyn EnginePlan,
        inputs: &[LabelSlice<'_>],
        out: Outputs<'_>,
    ) -> Result<(), GpuError> {
        plan.run_gpu(self, inputs, out)
    }

    /// The mask (any layout) or the mask and targets (`main_fused`) of a label-array plan.
    pub(crate) fn mask_into(
        &self,
        plan: &MaskPlan,
        labels: LabelSlice<'_>,
        out: Outputs<'_>,
    ) -> Result<(), GpuError> {
        match out.targets {
            None => self.mask_blocks(
                plan,
                labels,
                &mut [out.mask],
                Kernel::Mask(out.layout),
                Work::Compute,
            ),
            Some(targets) => self.mask_blocks(
                plan,
                labels,
                &mut [out.mask, targets],
                Kernel::Fused,
                Work::Compute,
            ),
        }
    }

    /// The block loop: upload, dispatch (unless `work` is [`Work::TransferOnly`]), read back
    /// into `outs`, one per output section of `kernel`.
    fn mask_blocks(
        &self,
        plan: &MaskPlan,
        labels: LabelSlice<'_>,
        outs: &mut [&mut [u8]],
        kernel: Kernel,
        work: Work,
    ) -> Result<(), GpuError> {
        let n = labels.len();
        let channels = plan.num_channels();
        let need = channels * kernel.layout().channel_len(n);
        assert_eq!(
            outs.len(),
            kernel.sections(),
            "one output per section of {kernel:?}"
        );
        for out in outs.iter() {
            assert_eq!(
                out.len(),
                need,
                "output holds {} bytes, {kernel:?} needs {need}",
                out.len()
            );
        }
        if n == 0 || channels == 0 {
            return Ok(());
        }
        self.ctx.check_lost()?;
        let dtype = labels.dtype();
        let pipeline = self.pipelines.get(&self.ctx, dtype, kernel)?;
        let mut guard = self.buffers.lock().unwrap_or_else(|e| e.into_inner());
        let buffers = &mut *guard;
        let plan_buffer = buffers
            .plan
            .upload_words(&self.ctx, &layout::plan_words(plan))?;
        let block_voxels = self.block_voxels(channels * kernel.sections(), dtype.size());
        run_blocks(
            &mut buffers.slots,
            layout::blocks(n, block_voxels),
            |slot, start, voxels| {
                let block = labels.slice(start..start + voxels);
                let (dispatch, upload) =
                    self.block(slot, &pipeline, &plan_buffer, plan, block, kernel, work)?;
                submit_block(&self.ctx, dispatch, voxels, upload)
            },
            |slot, done| {
                read_back(
                    &self.ctx,
                    "mask readback",
                    slot,
                    done,
                    outs,
                    n,
                    kernel.layout(),
                )
            },
        )
    }

    /// Runs `f(start, voxels, dispatch, upload)` on each block of `labels`, one block at a time
    /// in the first slot (for callers that finish a block before the next: timings, outputs
    /// that stay on the device). `upload` writes the block's params and labels.
    fn sequential_blocks(
        &self,
        plan: &MaskPlan,
        labels: LabelSlice<'_>,
        kernel: Kernel,
        mut f: impl FnMut(usize, usize, Dispatch<'_>, Box<dyn FnOnce() + '_>) -> Result<(), GpuError>,
    ) -> Result<(), GpuError> {
        let pipeline = self.pipelines.get(&self.ctx, labels.dtype(), kernel)?;
        let mut guard = self.buffers.lock().unwrap_or_else(|e| e.into_inner());
        let buffers = &mut *guard;
        let plan_buffer = buffers
            .plan
            .upload_words(&self.ctx, &layout::plan_words(plan))?;
        let channels = plan.num_channels() * kernel.sections();
        let block_voxels = self.block_voxels(channels, labels.dtype().size());
        for (start, voxels) in layout::blocks(labels.len(), block_voxels) {
            let block = labels.slice(start..start + voxels);
            let slot = &mut buffers.slots[0];
            let (dispatch, upload) = self.block(
                slot,
                &pipeline,
                &plan_buffer,
                plan,
                block,
                kernel,
                Work::Compute,
            )?;
            f(start, voxels, dispatch, Box::new(upload))?;
        }
        Ok(())
    }

    /// Sizes the slot's buffers for one block and describes its dispatch; the returned closure
    /// writes the block's params and labels (run inside the dispatch's error scopes).
    #[allow(clippy::too_many_arguments)]
    fn block<'a>(
        &'a self,
        slot: &'a mut Slot,
        pipeline: &'a wgpu::ComputePipeline,
        plan_buffer: &'a wgpu::Buffer,
        plan: &MaskPlan,
        block: LabelSlice<'a>,
        kernel: Kernel,
        work: Work,
    ) -> Result<(Dispatch<'a>, impl FnOnce() + 'a), GpuError> {
        let ctx = &self.ctx;
        let voxels = block.len();
        let params = layout::params(plan, voxels, kernel);
        let label_bytes = layout::label_bytes(voxels, block.dtype(), kernel.layout()) as u64;
        let sections = kernel.sections() as u64;
        let mask_bytes = sections * 4 * params.stride as u64 * plan.num_channels() as u64;
        let params_size = std::mem::size_of::<layout::Params>() as u64;
        slot.params.ensure(ctx, params_size)?;
        slot.input.ensure(ctx, label_bytes)?;
        slot.output.ensure(ctx, mask_bytes)?;
        slot.staging.ensure(ctx, mask_bytes)?;
        let [params_buffer, labels_buffer, mask_buffer, staging] =
            [&slot.params, &slot.input, &slot.output, &slot.staging]
                .map(|b| b.get().expect("ensured"));
        let (prefix, tail) = layout::label_upload(&block);
        let dispatch = Dispatch {
            name: "mask",
            layout: &self.pipelines.bind_group_layout,
            pipeline,
            bindings: [
                (params_buffer, params_size),
                (labels_buffer, label_bytes),
                (plan_buffer, plan_buffer.size()),
                (mask_buffer, mask_bytes),
            ],
            invocations: params.stride as usize,
            staging,
            compute: work == Work::Compute,
        };
        let upload = move || {
            ctx.queue
                .write_buffer(params_buffer, 0, bytemuck::bytes_of(&params));
            if !prefix.is_empty() {
                ctx.queue.write_buffer(labels_buffer, 0, prefix);
            }
            if let Some(word) = tail {
                ctx.queue
                    .write_buffer(labels_buffer, prefix.len() as u64, &word);
            }
        };
        Ok((dispatch, upload))
    }
}
