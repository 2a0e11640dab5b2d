//! Masks and targets that stay on the GPU, for a wgpu consumer (a training step on the same
//! device): no readback, the caller owns the buffers.

use super::double_buffer::{bind_group, encode_dispatch, wait};
use super::layout::{self, Kernel};
use super::{GpuContext, GpuEngine};
use crate::error::GpuError;
use crate::label::LabelSlice;
use crate::labels::plan::MaskPlan;

/// A mask and its targets in device buffers. Each is channel-major `u8` (one byte per voxel),
/// channel `c` starting at byte `c * channel_stride`; `channel_stride` is the voxel count
/// rounded up to a multiple of 4 (the padding bytes are 0 in the mask; in the targets too).
#[derive(Debug)]
pub struct DeviceMask {
    /// The mask (`STORAGE | COPY_SRC | COPY_DST`).
    pub mask: wgpu::Buffer,
    /// The targets, same layout.
    pub targets: wgpu::Buffer,
    /// Number of channels.
    pub channels: usize,
    /// Voxels per channel.
    pub voxels: usize,
    /// Bytes from one channel's start to the next.
    pub channel_stride: u64,
}

impl DeviceMask {
    /// Reads both back into channel-major host vectors without padding (tests, or a consumer
    /// that wants host memory after all).
    pub fn read(&self, ctx: &GpuContext) -> Result<(Vec<u8>, Vec<u8>), GpuError> {
        let size = self.mask.size();
        let staging = ctx.scoped("readback allocation", || {
            ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("device mask readback"),
                size: 2 * size,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })?;
        let submission = ctx.scoped("device mask readback", || {
            let mut encoder = ctx.device.create_command_encoder(&Default::default());
            encoder.copy_buffer_to_buffer(&self.mask, 0, &staging, 0, size);
            encoder.copy_buffer_to_buffer(&self.targets, 0, &staging, size, size);
            ctx.queue.submit([encoder.finish()])
        })?;
        let (tx, rx) = std::sync::mpsc::channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        let view = super::double_buffer::wait_mapped(
            ctx,
            "device mask readback",
            &staging,
            2 * size,
            submission,
            &rx,
        )?;
        let unpad = |part: &[u8]| -> Vec<u8> {
            part.chunks(self.channel_stride as usize)
                .flat_map(|c| &c[..self.voxels])
                .copied()
                .collect()
        };
        let (m, t) = view.split_at(size as usize);
        let out = (unpad(m), unpad(t));
        drop(view);
        staging.unmap();
        Ok(out)
    }
}

impl GpuEngine {
    /// The mask and the targets of `labels` (as [`GpuEngine::run`] with targets), left on the
    /// device in new buffers that the caller owns. Waits until they are written.
    pub fn compute_fused_on_device(
        &self,
        plan: &MaskPlan,
        labels: LabelSlice<'_>,
    ) -> Result<DeviceMask, GpuError> {
        let ctx = &self.ctx;
        let n = labels.len();
        let channels = plan.num_channels();
        let channel_stride = 4 * layout::quads(n) as u64;
        let size = (channel_stride * channels as u64).max(4);
        let usage = wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST;
        let [mask, targets] = ["device mask", "device targets"].map(|label| {
            ctx.scoped(&format!("allocation of {size} bytes for {label}"), || {
                ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(label),
                    size,
                    usage,
                    mapped_at_creation: false,
                })
            })
        });
        let (mask, targets) = (mask?, targets?);
        let device = DeviceMask {
            mask,
            targets,
            channels,
            voxels: n,
            channel_stride,
        };
        if n == 0 || channels == 0 {
            return Ok(device);
        }
        self.sequential_blocks(
            plan,
            labels,
            Kernel::Fused,
            |start, voxels, dispatch, upload| {
                let block_stride = 4 * layout::quads(voxels) as u64;
                let (output, _) = dispatch.bindings[3];
                let submission = ctx.scoped("mask dispatch (device output)", || {
                    upload();
                    let group = bind_group(ctx, &dispatch);
                    let mut encoder = ctx.device.create_command_encoder(&Default::default());
                    encode_dispatch(&mut encoder, &dispatch, &group);
                    // Section s (mask, targets), channel c of the block lands at channel c of the
                    // device buffer, at the block's first voxel (a multiple of 32: aligned).
                    for (s, dst) in [&device.mask, &device.targets].into_iter().enumerate() {
                        for c in 0..channels as u64 {
                            let src = (s as u64 * channels as u64 + c) * block_stride;
                            let at = c * channel_stride + start as u64;
                            encoder.copy_buffer_to_buffer(output, src, dst, at, block_stride);
                        }
                    }
                    ctx.queue.submit([encoder.finish()])
                })?;
                // The slot's buffers are reused by the next block, and the caller gets finished
                // buffers: wait for each block.
                wait(ctx, submission)
            },
        )?;
        Ok(device)
    }
}
