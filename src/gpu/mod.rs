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
//! use annomask::{gpu::GpuEngine, Groupings, LabelSlice, MaskOptions, MaskPlan};
//! let gpu = GpuEngine::new()?; // any adapter, software ones included
//! let plan = MaskPlan::new(&Groupings::new([("mito", vec![3])])?, &BTreeSet::new(),
//!     &MaskOptions::default());
//! let labels = vec![0u32, 3, 3, 7];
//! let mut out = vec![0u8; 4];
//! gpu.compute_into(&plan, LabelSlice::from(&labels[..]), &mut out)?;
//! assert_eq!(out, [0, 1, 1, 1]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod buffers;
pub mod context;
pub mod layout;
pub mod pipeline;
pub(crate) mod pipelined;
pub mod twin;

use std::sync::Mutex;

use buffers::GrowBuffer;
pub use context::{AdapterPolicy, GpuContext};
use pipeline::MaskPipelines;
use pipelined::{Dispatch, InFlight, run_blocks, submit_block, wait_mapped};

use crate::error::GpuError;
use crate::label::LabelSlice;
use crate::plan::MaskPlan;

/// Default upper bound on voxels per block: 16 Mi (128 MiB of u64 labels).
pub const DEFAULT_MAX_BLOCK_VOXELS: usize = 16 << 20;

/// One of the two alternating buffer sets.
struct Slot {
    params: GrowBuffer,
    labels: GrowBuffer,
    mask: GrowBuffer,
    staging: GrowBuffer,
    in_flight: Option<InFlight>,
}

impl Slot {
    fn new() -> Self {
        use wgpu::BufferUsages as U;
        Self {
            params: GrowBuffer::new("params", U::UNIFORM | U::COPY_DST),
            labels: GrowBuffer::new("labels", U::STORAGE | U::COPY_DST),
            mask: GrowBuffer::new("mask", U::STORAGE | U::COPY_SRC),
            staging: GrowBuffer::new("staging", U::MAP_READ | U::COPY_DST),
            in_flight: None,
        }
    }
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
    /// [`GpuEngine::compute_crop_into`] (`src/cellmap/gpu.rs`); the lock serialises its calls.
    pub(crate) cellmap: Mutex<Option<crate::cellmap::gpu::CellmapKernel>>,
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
                slots: [Slot::new(), Slot::new()],
            }),
            max_block_voxels: DEFAULT_MAX_BLOCK_VOXELS,
            cellmap: Mutex::new(None),
        })
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
        self.max_block_voxels.min(by_labels).min(by_output) / 4 * 4
    }

    /// Computes the mask of `labels` into `out`, channel-major (`out[c * n + i]`), exactly as
    /// [`crate::cpu::compute_into`] does.
    ///
    /// # Panics
    /// If `out.len() != plan.num_channels() * labels.len()`.
    pub fn compute_into(
        &self,
        plan: &MaskPlan,
        labels: LabelSlice<'_>,
        out: &mut [u8],
    ) -> Result<(), GpuError> {
        let n = labels.len();
        let channels = plan.num_channels();
        assert_eq!(
            out.len(),
            n * channels,
            "output holds {} bytes, the mask needs {channels} x {n}",
            out.len()
        );
        if n == 0 || channels == 0 {
            return Ok(());
        }
        let dtype = labels.dtype();
        let pipeline = self.pipelines.get(&self.ctx, dtype)?;
        let mut guard = self.buffers.lock().unwrap_or_else(|e| e.into_inner());
        let buffers = &mut *guard;
        let plan_words = layout::plan_words(plan);
        let plan_buffer = buffers
            .plan
            .ensure(&self.ctx, 4 * plan_words.len() as u64)?
            .clone();
        self.ctx
            .queue
            .write_buffer(&plan_buffer, 0, bytemuck::cast_slice(&plan_words));
        let block_voxels = self.block_voxels(channels, dtype.size());
        run_blocks(
            &mut buffers.slots,
            |slot| &mut slot.in_flight,
            layout::blocks(n, block_voxels),
            |slot, start, voxels| {
                self.submit(
                    slot,
                    &pipeline,
                    &plan_buffer,
                    plan,
                    labels.slice(start..start + voxels),
                )
            },
            |slot, done| self.finish(slot, done, out, n),
        )
    }

    /// Uploads one block, dispatches the kernel, copies the mask to staging and starts mapping.
    fn submit(
        &self,
        slot: &mut Slot,
        pipeline: &wgpu::ComputePipeline,
        plan_buffer: &wgpu::Buffer,
        plan: &MaskPlan,
        block: LabelSlice<'_>,
    ) -> Result<InFlight, GpuError> {
        let ctx = &self.ctx;
        let voxels = block.len();
        let params = layout::params(plan, voxels);
        let quads = params.quads as u64;
        let label_bytes = quads * layout::quad_bytes(block.dtype()) as u64;
        let mask_bytes = 4 * quads * plan.num_channels() as u64;
        let params_buffer = slot
            .params
            .ensure(ctx, std::mem::size_of::<layout::Params>() as u64)?
            .clone();
        let labels_buffer = slot.labels.ensure(ctx, label_bytes)?.clone();
        let mask_buffer = slot.mask.ensure(ctx, mask_bytes)?.clone();
        let staging = slot.staging.ensure(ctx, mask_bytes)?.clone();
        let (prefix, tail) = layout::label_upload(&block);
        let dispatch = Dispatch {
            name: "mask",
            layout: &self.pipelines.bind_group_layout,
            pipeline,
            bindings: [
                (&params_buffer, std::mem::size_of::<layout::Params>() as u64),
                (&labels_buffer, label_bytes),
                (plan_buffer, plan_buffer.size()),
                (&mask_buffer, mask_bytes),
            ],
            quads: quads as usize,
            staging: &staging,
        };
        submit_block(ctx, dispatch, voxels, || {
            ctx.queue
                .write_buffer(&params_buffer, 0, bytemuck::bytes_of(&params));
            if !prefix.is_empty() {
                ctx.queue.write_buffer(&labels_buffer, 0, prefix);
            }
            if let Some(word) = tail {
                ctx.queue
                    .write_buffer(&labels_buffer, prefix.len() as u64, &word);
            }
        })
    }

    /// Waits for a block, copies its mask into `out`, unmaps the staging buffer.
    fn finish(
        &self,
        slot: &mut Slot,
        block: InFlight,
        out: &mut [u8],
        n: usize,
    ) -> Result<(), GpuError> {
        let staging = slot.staging.ensure(&self.ctx, block.bytes)?;
        let view = wait_mapped(
            &self.ctx,
            "mask readback",
            staging,
            block.bytes,
            block.submission,
            &block.mapped,
        )?;
        layout::scatter(out, n, block.start, block.voxels, &view);
        drop(view);
        staging.unmap();
        Ok(())
    }
}
