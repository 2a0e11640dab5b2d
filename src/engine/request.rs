//! The one request of the engines: a plan ([`EnginePlan`]) runs over its inputs into
//! [`Outputs`], on the CPU or on a GPU engine. [`crate::Engine::run`] picks the engine, falls
//! back from a failing GPU to the CPU and verifies.

use crate::bits::{MaskLayout, Outputs};
use crate::cellmap::CropPlan;
#[cfg(feature = "gpu")]
use crate::error::GpuError;
#[cfg(feature = "gpu")]
use crate::gpu::GpuEngine;
use crate::label::LabelSlice;
use crate::labels::plan::MaskPlan;

/// A plan that the engines can run: it knows its inputs, and how to compute them on the CPU
/// and (feature `gpu`) on a [`GpuEngine`]. Both must give the same bytes.
///
/// - [`MaskPlan`] (a label array): one input, the labels. Any layout; targets with
///   [`MaskLayout::Bytes`] only.
/// - [`CropPlan`] (a crop group): one input per class it reads, in the order of
///   [`CropPlan::classes`], any dtype each. [`MaskLayout::Bytes`] only, targets or not.
///
/// A combination a plan does not support (bit-packed crop masks, bit-packed masks with
/// targets), the wrong number of inputs, inputs of different lengths, or outputs of the wrong
/// size are programming errors: they panic, with a message naming them, on every engine.
pub trait EnginePlan: Sync {
    /// Computes on the CPU engine.
    ///
    /// # Panics
    /// See [`EnginePlan`].
    fn run_cpu(&self, inputs: &[LabelSlice<'_>], out: Outputs<'_>);

    /// Computes on `gpu`.
    ///
    /// # Panics
    /// See [`EnginePlan`].
    #[cfg(feature = "gpu")]
    fn run_gpu(
        &self,
        gpu: &GpuEngine,
        inputs: &[LabelSlice<'_>],
        out: Outputs<'_>,
    ) -> Result<(), GpuError>;
}

/// The one label input of a [`MaskPlan`], after checking the combination.
fn mask_input<'a>(inputs: &[LabelSlice<'a>], out: &Outputs<'_>) -> LabelSlice<'a> {
    assert_eq!(
        inputs.len(),
        1,
        "a label-array plan reads one label array, {} were given",
        inputs.len()
    );
    assert!(
        out.targets.is_none() || out.layout == MaskLayout::Bytes,
        "a label-array plan computes targets with the Bytes layout only, not {:?}",
        out.layout
    );
    inputs[0]
}

impl EnginePlan for MaskPlan {
    fn run_cpu(&self, inputs: &[LabelSlice<'_>], out: Outputs<'_>) {
        let labels = mask_input(inputs, &out);
        crate::cpu::run(self, labels, out)
    }

    #[cfg(feature = "gpu")]
    fn run_gpu(
        &self,
        gpu: &GpuEngine,
        inputs: &[LabelSlice<'_>],
        out: Outputs<'_>,
    ) -> Result<(), GpuError> {
        let labels = mask_input(inputs, &out);
        gpu.mask_into(self, labels, out)
    }
}

/// Checks that a [`CropPlan`] can compute into `out`.
fn crop_layout(out: &Outputs<'_>) {
    assert_eq!(
        out.layout,
        MaskLayout::Bytes,
        "a crop-group plan computes the Bytes layout only"
    );
}

impl EnginePlan for CropPlan {
    fn run_cpu(&self, inputs: &[LabelSlice<'_>], out: Outputs<'_>) {
        crop_layout(&out);
        crate::cellmap::cpu::compute_into(self, inputs, out.mask, out.targets)
    }

    #[cfg(feature = "gpu")]
    fn run_gpu(
        &self,
        gpu: &GpuEngine,
        inputs: &[LabelSlice<'_>],
        out: Outputs<'_>,
    ) -> Result<(), GpuError> {
        crop_layout(&out);
        gpu.crop_into(self, inputs, out.mask, out.targets)
    }
}

#[cfg(feature = "gpu")]
impl GpuEngine {
    /// The one request on this engine alone: computes `plan` over `inputs` into `out`, exactly
    /// as the CPU engine does (see [`crate::Engine::run`], which adds the fallback to the CPU
    /// and `verify`). A failure is returned, not absorbed.
    ///
    /// # Panics
    /// If `inputs` or `out` do not fit the plan (see [`EnginePlan`]).
    pub fn run(
        &self,
        plan: &dyn EnginePlan,
        inputs: &[LabelSlice<'_>],
        out: Outputs<'_>,
    ) -> Result<(), GpuError> {
        plan.run_gpu(self, inputs, out)
    }
}
