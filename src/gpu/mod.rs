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
pub mod timing;
pub mod twin;

use std::sync::Mutex;
use std::sync::mpsc;

use buffers::GrowBuffer;
pub use context::{AdapterPolicy, GpuContext};
use pipeline::MaskPipelines;

use crate::bits::MaskLayout;
use crate::error::GpuError;
use crate::label::LabelSlice;
use crate::plan::MaskPlan;

/// Default upper bound on voxels per block: 16 Mi (128 MiB of u64 labels).
pub const DEFAULT_MAX_BLOCK_VOXELS: usize = 16 << 20;

/// A block in flight: submitted, its staging buffer being mapped.
struct InFlight {
    start: usize,
    voxels: usize,
    bytes: u64,
    submission: wgpu::SubmissionIndex,
    mapped: mpsc::Receiver<Result<(), wgpu::BufferAsyncError>>,
}

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
        })
    }

    /// Caps the voxels per block below the device's own limits (tests use it to force many
    /// blocks on small volumes).
    pub fn with_max_block_voxels(mut self, voxels: usize) -> Self {
        self.max_block_voxels = voxels.max(4);
        self
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
        self.max_block_voxels.min(by_labels).min(by_output) / layout::BLOCK_QUANTUM
            * layout::BLOCK_QUANTUM
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
        self.compute_layout_into(plan, labels, out, MaskLayout::Bytes)
    }

    /// The bit-packed mask (see [`crate::bits`]), exactly as [`crate::cpu::compute_packed_into`].
    ///
    /// # Panics
    /// If `out.len() != plan.num_channels() * packed_len(labels.len())`.
    pub fn compute_packed_into(
        &self,
        plan: &MaskPlan,
        labels: LabelSlice<'_>,
        out: &mut [u8],
    ) -> Result<(), GpuError> {
        self.compute_layout_into(plan, labels, out, MaskLayout::Bits)
    }

    /// [`GpuEngine::compute_into`] or [`GpuEngine::compute_packed_into`] by `layout`.
    pub fn compute_layout_into(
        &self,
        plan: &MaskPlan,
        labels: LabelSlice<'_>,
        out: &mut [u8],
        layout: MaskLayout,
    ) -> Result<(), GpuError> {
        self.run(plan, labels, out, layout, Work::Compute)
    }

    /// The block loop: upload, dispatch (unless `work` is [`Work::TransferOnly`]), read back.
    fn run(
        &self,
        plan: &MaskPlan,
        labels: LabelSlice<'_>,
        out: &mut [u8],
        layout: MaskLayout,
        work: Work,
    ) -> Result<(), GpuError> {
        let n = labels.len();
        let channels = plan.num_channels();
        let need = channels * layout.channel_len(n);
        assert_eq!(
            out.len(),
            need,
            "output holds {} bytes, the {layout:?} mask needs {need}",
            out.len()
        );
        if n == 0 || channels == 0 {
            return Ok(());
        }
        let dtype = labels.dtype();
        let pipeline = self.pipelines.get(&self.ctx, dtype, layout)?;
        let mut guard = self.buffers.lock().unwrap_or_else(|e| e.into_inner());
        let buffers = &mut *guard;
        let plan_buffer = self.upload_plan(&mut buffers.plan, plan)?;
        let block_voxels = self.block_voxels(channels, dtype.size());
        let result = (|| {
            for (i, (start, voxels)) in layout::blocks(n, block_voxels).enumerate() {
                let slot = &mut buffers.slots[i % 2];
                if let Some(done) = slot.in_flight.take() {
                    self.finish(slot, done, out, n, layout)?;
                }
                let block = Block::prepare(
                    self,
                    slot,
                    &plan_buffer,
                    plan,
                    labels.slice(start..start + voxels),
                    layout,
                )?;
                let submitted = self.submit(&pipeline, &block, work)?;
                slot.in_flight = Some(InFlight { start, ..submitted });
            }
            Ok(())
        })();
        // Drain both slots in block order, also after an error, so no buffer stays mapped.
        let mut pending: Vec<(usize, usize)> = (0..2)
            .filter_map(|s| buffers.slots[s].in_flight.as_ref().map(|f| (f.start, s)))
            .collect();
        pending.sort_unstable();
        let mut drained = Ok(());
        for (_, s) in pending {
            let slot = &mut buffers.slots[s];
            let done = slot.in_flight.take().expect("listed as in flight");
            let r = self.finish(slot, done, out, n, layout);
            if drained.is_ok() {
                drained = r;
            }
        }
        result.and(drained)
    }

    /// Writes the plan words into the (grown on demand) plan buffer.
    fn upload_plan(
        &self,
        buffer: &mut GrowBuffer,
        plan: &MaskPlan,
    ) -> Result<wgpu::Buffer, GpuError> {
        let words = layout::plan_words(plan);
        let buffer = buffer.ensure(&self.ctx, 4 * words.len() as u64)?.clone();
        self.ctx
            .queue
            .write_buffer(&buffer, 0, bytemuck::cast_slice(&words));
        Ok(buffer)
    }

    /// Records the dispatch of a prepared block into `encoder` (unless `work` is transfer
    /// only), and the copy of its mask to the staging buffer if `readback`.
    fn encode(
        &self,
        pipeline: &wgpu::ComputePipeline,
        block: &Block,
        encoder: &mut wgpu::CommandEncoder,
        work: Work,
        readback: bool,
    ) {
        if work == Work::Compute {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("mask"),
                timestamp_writes: None,
            });
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, &block.bind_group, &[]);
            let (x, y) = layout::grid(block.invocations);
            pass.dispatch_workgroups(x, y, 1);
        }
        if readback {
            encoder.copy_buffer_to_buffer(&block.mask, 0, &block.staging, 0, block.mask_bytes);
        }
    }

    /// Dispatches a prepared block, copies its mask to staging and starts mapping it.
    fn submit(
        &self,
        pipeline: &wgpu::ComputePipeline,
        block: &Block,
        work: Work,
    ) -> Result<InFlight, GpuError> {
        let ctx = &self.ctx;
        let submission = ctx.scoped("mask dispatch", || {
            let mut encoder = ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("mask block"),
                });
            self.encode(pipeline, block, &mut encoder, work, true);
            ctx.queue.submit([encoder.finish()])
        })?;
        let (tx, rx) = mpsc::channel();
        block
            .staging
            .slice(..block.mask_bytes)
            .map_async(wgpu::MapMode::Read, move |r| {
                let _ = tx.send(r);
            });
        Ok(InFlight {
            start: 0,
            voxels: block.voxels,
            bytes: block.mask_bytes,
            submission,
            mapped: rx,
        })
    }
}

/// What the block loop does on the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Work {
    /// Dispatch the kernel.
    Compute,
    /// Only move the bytes (the transfer baseline of the benchmarks).
    TransferOnly,
}

/// One block on the device: labels and params uploaded, bound, ready to dispatch.
struct Block {
    voxels: usize,
    invocations: usize,
    mask_bytes: u64,
    mask: wgpu::Buffer,
    staging: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
}

impl Block {
    /// Sizes the slot's buffers, uploads params and labels, and binds them.
    fn prepare(
        engine: &GpuEngine,
        slot: &mut Slot,
        plan_buffer: &wgpu::Buffer,
        plan: &MaskPlan,
        labels: LabelSlice<'_>,
        mask_layout: MaskLayout,
    ) -> Result<Self, GpuError> {
        let ctx = &engine.ctx;
        let voxels = labels.len();
        let params = layout::params(plan, voxels, mask_layout);
        let invocations = params.stride as usize;
        let label_bytes = layout::label_bytes(voxels, labels.dtype(), mask_layout) as u64;
        let mask_bytes = 4 * params.stride as u64 * plan.num_channels() as u64;
        let params_size = std::mem::size_of::<layout::Params>() as u64;
        let params_buffer = slot.params.ensure(ctx, params_size)?.clone();
        let labels_buffer = slot.labels.ensure(ctx, label_bytes)?.clone();
        let mask = slot.mask.ensure(ctx, mask_bytes)?.clone();
        let staging = slot.staging.ensure(ctx, mask_bytes)?.clone();
        let (prefix, tail) = layout::label_upload(&labels);
        let bind_group = ctx.scoped("mask upload", || {
            ctx.queue
                .write_buffer(&params_buffer, 0, bytemuck::bytes_of(&params));
            if !prefix.is_empty() {
                ctx.queue.write_buffer(&labels_buffer, 0, prefix);
            }
            if let Some(word) = tail {
                ctx.queue
                    .write_buffer(&labels_buffer, prefix.len() as u64, &word);
            }
            ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("mask block"),
                layout: &engine.pipelines.bind_group_layout,
                entries: &[
                    binding(0, &params_buffer, params_size),
                    binding(1, &labels_buffer, label_bytes),
                    binding(2, plan_buffer, plan_buffer.size()),
                    binding(3, &mask, mask_bytes),
                ],
            })
        })?;
        Ok(Self {
            voxels,
            invocations,
            mask_bytes,
            mask,
            staging,
            bind_group,
        })
    }
}

/// A bind group entry for the first `size` bytes (rounded up to 4) of `buffer`.
fn binding(binding: u32, buffer: &wgpu::Buffer, size: u64) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer,
            offset: 0,
            size: std::num::NonZeroU64::new(size.max(4).next_multiple_of(4)),
        }),
    }
}

impl GpuEngine {
    /// Waits for a block, copies its mask into `out`, unmaps the staging buffer.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        slot: &mut Slot,
        block: InFlight,
        out: &mut [u8],
        n: usize,
        mask_layout: MaskLayout,
    ) -> Result<(), GpuError> {
        let fail = |message: String| GpuError::Operation {
            operation: "mask readback".into(),
            message,
        };
        self.ctx
            .device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(block.submission),
                timeout: None,
            })
            .map_err(|e| fail(e.to_string()))?;
        let mapped = block
            .mapped
            .recv()
            .map_err(|_| fail("the map callback never ran".into()))
            .and_then(|r| r.map_err(|e| fail(e.to_string())));
        let staging = slot.staging.ensure(&self.ctx, block.bytes)?;
        if let Err(e) = mapped {
            if let Some(msg) = self.ctx.uncaptured.lock().ok().and_then(|mut u| u.take()) {
                return Err(fail(format!("{e}; device error: {msg}")));
            }
            return Err(e);
        }
        {
            let view = staging
                .slice(..block.bytes)
                .get_mapped_range()
                .map_err(|e| fail(e.to_string()))?;
            layout::scatter(out, n, block.start, block.voxels, mask_layout, &view);
        }
        staging.unmap();
        Ok(())
    }
}
