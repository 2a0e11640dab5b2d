//! Engine selection (SPEC 5): `cpu`, `gpu`, or `auto` (the GPU if an adapter is found, else the
//! CPU), and the `verify` mode that recomputes on the CPU and reports the first difference.

use std::sync::Arc;

use ndarray::{ArrayD, IxDyn};

use crate::cpu;
use crate::error::{Error, Result};
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
                Err(e) => Ok(Engine {
                    note: Some(format!("auto: no hardware GPU ({e})")),
                    ..Engine::cpu()
                }),
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
        match &self.backend {
            Backend::Cpu => cpu::compute_into(plan, labels, out),
            Backend::Gpu(g) => g.compute_into(plan, labels, out)?,
        }
        if verify && !matches!(self.backend, Backend::Cpu) {
            let mut expected = vec![0u8; out.len()];
            cpu::compute_into(plan, labels, &mut expected);
            check_equal(self.name(), shape, out, &expected)?;
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

/// Fails with the first differing voxel of two channel-major masks over `shape`.
pub fn check_equal(engine: &str, shape: &[usize], got: &[u8], expected: &[u8]) -> Result<()> {
    let Some(i) = got.iter().zip(expected).position(|(a, b)| a != b) else {
        return Ok(());
    };
    let n: usize = shape.iter().product();
    let (channel, mut flat) = (i / n.max(1), i % n.max(1));
    let mut voxel = vec![0u64; shape.len()];
    for d in (0..shape.len()).rev() {
        voxel[d] = (flat % shape[d]) as u64;
        flat /= shape[d];
    }
    Err(Error::VerifyMismatch {
        engine: engine.to_string(),
        channel,
        voxel,
        got: got[i],
        expected: expected[i],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_equal_names_the_first_difference() {
        let a = [0u8, 1, 1, 0, 1, 1];
        let mut b = a;
        assert!(check_equal("gpu", &[1, 3], &a, &b).is_ok());
        b[5] = 0;
        let err = check_equal("gpu", &[1, 3], &a, &b).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("channel 1, voxel [0, 2]") && msg.contains("gpu gave 1, cpu gave 0"),
            "{msg}"
        );
    }
}
