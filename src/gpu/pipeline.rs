//! The compiled `mask.wgsl`: one shader module, one bind group layout, and one pipeline per
//! label dtype (pipeline constants `LABEL_BITS`, `SIGNED`), created on first use and cached.

use std::collections::HashMap;
use std::sync::Mutex;

use super::context::GpuContext;
use super::layout::{self, Kernel};
use crate::error::GpuError;
use crate::label::LabelDtype;

/// The WGSL source of the mask kernel.
pub const MASK_WGSL: &str = include_str!("../../shaders/mask.wgsl");

/// The mask kernel's pipelines.
pub(crate) struct MaskPipelines {
    module: wgpu::ShaderModule,
    /// Bindings: params (uniform), labels, plan (read-only storage), mask (storage).
    pub bind_group_layout: wgpu::BindGroupLayout,
    pipeline_layout: wgpu::PipelineLayout,
    cache: Mutex<HashMap<(LabelDtype, Kernel), wgpu::ComputePipeline>>,
}

/// A compute-stage buffer entry of a bind group layout.
fn layout_entry(binding: u32, ty: wgpu::BufferBindingType) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

/// The shader module of `source` and the layouts of a kernel whose bindings are, as in both
/// kernels: params (uniform), input and plan (read-only storage), output (storage). `name`
/// labels them. Call inside an error scope.
pub(crate) fn kernel_layouts(
    ctx: &GpuContext,
    name: &str,
    source: &str,
) -> (
    wgpu::ShaderModule,
    wgpu::BindGroupLayout,
    wgpu::PipelineLayout,
) {
    let module = ctx
        .device
        .create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(name),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
    let read_only = wgpu::BufferBindingType::Storage { read_only: true };
    let bind_group_layout = ctx
        .device
        .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(name),
            entries: &[
                layout_entry(0, wgpu::BufferBindingType::Uniform),
                layout_entry(1, read_only),
                layout_entry(2, read_only),
                layout_entry(3, wgpu::BufferBindingType::Storage { read_only: false }),
            ],
        });
    let pipeline_layout = ctx
        .device
        .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(name),
            bind_group_layouts: &[Some(&bind_group_layout)],
            immediate_size: 0,
        });
    (module, bind_group_layout, pipeline_layout)
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
