//! Engine selection (SPEC 5): `cpu`, `gpu`, or `auto` (a hardware GPU only where it measures
//! faster end to end than the CPU on a trial block, else the CPU; see `docs/auto-engine.md`),
//! the `verify` mode that recomputes on the CPU and reports the first difference, and the
//! fallback of a failing GPU (a lost device) to the CPU.
//!
//! Every computation is one request, [`Engine::run`]: a plan (anything implementing
//! [`EnginePlan`]), its inputs, the region's shape and the [`Outputs`].
//!
//! ```
//! use std::collections::BTreeSet;
//! use annomask::engine::{Engine, Outputs};
//! use annomask::{Groupings, LabelSlice, MaskOptions, MaskPlan};
//! let plan = MaskPlan::new(&Groupings::new([("mito", vec![3])])?, &BTreeSet::new(),
//!     &MaskOptions::default());
//! let labels = [0u32, 3, 3, 7];
//! let (mut mask, mut targets) = (vec![0u8; 4], vec![0u8; 4]);
//! let out = Outputs::bytes(&mut mask).with_targets(&mut targets);
//! Engine::cpu().run(&plan, &[LabelSlice::from(&labels[..])], &[4], out, false)?;
//! assert_eq!((mask, targets), (vec![0, 1, 1, 1], vec![0, 1, 1, 0]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::bits::MaskLayout;
#[cfg(doc)]
use crate::cellmap::CropPlan;
use crate::error::{Error, GpuError, Result};
use crate::label::LabelSlice;
#[cfg(doc)]
use crate::labels::plan::MaskPlan;

// The request: what a plan computes into (`Outputs`) and how a plan runs on each engine
// (`EnginePlan`, implemented for `MaskPlan` and `CropPlan`).
mod request;
pub use crate::bits::Outputs;
pub use request::EnginePlan;

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
    /// [`Engine::run`]), if there was one.
    pub fn gpu_failure(&self) -> Option<&GpuError> {
        match &self.backend {
            Backend::Cpu => None,
            #[cfg(feature = "gpu")]
            Backend::Gpu(g) => g.failure(),
        }
    }

    /// The one request: computes `plan` over `inputs` (a region of `shape`, C order) into
    /// `out`, channel-major (channel `c` of voxel `i` at `out.mask[c * len + i]`, `len` the
    /// bytes of one channel in `out.layout`; the targets the same way). What `inputs` holds is
    /// the plan's: one label array for a [`MaskPlan`], one array per class read for a
    /// [`CropPlan`] (see [`EnginePlan`], also for the combinations a plan refuses). With
    /// `verify`, a GPU result is recomputed on the CPU and any difference fails with
    /// [`Error::VerifyMismatch`] (targets reported as engine `<name> targets`).
    ///
    /// On a GPU engine, a failure of the device (lost, or a submission that fails) does not
    /// fail the call: the CPU engine computes this call and every later one (the results are
    /// the same, bit for bit), and one warning goes to standard error (see
    /// [`Engine::gpu_failure`]).
    ///
    /// # Panics
    /// If `inputs` or `out` do not fit the plan (see [`EnginePlan`]).
    pub fn run(
        &self,
        plan: &dyn EnginePlan,
        inputs: &[LabelSlice<'_>],
        shape: &[usize],
        mut out: Outputs<'_>,
        verify: bool,
    ) -> Result<()> {
        #[cfg(feature = "gpu")]
        let on_gpu = self.try_gpu(|g| plan.run_gpu(g, inputs, out.reborrow()));
        #[cfg(not(feature = "gpu"))]
        let on_gpu = false;
        if !on_gpu {
            plan.run_cpu(inputs, out.reborrow());
        }
        if verify && on_gpu {
            let mut want_mask = vec![0u8; out.mask.len()];
            let mut want_targets = out.targets.as_ref().map(|t| vec![0u8; t.len()]);
            plan.run_cpu(
                inputs,
                Outputs {
                    mask: &mut want_mask,
                    layout: out.layout,
                    targets: want_targets.as_deref_mut(),
                },
            );
            check_equal(self.name(), shape, out.layout, out.mask, &want_mask)?;
            if let (Some(got), Some(want)) = (out.targets, want_targets) {
                let name = format!("{} targets", self.name());
                check_equal(&name, shape, MaskLayout::Bytes, got, &want)?;
            }
        }
        Ok(())
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
