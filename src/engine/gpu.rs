//! The GPU side of engine selection (the `gpu` feature): `auto`'s trial block, [`Engine::gpu`],
//! [`Engine::select`], and the fallback of a failing GPU engine to the CPU.

use std::sync::Arc;
use std::time::Instant;

use super::{Backend, Engine, Outputs, check_equal};
use crate::bits::MaskLayout;
use crate::cpu;
use crate::error::{GpuError, Result};
use crate::gpu::{AdapterPolicy, GpuEngine};
use crate::label::LabelDtype;
use crate::labels::plan::MaskPlan;
use crate::options::{EngineChoice, MaskOptions};

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
    /// (else [`crate::Error::VerifyMismatch`]).
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
            cpu::run(&plan, slice, Outputs::bytes(out));
            t.elapsed().as_secs_f64()
        };
        let gpu_run = |out: &mut [u8]| -> Result<f64> {
            let t = Instant::now();
            gpu.run(&plan, &[slice], Outputs::bytes(out))?;
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

impl Engine {
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

    /// Runs `compute` on the GPU engine, unless this is the CPU engine or the GPU engine was
    /// given up; returns whether it computed (false: the caller computes on the CPU). A
    /// failure gives the GPU engine up for good ([`GpuEngine::give_up`]), with one warning on
    /// standard error, the first time.
    pub(super) fn try_gpu(
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
}
