//! The double-buffered block loop shared by the GPU kernels: blocks alternate between two slots
//! (buffer sets), so block `k + 1` is uploaded and computed while block `k` is read back.

use std::sync::mpsc;

use super::context::GpuContext;
use crate::error::GpuError;

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

/// Runs `blocks` (`(start, voxels)`) through two alternating slots. Block `i` goes to slot
/// `i % 2`: the block that slot held is finished first, then `submit(slot, start, voxels)`
/// starts the new one. At the end, also after an error, the slots are drained in block order
/// so no buffer stays mapped; the first error wins.
pub(crate) fn run_blocks<S>(
    slots: &mut [S; 2],
    in_flight: fn(&mut S) -> &mut Option<InFlight>,
    blocks: impl Iterator<Item = (usize, usize)>,
    mut submit: impl FnMut(&mut S, usize, usize) -> Result<InFlight, GpuError>,
    mut finish: impl FnMut(&mut S, InFlight) -> Result<(), GpuError>,
) -> Result<(), GpuError> {
    let mut result = Ok(());
    for (i, (start, voxels)) in blocks.enumerate() {
        let slot = &mut slots[i % 2];
        let step = in_flight(slot)
            .take()
            .map_or(Ok(()), |done| finish(slot, done))
            .and_then(|()| submit(slot, start, voxels));
        match step {
            Ok(submitted) => *in_flight(slot) = Some(InFlight { start, ..submitted }),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    let mut pending: Vec<(usize, usize)> = (0..2)
        .filter_map(|s| in_flight(&mut slots[s]).as_ref().map(|f| (f.start, s)))
        .collect();
    pending.sort_unstable();
    for (_, s) in pending {
        let slot = &mut slots[s];
        let done = in_flight(slot).take().expect("listed as in flight");
        let r = finish(slot, done);
        if result.is_ok() {
            result = r;
        }
    }
    result
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
        message,
    };
    ctx.device
        .poll(wgpu::PollType::Wait {
            submission_index: Some(submission),
            timeout: None,
        })
        .map_err(|e| fail(e.to_string()))?;
    let result = mapped
        .recv()
        .map_err(|_| fail("the map callback never ran".into()))
        .and_then(|r| r.map_err(|e| fail(e.to_string())));
    if let Err(e) = result {
        if let Some(msg) = ctx.uncaptured.lock().ok().and_then(|mut u| u.take()) {
            return Err(fail(format!("{e}; device error: {msg}")));
        }
        return Err(e);
    }
    staging
        .slice(..bytes)
        .get_mapped_range()
        .map_err(|e| fail(e.to_string()))
}
