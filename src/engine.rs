//! Engine selection (SPEC 5): `cpu`, `gpu`, or `auto` (a hardware GPU only where it measures
//! faster end to end than the CPU on a trial block, else the CPU; see `docs/auto-engine.md`),
//! the `verify` mode that recomputes on the CPU and reports the first difference, and the
//! fallback of a failing GPU (a lost device) to the CPU.

use std::sync::Arc;
use std::time::Instant;

use ndarray::{ArrayD, IxDyn};

use crate::bits::MaskLayout;
use crate::cellmap::{self, CropPlan};
use crate::cpu;
use crate::error::{Error, GpuError, Result};
use crate::gpu::{AdapterPolicy, GpuEngine};
use crate::label::{LabelArray, LabelDtype, LabelSlice};
use crate::options::{EngineChoice, MaskOptions};
use crate::plan::MaskPlan;

/// Edge of the cubic trial block that `auto` times on each engine (64^3 voxels: the size of a
/// typical zarr chunk, which is what `compute` hands an engine at a time).
pub const TRIAL_EDGE: usize = 64;
/// Channels of the trial block.
pub const TRIAL_CHANNELS: usize = 8;
/// Label dtype of the trial block (EM label volumes are mostly `uint64`).
pub const TRIAL_DTYPE: LabelDtype = LabelDtype::U64;
/// Timed runs per engine (after one untimed warm-up run); the best is kept.
pub const TRIAL_RUNS: usize = 5;

/// What `auto` measured: the best end-to-end seconds of the trial block on each engine (host
/// labels in, host mask out: upload, compute and readback on the GPU).
#[derive(Clone, Debug, PartialEq)]
pub struct Trial {
    /// Best seconds on the CPU engine (all its threads).
    pub cpu_seconds: f64,
    /// Best seconds on the GPU engine.
    pub gpu_seconds: f64,
    /// Voxels of the trial block.
    pub voxels: usize,
}

impl Trial {
    /// Times the trial block ([`TRIAL_EDGE`]^3 [`TRIAL_DTYPE`] labels, [`TRIAL_CHANNELS`]
    /// channels, the benchmark's labels and groupings) on the CPU engine and on `gpu`, one
    /// warm-up run each, then [`TRIAL_RUNS`] interleaved timed runs. The two masks must be equal
    /// (else [`Error::VerifyMismatch`]).
    pub fn measure(gpu: &GpuEngine) -> Result<Trial> {
        let shape = [TRIAL_EDGE; 3];
        let (labels, groupings, missing) =
            crate::synth::bench_inputs(TRIAL_EDGE, TRIAL_DTYPE, TRIAL_CHANNELS);
        let plan = MaskPlan::new(&groupings, &missing, &MaskOptions::default());
        let slice = labels.as_slice();
        let n = slice.len();
        let (mut on_cpu, mut on_gpu) =
            (vec![0u8; n * TRIAL_CHANNELS], vec![0u8; n * TRIAL_CHANNELS]);
        let cpu_run = |out: &mut [u8]| {
            let t = Instant::now();
            cpu::compute_into_tuned(
                &plan,
                slice,
                out,
                MaskLayout::Bytes,
                cpu::Tuning::auto(out.len()),
            );
            t.elapsed().as_secs_f64()
        };
        let gpu_run = |out: &mut [u8]| -> Result<f64> {
            let t = Instant::now();
            gpu.compute_into(&plan, slice, out)?;
            Ok(t.elapsed().as_secs_f64())
        };
        cpu_run(&mut on_cpu);
        gpu_run(&mut on_gpu)?;
        check_equal("gpu", &shape, MaskLayout::Bytes, &on_gpu, &on_cpu)?;
        let (mut cpu_seconds, mut gpu_seconds) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..TRIAL_RUNS {
            cpu_seconds = cpu_seconds.min(cpu_run(&mut on_cpu));
            gpu_seconds = gpu_seconds.min(gpu_run(&mut on_gpu)?);
        }
        Ok(Trial {
            cpu_seconds,
            gpu_seconds,
            voxels: n,
        })
    }

    /// Whether the GPU beat the CPU (`auto` keeps the CPU on a tie: it has no device to lose).
    pub fn gpu_wins(&self) -> bool {
        self.gpu_seconds < self.cpu_seconds
    }

    /// "on a 64^3 uint64 x 8-channel block, end to end: gpu 1.234 ms, cpu 0.456 ms".
    pub fn describe(&self) -> String {
        format!(
            "on a {TRIAL_EDGE}^3 {TRIAL_DTYPE} x {TRIAL_CHANNELS}-channel block, end to end \
             (labels in host memory, mask back in host memory): gpu {:.3} ms, cpu {:.3} ms",
            self.gpu_seconds * 1e3,
            self.cpu_seconds * 1e3
        )
    }
}

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
    /// fails with [`crate::GpuError::NoAdapter`] if there is none. `Auto` takes the CPU unless
    /// a hardware adapter is found and measures faster end to end on a trial block
    /// ([`Trial::measure`]): for jobs whose labels and masks live in host memory (`compute`,
    /// `get`), the transfers decide, and a CPU engine running at memory speed usually wins. A
    /// software adapter runs on the same cores as the CPU engine, only slower, so `auto` does
    /// not try it. The reason is kept in [`Engine::describe`].
    pub fn select(choice: EngineChoice) -> Result<Engine> {
        match choice {
            EngineChoice::Cpu => Ok(Engine::cpu()),
            EngineChoice::Gpu => Ok(Engine::gpu(Arc::new(GpuEngine::new()?))),
            EngineChoice::Auto => Ok(Engine::select_auto(AdapterPolicy::HardwareOnly)),
        }
    }

    /// `auto` among the adapters `policy` allows: [`Engine::select`] uses
    /// [`AdapterPolicy::HardwareOnly`]; the tests use [`AdapterPolicy::AnyAdapter`] to run the
    /// trial on a software adapter.
    #[doc(hidden)]
    pub fn select_auto(policy: AdapterPolicy) -> Engine {
        let cpu = |note: String| Engine {
            note: Some(note),
            ..Engine::cpu()
        };
        let gpu = match GpuEngine::with_policy(policy) {
            Ok(gpu) => gpu,
            Err(e) => {
                let why = match e {
                    GpuError::NoAdapter { message } if message.starts_with("only software") => {
                        format!("{message}; --engine gpu runs on them")
                    }
                    GpuError::NoAdapter { message } => message,
                    other => other.to_string(),
                };
                return cpu(format!("auto: no hardware GPU ({why})"));
            }
        };
        let adapter = gpu.context().describe();
        match Trial::measure(&gpu) {
            Ok(trial) if trial.gpu_wins() => Engine {
                note: Some(format!(
                    "auto: the GPU measured faster than the cpu ({} threads) {}",
                    rayon::current_num_threads(),
                    trial.describe()
                )),
                ..Engine::gpu(Arc::new(gpu))
            },
            Ok(trial) => cpu(format!(
                "auto: the cpu measured faster than the GPU {adapter} {}; --engine gpu forces it",
                trial.describe()
            )),
            Err(e) => cpu(format!(
                "auto: the GPU {adapter} failed its trial block ({e})"
            )),
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
        let mut what = match &self.backend {
            Backend::Cpu => format!("cpu ({} threads)", rayon::current_num_threads()),
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
        let on_gpu = self.try_gpu(|g| g.compute_fused_into(plan, labels, mask, targets));
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
        let on_gpu = self.try_gpu(|g| g.compute_layout_into(plan, labels, out, layout));
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
        let on_gpu =
            self.try_gpu(|g| g.compute_crop_into(plan, classes, mask, targets.as_deref_mut()));
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

    /// Runs `compute` on the GPU engine, unless this is the CPU engine or the GPU engine was
    /// given up; returns whether it computed (false: the caller computes on the CPU). A
    /// failure gives the GPU engine up for good ([`GpuEngine::give_up`]), with one warning on
    /// standard error, the first time.
    fn try_gpu(
        &self,
        compute: impl FnOnce(&GpuEngine) -> std::result::Result<(), GpuError>,
    ) -> bool {
        let Backend::Gpu(g) = &self.backend else {
            return false;
        };
        if g.failure().is_some() {
            return false;
        }
        match compute(g) {
            Ok(()) => true,
            Err(e) => {
                let warning = format!(
                    "warning: the GPU engine ({}) failed: {e}; this block and all later ones \
                     are computed by the cpu engine instead (same results)",
                    g.context().describe()
                );
                if g.give_up(e) {
                    eprintln!("{warning}");
                }
                false
            }
        }
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
