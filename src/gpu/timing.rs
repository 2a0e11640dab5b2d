//! Timings for the benchmarks: the kernel alone, and the transfers alone, through the same
//! blocks and buffers as [`GpuEngine::run`].

use std::time::Instant;

use super::GpuEngine;
use super::double_buffer::time_dispatch;
use super::kernels::mask::Pass;
use super::layout::Kernel;
use crate::bits::MaskLayout;
use crate::error::GpuError;
use crate::label::LabelSlice;
use crate::labels::plan::MaskPlan;

impl GpuEngine {
    /// Seconds the kernel takes over `labels`: for each block, the labels are uploaded first
    /// (not timed), then the best of `repeat` dispatch-and-wait rounds is taken; the blocks'
    /// bests are summed. Wall-clock time of submit + wait, so it includes the submission
    /// overhead (microseconds on a hardware GPU).
    pub fn kernel_seconds(
        &self,
        plan: &MaskPlan,
        labels: LabelSlice<'_>,
        mask_layout: MaskLayout,
        repeat: usize,
    ) -> Result<f64, GpuError> {
        let n = labels.len();
        if n == 0 || plan.num_channels() == 0 {
            return Ok(0.0);
        }
        let mut total = 0.0;
        self.sequential_blocks(
            plan,
            labels,
            Kernel::Mask(mask_layout),
            |_, _, dispatch, upload| {
                total += time_dispatch(&self.ctx, &dispatch, upload, repeat)?;
                Ok(())
            },
        )?;
        Ok(total)
    }

    /// Seconds of the whole block loop without the kernel: labels uploaded, the (unwritten)
    /// mask buffer read back into `out`, best of `repeat`. The ceiling for the end-to-end time.
    pub fn transfer_seconds(
        &self,
        plan: &MaskPlan,
        labels: LabelSlice<'_>,
        out: &mut [u8],
        mask_layout: MaskLayout,
        repeat: usize,
    ) -> Result<f64, GpuError> {
        let mut best = f64::INFINITY;
        for _ in 0..repeat.max(1) {
            let t = Instant::now();
            self.mask_blocks(
                plan,
                labels,
                &mut [out],
                Kernel::Mask(mask_layout),
                Pass::TransferOnly,
            )?;
            best = best.min(t.elapsed().as_secs_f64());
        }
        Ok(best)
    }
}
