//! Buffers reused between calls and grown on demand.

use super::context::GpuContext;
use crate::error::GpuError;

/// A buffer of a fixed usage that is replaced by a larger one when a call needs more.
pub struct GrowBuffer {
    label: &'static str,
    usage: wgpu::BufferUsages,
    buffer: Option<wgpu::Buffer>,
}

impl GrowBuffer {
    /// An empty slot; nothing is allocated until [`GrowBuffer::ensure`].
    pub fn new(label: &'static str, usage: wgpu::BufferUsages) -> Self {
        Self {
            label,
            usage,
            buffer: None,
        }
    }

    /// A buffer of at least `size` bytes (rounded up to 4, at least 4). Grows by doubling-free
    /// replacement: the new buffer has exactly the rounded size, so a steady workload
    /// allocates once.
    pub fn ensure(&mut self, ctx: &GpuContext, size: u64) -> Result<&wgpu::Buffer, GpuError> {
        let size = size.max(4).next_multiple_of(4);
        if self.buffer.as_ref().is_none_or(|b| b.size() < size) {
            self.buffer = None;
            let buffer = ctx.scoped(
                &format!("allocation of {size} bytes for {}", self.label),
                || {
                    ctx.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some(self.label),
                        size,
                        usage: self.usage,
                        mapped_at_creation: false,
                    })
                },
            )?;
            self.buffer = Some(buffer);
        }
        Ok(self.buffer.as_ref().expect("allocated above"))
    }

    /// Writes `words` at the start of the buffer (grown to hold them) and returns it.
    pub fn upload_words(
        &mut self,
        ctx: &GpuContext,
        words: &[u32],
    ) -> Result<wgpu::Buffer, GpuError> {
        let buffer = self.ensure(ctx, 4 * words.len() as u64)?.clone();
        ctx.queue
            .write_buffer(&buffer, 0, bytemuck::cast_slice(words));
        Ok(buffer)
    }

    /// The current buffer, if one was allocated.
    pub fn get(&self) -> Option<&wgpu::Buffer> {
        self.buffer.as_ref()
    }
}
