//! Engine selection (SPEC 5): `cpu`, `gpu`, or `auto` (the GPU if an adapter is found, else the
//! CPU), and the `verify` mode that recomputes on the CPU and reports the first difference.

use std::sync::Arc;

use ndarray::{ArrayD, IxDyn};

use crate::bits::MaskLayout;
use crate::cellmap::{self, CropPlan};
use crate::cpu;
use crate::error::{Error, GpuError, Result};
use crate::gpu::{AdapterPolicy, GpuEngine};
use crate::label::{LabelArray, LabelSlice};
use crate::options::EngineChoice;
use crate::plan::MaskPlan;

/// What computes: the CPU, or a GPU engine (shared, so one device serves many masks).
#[derive(Clone, Debug)]
pub enum Backend {
    /// The CPU engine.
    Cpu,
    /// The GPU engine.
    Gpu(Arc<GpuEngine>),
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

    /// A GPU engine.
    pub fn gpu(engine: Arc<GpuEngine>) -> Engine {
        Engine {
            backend: Backend::Gpu(engine),
            note: None,
        }
    }

    /// Resolves a choice. `Gpu` takes the best adapter, software ones (lavapipe) included, and
    /// fails with [`crate::GpuError::NoAdapter`] if there is none. `Auto` takes a hardware adapter if
    /// there is one, else the CPU: a software adapter runs on the same cores as the CPU engine,
    /// only slower. The reason is kept in [`Engine::describe`].
    pub fn select(choice: EngineChoice) -> Result<Engine> {
        match choice {
            EngineChoice::Cpu => Ok(Engine::cpu()),
            EngineChoice::Gpu => Ok(Engine::gpu(Arc::new(GpuEngine::new()?))),
            EngineChoice::Auto => match GpuEngine::with_policy(AdapterPolicy::HardwareOnly) {
                Ok(gpu) => Ok(Engine {
                    note: Some("auto: a GPU adapter was found".into()),
                    ..Engine::gpu(Arc::new(gpu))
                }),
                Err(e) => {
                    let why = match e {
                        GpuError::NoAdapter { message } if message.starts_with("only software") => {
                            format!("{message}; --engine gpu runs on them")
                        }
                        GpuError::NoAdapter { message } => message,
                        other => other.to_string(),
                    };
                    Ok(Engine {
                        note: Some(format!("auto: no hardware GPU ({why})")),
                        ..Engine::cpu()
                    })
                }
            },
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
            Backend::Gpu(_) => "gpu",
        }
    }

    /// A sentence saying which engine this is, on what device, and why it was chosen.
    pub fn describe(&self) -> String {
        let what = match &self.backend {
            Backend::Cpu => format!("cpu ({} threads)", rayon::current_num_threads()),
            Backend::Gpu(g) => format!("gpu: {}", g.context().describe()),
        };
        match &self.note {
            Some(note) => format!("{what}; {note}"),
            None => what,
        }
    }

    /// Computes the mask of `labels` into `out` (channel-major, see [`cpu::compute_into`]).
    /// With `verify`, recomputes on the CPU and fails with [`Error::VerifyMismatch`] on any
    /// difference.
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
        match &self.backend {
            Backend::Cpu => cpu::compute_fused_into(plan, labels, mask, targets),
            Backend::Gpu(g) => g.compute_fused_into(plan, labels, mask, targets)?,
        }
        if verify && !matches!(self.backend, Backend::Cpu) {
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
        match &self.backend {
            Backend::Cpu => cpu_into(out),
            Backend::Gpu(g) => g.compute_layout_into(plan, labels, out, layout)?,
        }
        if verify && !matches!(self.backend, Backend::Cpu) {
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
        match &self.backend {
            Backend::Cpu => cellmap::cpu::compute_into(plan, classes, mask, targets.as_deref_mut()),
            Backend::Gpu(g) => g.compute_crop_into(plan, classes, mask, targets.as_deref_mut())?,
        }
        if verify && !matches!(self.backend, Backend::Cpu) {
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
}
