//! The double-buffered block loop shared by the GPU kernels: blocks alternate between two slots
//! (buffer sets), so block `k + 1` is uploaded and computed while block `k` is read back.

use std::sync::mpsc;

use super::buffers::GrowBuffer;
use super::context::GpuContext;
use super::layout::{grid, scatter};
use crate::bits::MaskLayout;
use crate::error::{Cause, GpuError};

/// One of a kernel's two alternating buffer sets: its params uniform, its input, its output,
/// the staging buffer the output is read back through, and the block it holds in flight.
pub(crate) struct Slot {
    pub(crate) params: GrowBuffer,
    pub(crate) input: GrowBuffer,
    pub(crate) output: GrowBuffer,
    pub(crate) staging: GrowBuffer,
    pub(crate) in_flight: Option<InFlight>,
}

impl Slot {
    /// Two empty slots whose buffers are labelled `labels` (params, input, output, staging).
    pub(crate) fn pair(labels: [&'static str; 4]) -> [Slot; 2] {
        use wgpu::BufferUsages as U;
        let [params, input, output, staging] = labels;
        [(); 2].map(|()| Slot {
            params: GrowBuffer::new(params, U::UNIFORM | U::COPY_DST),
            input: GrowBuffer::new(input, U::STORAGE | U::COPY_DST),
            output: GrowBuffer::new(output, U::STORAGE | U::COPY_SRC),
            staging: GrowBuffer::new(staging, U::MAP_READ | U::COPY_DST),
            in_flight: None,
        })
    }
}

/// A block in flight: submitted, its staging buffer being mapped.
pub(crate) struct InFlight {
    /// First voxel of the block.
    pub(crate) start: usize,
    /// Voxels in the block.
    pub(crate) voxels: usize,
    /// Bytes being mapped.
    pub(crate) bytes: u64,
    /// The submission that computes it.
    pub(crate) submission: wgpu::SubmissionIndex,
    /// Receives the result of `map_async`.
    pub(crate) mapped: mpsc::Receiver<Result<(), wgpu::BufferAsyncError>>,
}

/// One block's dispatch of a kernel.
pub(crate) struct Dispatch<'a> {
    /// The kernel's name, for labels and errors (`mask`, `cellmap`).
    pub(crate) name: &'static str,
    /// Its bind group layout.
    pub(crate) layout: &'a wgpu::BindGroupLayout,
    /// Its pipeline.
    pub(crate) pipeline: &'a wgpu::ComputePipeline,
    /// Bindings 0 to 3 (params, input, plan, output), each with the bytes it binds.
    pub(crate) bindings: [(&'a wgpu::Buffer, u64); 4],
    /// Invocations of the dispatch.
    pub(crate) invocations: usize,
    /// Where the output (binding 3) is copied to be mapped.
    pub(crate) staging: &'a wgpu::Buffer,
    /// Whether to dispatch the kernel (false: only move the bytes, for transfer timings).
    pub(crate) compute: bool,
}

/// Runs `upload` (the block's queue writes), dispatches the kernel (`d.invocations`), copies
/// the output binding to staging, submits, and starts mapping, all inside error scopes. The
/// returned block starts at voxel 0; [`run_blocks`] sets its start.
pub(crate) fn submit_block(
    ctx: &GpuContext,
    d: Dispatch<'_>,
    voxels: usize,
    upload: impl FnOnce(),
) -> Result<InFlight, GpuError> {
    let (output, bytes) = d.bindings[3];
    let label = format!("{} block", d.name);
    ctx.check_lost()?;
    ctx.before_submit();
    let submission = ctx.scoped(&format!("{} dispatch", d.name), || {
        upload();
        let bind_group = bind_group(ctx, &d);
        let mut encoder = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some(&label),
            });
        if d.compute {
            encode_dispatch(&mut encoder, &d, &bind_group);
        }
        encoder.copy_buffer_to_buffer(output, 0, d.staging, 0, bytes);
        ctx.queue.submit([encoder.finish()])
    })?;
    // A lost device swallows submissions without an error: ask it.
    ctx.check_lost()?;
    let (tx, rx) = mpsc::channel();
    d.staging
        .slice(..bytes)
        .map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
    Ok(InFlight {
        start: 0,
        voxels,
        bytes,
        submission,
        mapped: rx,
    })
}

/// Records one dispatch of `d`'s kernel over its invocations.
pub(crate) fn encode_dispatch(
    encoder: &mut wgpu::CommandEncoder,
    d: &Dispatch<'_>,
    bind_group: &wgpu::BindGroup,
) {
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some(d.name),
        timestamp_writes: None,
    });
    pass.set_pipeline(d.pipeline);
    pass.set_bind_group(0, bind_group, &[]);
    let (x, y) = grid(d.invocations);
    pass.dispatch_workgroups(x, y, 1);
}

/// The best of `repeat` wall-clock times of dispatching `d` alone and waiting for it, after
/// `upload` has run and finished (the kernel timing of the benchmarks).
pub(crate) fn time_dispatch(
    ctx: &GpuContext,
    d: &Dispatch<'_>,
    upload: impl FnOnce(),
    repeat: usize,
) -> Result<f64, GpuError> {
    let bind_group = ctx.scoped(&format!("{} upload", d.name), || {
        upload();
        bind_group(ctx, d)
    })?;
    wait(ctx, ctx.queue.submit([]))?;
    let mut best = f64::INFINITY;
    for _ in 0..repeat.max(1) {
        let start = std::time::Instant::now();
        let submission = ctx.scoped(&format!("{} dispatch", d.name), || {
            let mut encoder = ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some(d.name),
                });
            encode_dispatch(&mut encoder, d, &bind_group);
            ctx.queue.submit([encoder.finish()])
        })?;
        wait(ctx, submission)?;
        best = best.min(start.elapsed().as_secs_f64());
    }
    Ok(best)
}

/// Blocks until `submission` has finished on the device.
pub(crate) fn wait(ctx: &GpuContext, submission: wgpu::SubmissionIndex) -> Result<(), GpuError> {
    ctx.device
        .poll(wgpu::PollType::Wait {
            submission_index: Some(submission),
            timeout: None,
        })
        .map_err(|e| GpuError::Operation {
            operation: "wait for the device".into(),
            message: Cause::error(e),
        })?;
    ctx.check_lost()
}

/// The bind group of `d`'s bindings.
pub(crate) fn bind_group(ctx: &GpuContext, d: &Dispatch<'_>) -> wgpu::BindGroup {
    let entries: Vec<wgpu::BindGroupEntry<'_>> = d
        .bindings
        .iter()
        .enumerate()
        .map(|(i, &(buffer, size))| binding(i as u32, buffer, size))
        .collect();
    ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(d.name),
        layout: d.layout,
        entries: &entries,
    })
}

/// A bind group entry for the first `size` bytes (rounded up to 4, at least 4) of `buffer`.
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

/// Runs `blocks` (`(start, voxels)`) through two alternating slots. Block `i` goes to slot
/// `i % 2`: the block that slot held is finished first, then `submit(slot, start, voxels)`
/// starts the new one. At the end, also after an error, the slots are drained in block order
/// so no buffer stays mapped; the first error wins.
pub(crate) fn run_blocks(
    slots: &mut [Slot; 2],
    blocks: impl Iterator<Item = (usize, usize)>,
    mut submit: impl FnMut(&mut Slot, usize, usize) -> Result<InFlight, GpuError>,
    mut finish: impl FnMut(&mut Slot, InFlight) -> Result<(), GpuError>,
) -> Result<(), GpuError> {
    let mut result = Ok(());
    for (i, (start, voxels)) in blocks.enumerate() {
        let slot = &mut slots[i % 2];
        let step = slot
            .in_flight
            .take()
            .map_or(Ok(()), |done| finish(slot, done))
            .and_then(|()| submit(slot, start, voxels));
        match step {
            Ok(submitted) => slot.in_flight = Some(InFlight { start, ..submitted }),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    let mut pending: Vec<(usize, usize)> = (0..2)
        .filter_map(|s| slots[s].in_flight.as_ref().map(|f| (f.start, s)))
        .collect();
    pending.sort_unstable();
    for (_, s) in pending {
        let slot = &mut slots[s];
        let done = slot.in_flight.take().expect("listed as in flight");
        let r = finish(slot, done);
        if result.is_ok() {
            result = r;
        }
    }
    result
}

/// Waits for `block`, copies each of the equal sections of its output into the output of
/// the same index in `outs` (channel-major over `n` voxels, in `layout`), and unmaps the
/// staging buffer. A failure is named `operation`.
pub(crate) fn read_back(
    ctx: &GpuContext,
    operation: &str,
    slot: &mut Slot,
    block: InFlight,
    outs: &mut [&mut [u8]],
    n: usize,
    layout: MaskLayout,
) -> Result<(), GpuError> {
    let staging = slot.staging.ensure(ctx, block.bytes)?;
    let view = wait_mapped(
        ctx,
        operation,
        staging,
        block.bytes,
        block.submission,
        &block.mapped,
    )?;
    let section = view.len() / outs.len();
    for (out, part) in outs.iter_mut().zip(view.chunks(section)) {
        scatter(out, n, block.start, block.voxels, layout, part);
    }
    drop(view);
    staging.unmap();
    Ok(())
}

/// Waits for `submission`, then for the mapping of the first `bytes` of `staging` that was
/// started with `mapped` as its callback channel, and returns the mapped bytes. A failure is a
/// [`GpuError::Operation`] named `operation`, with the device error if one was not caught.
pub(crate) fn wait_mapped(
    ctx: &GpuContext,
    operation: &str,
    staging: &wgpu::Buffer,
    bytes: u64,
    submission: wgpu::SubmissionIndex,
    mapped: &mpsc::Receiver<Result<(), wgpu::BufferAsyncError>>,
) -> Result<wgpu::BufferView, GpuError> {
    let fail = |message: String| GpuError::Operation {
        operation: operation.into(),
        message: message.into(),
    };
    let waited = ctx
        .device
        .poll(wgpu::PollType::Wait {
            submission_index: Some(submission),
            timeout: None,
        })
        .map_err(|e| fail(e.to_string()));
    let result = waited.and_then(|_| {
        mapped
            .recv()
            .map_err(|_| fail("the map callback never ran".into()))
            .and_then(|r| r.map_err(|e| fail(e.to_string())))
    });
    if let Err(e) = result {
        // A lost device is said as such, whatever failed first.
        ctx.check_lost()?;
        if let Some(msg) = ctx.uncaptured.lock().ok().and_then(|mut u| u.take()) {
            return Err(fail(format!("{e}; device error: {msg}")));
        }
        return Err(e);
    }
    // Bytes mapped from a device lost meanwhile are not trusted.
    if let Err(e) = ctx.check_lost() {
        staging.unmap();
        return Err(e);
    }
    staging
        .slice(..bytes)
        .get_mapped_range()
        .map_err(|e| fail(e.to_string()))
}
