//! Engine selection (SPEC 5): `cpu`, `gpu`, or `auto` (a hardware GPU only where it measures
//! faster end to end than the CPU on a trial block, else the CPU; see `docs/auto-engine.md`),
//! the `verify` mode that recomputes on the CPU and reports the first difference, and the
//! fallback of a failing GPU (a lost device) to the CPU.

use ndarray::{ArrayD, IxDyn};

use crate::bits::MaskLayout;
use crate::cellmap::{self, CropPlan};
use crate::cpu;
use crate::error::{Error, GpuError, Result};
use crate::label::{LabelArray, LabelSlice};
use crate::labels::plan::MaskPlan;

// The GPU side (`src/engine/gpu.rs`): the trial block of `auto`, `Engine::gpu`, `Engine::select`
// and the fallback of a failing GPU engine. Without the `gpu` feature, `Engine::select` is the
// one below and every block is computed on the CPU.
#[cfg(feature = "gpu")]
mod gpu;
#[cfg(feature = "gpu")]
pub use gpu::{TRIAL_CHANNELS, TRIAL_DTYPE, TRIAL_EDGE, TRIAL_RUNS, Trial};

/// What computes: the CPU, or a GPU engine (shared, so one device serves many masks).
#[derive(Clone, Debug)]
pub enum Backend {
    /// The CPU engine.
    Cpu,
    /// The GPU engine.
    #[cfg(feature = "gpu")]
    Gpu(std::sync::Arc<crate::gpu::GpuEngine>),
}

/// A resolved engine, ready to compute, with a note on how it was chosen.
#[derive(Clone, Debug)]
pub struct Engine {
    backend: Backend,
    note: Option<String>,
}

impl Engine {
    /// The CPU engine.
    pub fn cpu() -> Engine {
        Engine {
            backend: Backend::Cpu,
            note: None,
        }
    }

    /// The backend.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// `cpu` or `gpu`.
    pub fn name(&self) -> &'static str {
        match self.backend {
            Backend::Cpu => "cpu",
            #[cfg(feature = "gpu")]
            Backend::Gpu(_) => "gpu",
        }
    }

    /// A sentence saying which engine this is, on what device, and why it was chosen.
    pub fn describe(&self) -> String {
        let mut what = match &self.backend {
            Backend::Cpu => format!("cpu ({} threads)", rayon::current_num_threads()),
            #[cfg(feature = "gpu")]
            Backend::Gpu(g) => format!("gpu: {}", g.context().describe()),
        };
        if let Some(note) = &self.note {
            what = format!("{what}; {note}");
        }
        if let Some(e) = self.gpu_failure() {
            what = format!(
                "{what}; fell back to the cpu ({} threads) after: {e}",
                rayon::current_num_threads()
            );
        }
        what
    }

    /// The failure after which a GPU engine hands its blocks to the CPU engine (see
    /// [`Engine::compute_into`]), if there was one.
    pub fn gpu_failure(&self) -> Option<&GpuError> {
        match &self.backend {
            Backend::Cpu => None,
            #[cfg(feature = "gpu")]
            Backend::Gpu(g) => g.failure(),
        }
    }

    /// Computes the mask of `labels` into `out` (channel-major, see [`cpu::compute_into`]).
    /// With `verify`, recomputes on the CPU and fails with [`Error::VerifyMismatch`] on any
    /// difference.
    ///
    /// On a GPU engine, a failure of the device (lost, or a submission that fails) does not
    /// fail the call: the CPU engine computes this call and every later one (the results are
    /// the same, bit for bit), and one warning goes to standard error (see
    /// [`Engine::gpu_failure`]).
    pub fn compute_into(
        &self,
        plan: &MaskPlan,
        labels: LabelSlice<'_>,
        shape: &[usize],
        out: &mut [u8],
        verify: bool,
    ) -> Result<()> {
        self.compute_layout_into(plan, labels, shape, out, MaskLayout::Bytes, verify)
    }

    /// The bit-packed mask of `labels` into `out` (see [`crate::bits`]).
    pub fn compute_packed_into(
        &self,
        plan: &MaskPlan,
        labels: LabelSlice<'_>,
        shape: &[usize],
        out: &mut [u8],
        verify: bool,
    ) -> Result<()> {
        self.compute_layout_into(plan, labels, shape, out, MaskLayout::Bits, verify)
    }

    /// The mask and the targets of `labels` in one pass (see [`cpu::compute_fused_into`]).
    /// With `verify`, recomputes both on the CPU (targets reported as engine `<name> targets`).
    pub fn compute_fused_into(
        &self,
        plan: &MaskPlan,
        labels: LabelSlice<'_>,
        shape: &[usize],
        mask: &mut [u8],
        targets: &mut [u8],
        verify: bool,
    ) -> Result<()> {
        #[cfg(feature = "gpu")]
        let on_gpu = self.try_gpu(|g| g.compute_fused_into(plan, labels, mask, targets));
        #[cfg(not(feature = "gpu"))]
        let on_gpu = false;
        if !on_gpu {
            cpu::compute_fused_into(plan, labels, mask, targets);
        }
        if verify && on_gpu {
            let (mut want_mask, mut want_targets) =
                (vec![0u8; mask.len()], vec![0u8; targets.len()]);
            cpu::compute_fused_into(plan, labels, &mut want_mask, &mut want_targets);
            check_equal(self.name(), shape, MaskLayout::Bytes, mask, &want_mask)?;
            let name = format!("{} targets", self.name());
            check_equal(&name, shape, MaskLayout::Bytes, targets, &want_targets)?;
        }
        Ok(())
    }

    /// [`Engine::compute_into`] or [`Engine::compute_packed_into`] by `layout`.
    pub fn compute_layout_into(
        &self,
        plan: &MaskPlan,
        labels: LabelSlice<'_>,
        shape: &[usize],
        out: &mut [u8],
        layout: MaskLayout,
        verify: bool,
    ) -> Result<()> {
        let cpu_into = |out: &mut [u8]| {
            cpu::compute_into_tuned(plan, labels, out, layout, cpu::Tuning::auto(out.len()))
        };
        #[cfg(feature = "gpu")]
        let on_gpu = self.try_gpu(|g| g.compute_layout_into(plan, labels, out, layout));
        #[cfg(not(feature = "gpu"))]
        let on_gpu = false;
        if !on_gpu {
            cpu_into(out);
        }
        if verify && on_gpu {
            let mut expected = vec![0u8; out.len()];
            cpu_into(&mut expected);
            check_equal(self.name(), shape, layout, out, &expected)?;
        }
        Ok(())
    }

    /// Computes the mask of a crop-group region (and, with `targets`, its targets) into
    /// channel-major outputs (see [`cellmap::cpu::compute_into`]); `classes[k]` holds the values
    /// of `plan.classes()[k]` over a region of `shape`. With `verify`, recomputes on the CPU and
    /// fails with [`Error::VerifyMismatch`] on any difference (targets reported as engine
    /// `<name> targets`).
    pub fn compute_crop_into(
        &self,
        plan: &CropPlan,
        classes: &[LabelSlice<'_>],
        shape: &[usize],
        mask: &mut [u8],
        mut targets: Option<&mut [u8]>,
        verify: bool,
    ) -> Result<()> {
        #[cfg(feature = "gpu")]
        let on_gpu =
            self.try_gpu(|g| g.compute_crop_into(plan, classes, mask, targets.as_deref_mut()));
        #[cfg(not(feature = "gpu"))]
        let on_gpu = false;
        if !on_gpu {
            cellmap::cpu::compute_into(plan, classes, mask, targets.as_deref_mut());
        }
        if verify && on_gpu {
            let mut want_mask = vec![0u8; mask.len()];
            let mut want_targets = targets.as_ref().map(|t| vec![0u8; t.len()]);
            cellmap::cpu::compute_into(plan, classes, &mut want_mask, want_targets.as_deref_mut());
            check_equal(self.name(), shape, MaskLayout::Bytes, mask, &want_mask)?;
            if let (Some(got), Some(want)) = (targets, want_targets) {
                check_equal(
                    &format!("{} targets", self.name()),
                    shape,
                    MaskLayout::Bytes,
                    got,
                    &want,
                )?;
            }
        }
        Ok(())
    }

    /// The mask of `labels`: shape `(channels, *labels.shape())`.
    pub fn compute(
        &self,
        plan: &MaskPlan,
        labels: &LabelArray,
        verify: bool,
    ) -> Result<ArrayD<u8>> {
        let mut shape = vec![plan.num_channels()];
        shape.extend_from_slice(labels.shape());
        let mut out = vec![0u8; shape.iter().product()];
        self.compute_into(plan, labels.as_slice(), labels.shape(), &mut out, verify)?;
        Ok(ArrayD::from_shape_vec(IxDyn(&shape), out).expect("shape matches the buffer"))
    }
}

/// Without the `gpu` feature there is no GPU engine.
#[cfg(not(feature = "gpu"))]
impl Engine {
    /// Resolves a choice in a build without the `gpu` feature: `Cpu` and `Auto` take the CPU
    /// (`auto` says why in [`Engine::describe`]), `Gpu` fails with [`GpuError::NotBuilt`].
    pub fn select(choice: crate::options::EngineChoice) -> Result<Engine> {
        use crate::options::EngineChoice;
        match choice {
            EngineChoice::Cpu => Ok(Engine::cpu()),
            EngineChoice::Gpu => Err(GpuError::NotBuilt.into()),
            EngineChoice::Auto => Ok(Engine {
                note: Some(format!("auto: no GPU engine ({})", GpuError::NotBuilt)),
                ..Engine::cpu()
            }),
        }
    }
}

/// Fails with the first differing voxel of two channel-major masks over `shape`, laid out as
/// `layout`.
pub fn check_equal(
    engine: &str,
    shape: &[usize],
    layout: MaskLayout,
    got: &[u8],
    expected: &[u8],
) -> Result<()> {
    let Some(i) = got.iter().zip(expected).position(|(a, b)| a != b) else {
        return Ok(());
    };
    let n: usize = shape.iter().product();
    let channel_len = layout.channel_len(n).max(1);
    let (channel, byte) = (i / channel_len, i % channel_len);
    let (mut flat, got_value, expected_value) = match layout {
        MaskLayout::Bytes => (byte, got[i], expected[i]),
        MaskLayout::Bits => {
            let bit = (got[i] ^ expected[i]).trailing_zeros() as usize;
            (8 * byte + bit, got[i] >> bit & 1, expected[i] >> bit & 1)
        }
    };
    let mut voxel = vec![0u64; shape.len()];
    for d in (0..shape.len()).rev() {
        voxel[d] = (flat % shape[d]) as u64;
        flat /= shape[d];
    }
    Err(Error::VerifyMismatch {
        engine: engine.to_string(),
        channel,
        voxel,
        got: got_value,
        expected: expected_value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_equal_names_the_first_difference() {
        let a = [0u8, 1, 1, 0, 1, 1];
        let mut b = a;
        assert!(check_equal("gpu", &[1, 3], MaskLayout::Bytes, &a, &b).is_ok());
        b[5] = 0;
        let err = check_equal("gpu", &[1, 3], MaskLayout::Bytes, &a, &b).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("channel 1, voxel [0, 2]") && msg.contains("gpu gave 1, cpu gave 0"),
            "{msg}"
        );
        // Packed: 10 voxels per channel take 2 bytes; bit 1 of channel 1's second byte is voxel 9.
        let got = [0u8, 0, 0, 0b10];
        let err = check_equal("gpu", &[2, 5], MaskLayout::Bits, &got, &[0; 4]).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("channel 1, voxel [1, 4]: gpu gave 1, cpu gave 0"),
            "{msg}"
        );
    }

    /// Without the `gpu` feature: `gpu` is a typed error that says so, `auto` is the CPU.
    #[cfg(not(feature = "gpu"))]
    #[test]
    fn without_the_gpu_feature_gpu_fails_and_auto_is_the_cpu() {
        use crate::options::EngineChoice;
        let err = Engine::select(EngineChoice::Gpu).unwrap_err();
        assert!(matches!(err, Error::Gpu(GpuError::NotBuilt)), "{err:?}");
        assert!(
            err.to_string().contains("without the `gpu` feature"),
            "{err}"
        );
        let auto = Engine::select(EngineChoice::Auto).unwrap();
        assert_eq!(auto.name(), "cpu");
        assert!(
            auto.describe().contains("`gpu` feature"),
            "{}",
            auto.describe()
        );
        assert!(auto.gpu_failure().is_none());
    }
}
