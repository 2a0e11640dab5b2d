//! The label-array kernel, `shaders/mask.wgsl`: its pipelines (one per label dtype and entry
//! point), its buffers, and the block loop of `GpuEngine` that runs it (the mask in bytes or
//! bit-packed, or the mask and the targets in one dispatch, `main_fused`). Its host layout is
//! `gpu/layout.rs`, its CPU twin `gpu/twins/mask.rs`.

use std::collections::HashMap;
use std::sync::Mutex;

use super::GpuKernel;
use crate::bits::Outputs;
use crate::error::GpuError;
use crate::gpu::buffers::GrowBuffer;
use crate::gpu::double_buffer::{Dispatch, Slot, read_back, run_blocks, submit_block};
use crate::gpu::layout::{self, Kernel};
use crate::gpu::shader::kernel_layouts;
use crate::gpu::{GpuContext, GpuEngine};
use crate::label::{LabelDtype, LabelSlice};
use crate::labels::plan::MaskPlan;

/// The WGSL source of the mask kernel.
pub const MASK_WGSL: &str = include_str!("../../../shaders/mask.wgsl");

/// The mask kernel's pipelines.
pub(crate) struct MaskPipelines {
    module: wgpu::ShaderModule,
    /// Bindings: params (uniform), labels, plan (read-only storage), mask (storage).
    pub bind_group_layout: wgpu::BindGroupLayout,
    pipeline_layout: wgpu::PipelineLayout,
    cache: Mutex<HashMap<(LabelDtype, Kernel), wgpu::ComputePipeline>>,
}

impl MaskPipelines {
    /// Compiles the shader module and the layouts.
    pub fn new(ctx: &GpuContext) -> Result<Self, GpuError> {
        ctx.scoped("shader compilation (shaders/mask.wgsl)", || {
            let (module, bind_group_layout, pipeline_layout) =
                kernel_layouts(ctx, "mask.wgsl", MASK_WGSL);
            Self {
                module,
                bind_group_layout,
                pipeline_layout,
                cache: Mutex::new(HashMap::new()),
            }
        })
    }

    /// The pipeline of `kernel` for labels of `dtype`.
    pub fn get(
        &self,
        ctx: &GpuContext,
        dtype: LabelDtype,
        kernel: Kernel,
    ) -> Result<wgpu::ComputePipeline, GpuError> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = cache.get(&(dtype, kernel)) {
            return Ok(p.clone());
        }
        let (bits, signed) = layout::label_constants(dtype);
        let constants = [("LABEL_BITS", bits as f64), ("SIGNED", signed as u8 as f64)];
        let what = format!("pipeline creation for {dtype} labels, {kernel:?}");
        let pipeline = ctx.scoped(&what, || {
            ctx.device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some("mask"),
                    layout: Some(&self.pipeline_layout),
                    module: &self.module,
                    entry_point: Some(kernel.entry_point()),
                    compilation_options: wgpu::PipelineCompilationOptions {
                        constants: &constants,
                        zero_initialize_workgroup_memory: false,
                    },
                    cache: None,
                })
        })?;
        cache.insert((dtype, kernel), pipeline.clone());
        Ok(pipeline)
    }
}

/// The label-array kernel of one engine: its pipelines and the buffers its calls reuse.
pub struct MaskKernel {
    pipelines: MaskPipelines,
    plan: GrowBuffer,
    slots: [Slot; 2],
}

impl GpuKernel for MaskKernel {
    fn build(ctx: &GpuContext) -> Result<Self, GpuError> {
        Ok(Self {
            pipelines: MaskPipelines::new(ctx)?,
            plan: GrowBuffer::new(
                "plan",
                wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            ),
            slots: Slot::pair(["params", "labels", "mask", "staging"]),
        })
    }
}

/// What one pass of the block loop does on the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pass {
    /// Dispatch the kernel.
    Compute,
    /// Only move the bytes (the transfer baseline of the benchmarks).
    TransferOnly,
}

impl GpuEngine {
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
                Pass::Compute,
            ),
            Some(targets) => self.mask_blocks(
                plan,
                labels,
                &mut [out.mask, targets],
                Kernel::Fused,
                Pass::Compute,
            ),
        }
    }

    /// The block loop: upload, dispatch (unless `pass` is [`Pass::TransferOnly`]), read back
    /// into `outs`, one per output section of `kernel`.
    pub(crate) fn mask_blocks(
        &self,
        plan: &MaskPlan,
        labels: LabelSlice<'_>,
        outs: &mut [&mut [u8]],
        kernel: Kernel,
        pass: Pass,
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
        let block_voxels = self.block_voxels(channels * kernel.sections(), dtype.size());
        self.with_kernel(|k: &mut MaskKernel| {
            let pipeline = k.pipelines.get(&self.ctx, dtype, kernel)?;
            let plan_buffer = k.plan.upload_words(&self.ctx, &layout::plan_words(plan))?;
            let bind_group_layout = &k.pipelines.bind_group_layout;
            run_blocks(
                &mut k.slots,
                layout::blocks(n, block_voxels),
                |slot, start, voxels| {
                    let block = labels.slice(start..start + voxels);
                    let (dispatch, upload) = self.block(
                        slot,
                        bind_group_layout,
                        &pipeline,
                        &plan_buffer,
                        plan,
                        block,
                        kernel,
                        pass,
                    )?;
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
        })
    }

    /// Runs `f(start, voxels, dispatch, upload)` on each block of `labels`, one block at a time
    /// in the first slot (for callers that finish a block before the next: timings, outputs
    /// that stay on the device). `upload` writes the block's params and labels.
    pub(crate) fn sequential_blocks(
        &self,
        plan: &MaskPlan,
        labels: LabelSlice<'_>,
        kernel: Kernel,
        mut f: impl FnMut(usize, usize, Dispatch<'_>, Box<dyn FnOnce() + '_>) -> Result<(), GpuError>,
    ) -> Result<(), GpuError> {
        let channels = plan.num_channels() * kernel.sections();
        let block_voxels = self.block_voxels(channels, labels.dtype().size());
        self.with_kernel(|k: &mut MaskKernel| {
            let pipeline = k.pipelines.get(&self.ctx, labels.dtype(), kernel)?;
            let plan_buffer = k.plan.upload_words(&self.ctx, &layout::plan_words(plan))?;
            for (start, voxels) in layout::blocks(labels.len(), block_voxels) {
                let block = labels.slice(start..start + voxels);
                let (dispatch, upload) = self.block(
                    &mut k.slots[0],
                    &k.pipelines.bind_group_layout,
                    &pipeline,
                    &plan_buffer,
                    plan,
                    block,
                    kernel,
                    Pass::Compute,
                )?;
                f(start, voxels, dispatch, Box::new(upload))?;
            }
            Ok(())
        })
    }

    /// Sizes the slot's buffers for one block and describes its dispatch; the returned closure
    /// writes the block's params and labels (run inside the dispatch's error scopes).
    #[allow(clippy::too_many_arguments)]
    fn block<'a>(
        &'a self,
        slot: &'a mut Slot,
        bind_group_layout: &'a wgpu::BindGroupLayout,
        pipeline: &'a wgpu::ComputePipeline,
        plan_buffer: &'a wgpu::Buffer,
        plan: &MaskPlan,
        block: LabelSlice<'a>,
        kernel: Kernel,
        pass: Pass,
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
            layout: bind_group_layout,
            pipeline,
            bindings: [
                (params_buffer, params_size),
                (labels_buffer, label_bytes),
                (plan_buffer, plan_buffer.size()),
                (mask_buffer, mask_bytes),
            ],
            invocations: params.stride as usize,
            staging,
            compute: pass == Pass::Compute,
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
