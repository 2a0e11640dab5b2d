//! Compiling a kernel: the shader module of a WGSL source and the bind group and pipeline
//! layouts every kernel of this engine uses (params, input, plan, output).

use super::context::GpuContext;

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
