//! The crop-group kernel, `shaders/cellmap.wgsl`: its pipeline, its buffers, and the block loop
//! of `GpuEngine` that runs it (reached through [`GpuEngine::run`] with a [`CropPlan`]). Its
//! host layout is `gpu/layout/cellmap.rs`, its CPU twin `gpu/twins/cellmap.rs`.
//!
//! The kernel is in the engine's registry (built on first use, then reused by every crop that
//! engine computes) and shares its device. Per block of voxels, the values of every class the
//! plan reads are uploaded into one buffer (each at `quads * prefix[k]` words; classes may
//! differ in dtype), one dispatch writes every channel's mask and, when asked, its targets into
//! one output buffer, and that is copied to a staging buffer and read back. Two buffer sets
//! alternate, so block `k + 1` is uploaded and computed while block `k` is read back. Blocks are
//! sized so that no binding exceeds `max_storage_buffer_binding_size` and no dispatch dimension
//! exceeds 65535 workgroups.
//!
//! ```no_run
//! use annomask::cellmap::{attrs::{AnnotationKind, ClassAnnotation, Encoding}, CropPlan};
//! use annomask::engine::Outputs;
//! use annomask::{gpu::GpuEngine, ClassGroupings, LabelSlice};
//! let gpu = GpuEngine::new()?;
//! let mem = ClassAnnotation::new("mito_mem", AnnotationKind::Semantic,
//!     Encoding { absent: Some(0), present: Some(1), unknown: Some(255) });
//! let plan = CropPlan::new(&ClassGroupings::new([("mito", vec!["mito_mem"])])?, &[mem]);
//! let values: Vec<u8> = vec![0, 1, 255, 1];
//! let (mut mask, mut targets) = (vec![0u8; 4], vec![0u8; 4]);
//! let out = Outputs::bytes(&mut mask).with_targets(&mut targets);
//! gpu.run(&plan, &[LabelSlice::from(&values[..])], out)?;
//! assert_eq!((mask, targets), (vec![1, 1, 0, 1], vec![0, 1, 0, 1]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use super::GpuKernel;
use crate::bits::MaskLayout;
use crate::cellmap::CropPlan;
use crate::error::GpuError;
use crate::gpu::buffers::GrowBuffer;
use crate::gpu::double_buffer::{Dispatch, InFlight, Slot, read_back, run_blocks, submit_block};
use crate::gpu::layout::cellmap::{self as layout, Params};
use crate::gpu::layout::{blocks, label_upload};
use crate::gpu::shader::kernel_layouts;
use crate::gpu::{GpuContext, GpuEngine};
use crate::label::{LabelDtype, LabelSlice};

/// The WGSL source of the crop-group kernel.
pub const CELLMAP_WGSL: &str = include_str!("../../../shaders/cellmap.wgsl");

/// The compiled crop-group kernel and its reusable buffers, in a [`GpuEngine`]'s registry.
pub struct CellmapKernel {
    bind_group_layout: wgpu::BindGroupLayout,
    pipeline: wgpu::ComputePipeline,
    plan: GrowBuffer,
    slots: [Slot; 2],
}

impl GpuKernel for CellmapKernel {
    /// Compiles `shaders/cellmap.wgsl` on `ctx`.
    fn build(ctx: &GpuContext) -> Result<Self, GpuError> {
        ctx.scoped("shader compilation (shaders/cellmap.wgsl)", || {
            let (module, bind_group_layout, pipeline_layout) =
                kernel_layouts(ctx, "cellmap.wgsl", CELLMAP_WGSL);
            let pipeline = ctx
                .device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some("cellmap"),
                    layout: Some(&pipeline_layout),
                    module: &module,
                    entry_point: Some("main"),
                    compilation_options: wgpu::PipelineCompilationOptions::default(),
                    cache: None,
                });
            Self {
                bind_group_layout,
                pipeline,
                plan: GrowBuffer::new(
                    "cellmap plan",
                    wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                ),
                slots: Slot::pair([
                    "cellmap params",
                    "cellmap values",
                    "cellmap out",
                    "cellmap staging",
                ]),
            }
        })
    }
}

impl GpuEngine {
    /// Voxels per block of the crop-group kernel for `plan` over classes of `dtypes`.
    pub fn crop_block_voxels(
        &self,
        plan: &CropPlan,
        dtypes: &[LabelDtype],
        targets: bool,
    ) -> usize {
        layout::block_voxels(
            self.context().max_binding(),
            self.max_block_voxels(),
            plan,
            dtypes,
            targets,
        )
    }

    /// Computes the mask (and, with `targets`, the targets) of a crop-group region into
    /// channel-major outputs, exactly as the CPU engine does.
    ///
    /// # Panics
    /// As the CPU engine (see [`crate::engine::EnginePlan`]).
    pub(crate) fn crop_into(
        &self,
        plan: &CropPlan,
        classes: &[LabelSlice<'_>],
        mask: &mut [u8],
        targets: Option<&mut [u8]>,
    ) -> Result<(), GpuError> {
        let n = crate::cellmap::cpu::check_sizes(
            plan,
            classes,
            mask.len(),
            targets.as_ref().map(|t| t.len()),
        );
        if n == 0 || plan.num_channels() == 0 {
            return Ok(());
        }
        let ctx = self.context();
        let dtypes: Vec<LabelDtype> = classes.iter().map(LabelSlice::dtype).collect();
        let with_targets = targets.is_some();
        self.with_kernel(|kernel: &mut CellmapKernel| {
            let plan_buffer = kernel
                .plan
                .upload_words(ctx, &layout::plan_words(plan, &dtypes))?;
            let block_voxels = self.crop_block_voxels(plan, &dtypes, with_targets);
            let mut outs: Vec<&mut [u8]> = std::iter::once(mask).chain(targets).collect();
            let CellmapKernel {
                bind_group_layout,
                pipeline,
                slots,
                ..
            } = kernel;
            let call = Call {
                ctx,
                bind_group_layout,
                pipeline,
                plan_buffer: &plan_buffer,
                plan,
                prefix: layout::prefixes(&dtypes),
                targets: with_targets,
            };
            run_blocks(
                slots,
                blocks(n, block_voxels),
                |slot, start, voxels| {
                    let block: Vec<LabelSlice<'_>> = classes
                        .iter()
                        .map(|c| c.slice(start..start + voxels))
                        .collect();
                    call.submit(slot, &block, voxels)
                },
                |slot, done| {
                    read_back(
                        ctx,
                        "cellmap readback",
                        slot,
                        done,
                        &mut outs,
                        n,
                        MaskLayout::Bytes,
                    )
                },
            )
        })
    }
}

/// What stays the same for every block of one call.
struct Call<'a> {
    ctx: &'a GpuContext,
    bind_group_layout: &'a wgpu::BindGroupLayout,
    pipeline: &'a wgpu::ComputePipeline,
    plan_buffer: &'a wgpu::Buffer,
    plan: &'a CropPlan,
    /// [`layout::prefixes`] of the classes' dtypes.
    prefix: Vec<usize>,
    targets: bool,
}

impl Call<'_> {
    /// Uploads one block's class values, dispatches the kernel, copies the output to staging
    /// and starts mapping.
    fn submit(
        &self,
        slot: &mut Slot,
        block: &[LabelSlice<'_>],
        voxels: usize,
    ) -> Result<InFlight, GpuError> {
        let (ctx, prefix) = (self.ctx, &self.prefix);
        let params = layout::params(self.plan, voxels, self.targets);
        let quads = params.quads as usize;
        let value_bytes = 4 * (quads * prefix[block.len()]) as u64;
        let out_bytes = layout::out_bytes(self.plan, quads, self.targets);
        let params_size = std::mem::size_of::<Params>() as u64;
        let params_buffer = slot.params.ensure(ctx, params_size)?.clone();
        let values_buffer = slot.input.ensure(ctx, value_bytes)?.clone();
        let out_buffer = slot.output.ensure(ctx, out_bytes)?.clone();
        let staging = slot.staging.ensure(ctx, out_bytes)?.clone();
        let dispatch = Dispatch {
            name: "cellmap",
            layout: self.bind_group_layout,
            pipeline: self.pipeline,
            bindings: [
                (&params_buffer, params_size),
                (&values_buffer, value_bytes),
                (self.plan_buffer, self.plan_buffer.size()),
                (&out_buffer, out_bytes),
            ],
            invocations: quads,
            staging: &staging,
            compute: true,
        };
        submit_block(ctx, dispatch, voxels, || {
            ctx.queue
                .write_buffer(&params_buffer, 0, bytemuck::bytes_of(&params));
            for (k, class) in block.iter().enumerate() {
                let at = 4 * (quads * prefix[k]) as u64;
                let (whole, tail) = label_upload(class);
                if !whole.is_empty() {
                    ctx.queue.write_buffer(&values_buffer, at, whole);
                }
                if let Some(word) = tail {
                    ctx.queue
                        .write_buffer(&values_buffer, at + whole.len() as u64, &word);
                }
            }
        })
    }
}
