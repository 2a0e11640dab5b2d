//! Throughput of the engines on a synthetic volume, in one run, against the ceilings that matter:
//! a `memcpy` of the same bytes (labels read once + mask written once, all cores) and, where
//! Python with numpy is available, the numpy reference (`reference_mask.py bench`: DaCapo's
//! released code and the best vectorised numpy). `annomask bench` without `--pipeline` or
//! `--feeder`, documented in the README.
//!
//! The inputs are [`crate::synth::bench_inputs`], those of `reference_mask.py bench`: labels
//! uniform in `0..40`, channel `c` groups ids `3c+1, 3c+2, 3c+3`, ids 4 and 11 are missing.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::engine::{Engine, Outputs};
use crate::error::Result;
use crate::label::LabelDtype;
use crate::labels::plan::MaskPlan;
use crate::options::{EngineChoice, MaskOptions, MaskPolicy};
use crate::synth::{bench_inputs, parallel_copy};
use serde_json::{Value, json};

use super::cpu_model;

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// Edge of the cubic volume, in voxels.
    pub size: usize,
    /// Number of channels.
    pub channels: usize,
    /// Label dtype.
    pub dtype: LabelDtype,
    /// Mask policy.
    pub policy: MaskPolicy,
    /// Engines to time (`Auto` means: the CPU, and the GPU if any adapter exists).
    pub engines: Vec<EngineChoice>,
    /// Repetitions; the best is reported.
    pub repeat: usize,
    /// Python interpreter for the reference, and the path of `reference_mask.py`; `None` skips it.
    pub reference: Option<(PathBuf, PathBuf)>,
}

/// One timed thing.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// What was timed, e.g. `cpu`, `gpu kernel`, `memcpy`.
    pub name: String,
    /// Best time, seconds.
    pub seconds: f64,
    /// Voxels processed.
    pub voxels: u64,
    /// Bytes moved: labels read once + mask written once (for memcpy: read + written).
    pub bytes: u64,
}

impl Row {
    /// Voxels per second.
    pub fn voxels_per_second(&self) -> f64 {
        self.voxels as f64 / self.seconds
    }

    /// Bytes per second.
    pub fn bytes_per_second(&self) -> f64 {
        self.bytes as f64 / self.seconds
    }
}

/// The result of a run.
#[derive(Clone, Debug)]
pub struct BenchReport {
    /// What was measured.
    pub config: String,
    /// CPU model and thread count, GPU adapter if used.
    pub machine: String,
    /// The memcpy ceiling.
    pub memcpy: Row,
    /// The engines.
    pub rows: Vec<Row>,
    /// The numpy reference, if run: DaCapo's released code, then the same policy vectorised.
    pub reference: Vec<Row>,
    /// Why something was skipped.
    pub notes: Vec<String>,
}

/// A closure that times one run of `f`, in seconds.
fn wall<'a>(mut f: Box<dyn FnMut() -> Result<()> + 'a>) -> Box<dyn FnMut() -> Result<f64> + 'a> {
    Box::new(move || {
        let t = Instant::now();
        f()?;
        Ok(t.elapsed().as_secs_f64())
    })
}

/// Runs the benchmark.
pub fn run(config: &BenchConfig) -> Result<BenchReport> {
    let (labels, groupings, missing) = bench_inputs(config.size, config.dtype, config.channels);
    let plan = MaskPlan::new(
        &groupings,
        &missing,
        &MaskOptions::default().policy(config.policy),
    );
    let n = labels.as_slice().len();
    let voxels = n as u64;
    let label_bytes = (n * config.dtype.size()) as u64;
    let shape = labels.shape().to_vec();
    let mut notes = Vec::new();
    #[cfg_attr(not(feature = "gpu"), allow(unused_mut))] // a GPU engine adds its adapter
    let mut machine = format!("{}, {} threads", cpu_model(), rayon::current_num_threads());

    let mask_bytes = (n * config.channels) as u64;
    let packed_bytes = (crate::bits::packed_len(n) * config.channels) as u64;

    // memcpy of the same bytes: half of (labels + mask) copied = that many bytes read + written.
    let half = ((label_bytes + mask_bytes) / 2) as usize;
    let src = vec![7u8; half];
    let mut dst = vec![1u8; half];

    let mut engines: Vec<Engine> = Vec::new();
    for choice in &config.engines {
        match choice {
            EngineChoice::Cpu => engines.push(Engine::cpu()),
            EngineChoice::Gpu => engines.push(Engine::select(EngineChoice::Gpu)?),
            EngineChoice::Auto => {
                engines.push(Engine::cpu());
                match Engine::select(EngineChoice::Gpu) {
                    Ok(gpu) => engines.push(gpu),
                    Err(e) => notes.push(format!("gpu skipped: {e}")),
                }
            }
        }
    }
    let slice = labels.as_slice();
    // Every measurement, as (row, one timed run). They run interleaved, round after round, and
    // each keeps its best: load from other processes then hits them alike.
    type Timed<'a> = Box<dyn FnMut() -> Result<f64> + 'a>;
    // Each engine writes its own buffers, so the closures do not share mutable state.
    let mut buffers: Vec<(Vec<u8>, Vec<u8>)> = engines
        .iter()
        .map(|_| {
            (
                vec![1u8; mask_bytes as usize],
                vec![1u8; packed_bytes as usize],
            )
        })
        .collect();
    let mut timed: Vec<(Row, Timed)> = Vec::new();
    let row = |name: &str, bytes: u64| Row {
        name: name.to_string(),
        seconds: f64::INFINITY,
        voxels,
        bytes,
    };
    timed.push((
        row("memcpy (same bytes, all threads)", 2 * half as u64),
        wall(Box::new(|| {
            parallel_copy(std::hint::black_box(&mut dst), std::hint::black_box(&src));
            Ok(())
        })),
    ));
    for (engine, (out, packed)) in engines.iter().zip(buffers.iter_mut()) {
        let name = engine.name();
        let shape = &shape;
        let plan = &plan;
        timed.push((
            row(name, label_bytes + mask_bytes),
            wall(Box::new(move || {
                engine.run(plan, &[slice], shape, Outputs::bytes(out), false)
            })),
        ));
        timed.push((
            row(&format!("{name} bit-packed"), label_bytes + packed_bytes),
            wall(Box::new(move || {
                engine.run(plan, &[slice], shape, Outputs::bits(packed), false)
            })),
        ));
        // The GPU's own rows: its kernel alone, and its transfers alone.
        #[cfg(feature = "gpu")]
        if let crate::engine::Backend::Gpu(gpu) = engine.backend() {
            use crate::bits::MaskLayout;
            machine.push_str(&format!("; GPU {}", gpu.context().describe()));
            for (layout, label, bytes) in [
                (MaskLayout::Bytes, "gpu kernel", mask_bytes),
                (MaskLayout::Bits, "gpu kernel bit-packed", packed_bytes),
            ] {
                timed.push((
                    row(label, label_bytes + bytes),
                    Box::new(move || Ok(gpu.kernel_seconds(plan, slice, layout, 1)?)),
                ));
            }
            let mut scratch = vec![0u8; mask_bytes as usize];
            timed.push((
                row(
                    "gpu transfers only (upload + readback)",
                    label_bytes + mask_bytes,
                ),
                Box::new(move || {
                    Ok(gpu.transfer_seconds(plan, slice, &mut scratch, MaskLayout::Bytes, 1)?)
                }),
            ));
        }
    }
    for _ in 0..config.repeat.max(1) {
        for (row, run) in timed.iter_mut() {
            row.seconds = row.seconds.min(run()?);
        }
    }
    let mut rows: Vec<Row> = timed.into_iter().map(|(row, _)| row).collect();
    let memcpy = rows.remove(0);

    let mut reference = Vec::new();
    match &config.reference {
        None => notes.push("numpy reference skipped: no Python venv found (run reference/setup.sh, or set ANNOMASK_REFERENCE_PYTHON)".into()),
        Some((python, script)) => match run_reference(python, script, config) {
            Ok(r) => reference = r.into_iter().map(|(name, seconds)| Row {
                name,
                seconds,
                voxels,
                bytes: label_bytes + mask_bytes,
            }).collect(),
            Err(e) => notes.push(format!("numpy reference skipped: {e}")),
        },
    }
    Ok(BenchReport {
        config: format!(
            "{size}^3 {dtype} labels, {channels} channels, policy {policy}, best of {repeat}",
            size = config.size,
            dtype = config.dtype,
            channels = config.channels,
            policy = config.policy,
            repeat = config.repeat
        ),
        machine,
        memcpy,
        rows,
        reference,
        notes,
    })
}

/// Runs `reference_mask.py bench` and returns `(name, best seconds)` for DaCapo's released code
/// and the numpy version of `config.policy`.
pub fn run_reference(
    python: &Path,
    script: &Path,
    config: &BenchConfig,
) -> std::result::Result<Vec<(String, f64)>, String> {
    let output = Command::new(python)
        .arg(script)
        .args([
            "bench",
            "--size",
            &config.size.to_string(),
            "--dtype",
            config.dtype.name(),
        ])
        .args([
            "--channels",
            &config.channels.to_string(),
            "--repeat",
            &config.repeat.to_string(),
        ])
        .output()
        .map_err(|e| format!("{}: {e}", python.display()))?;
    if !output.status.success() {
        return Err(format!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let wanted = ["dacapo (released code)", config.policy.name()];
    let mut found = Vec::new();
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(": ") else {
            continue;
        };
        if !wanted.contains(&name) {
            continue;
        }
        let seconds = reference_seconds(rest, (config.size as f64).powi(3))
            .ok_or_else(|| format!("cannot read the time in {line:?}"))?;
        found.push((format!("numpy {name}"), seconds));
    }
    if found.len() != wanted.len() {
        return Err(format!("unexpected output of {}: {text}", script.display()));
    }
    Ok(found)
}

/// The time of one line of `reference_mask.py bench` (`...: best 12.3 ms, 1.364 Gvox/s`) over
/// `voxels`: from whichever of the two printed numbers has more significant digits (a fast run
/// prints `best 0.0 ms`, a slow one `0.001 Gvox/s`); `None` if neither reads as a positive number.
fn reference_seconds(rest: &str, voxels: f64) -> Option<f64> {
    let after = rest.split("best ").nth(1)?;
    let ms = after.split(" ms").next()?.trim();
    let gvox = after.split(", ").nth(1)?.split(" Gvox/s").next()?.trim();
    let digits = |s: &str| {
        s.chars()
            .filter(char::is_ascii_digit)
            .skip_while(|&c| c == '0')
            .count()
    };
    let from_ms = ms.parse::<f64>().ok().filter(|&v| v > 0.0).map(|v| v / 1e3);
    let from_gvox = gvox
        .parse::<f64>()
        .ok()
        .filter(|&v| v > 0.0)
        .map(|v| voxels / (v * 1e9));
    match (from_ms, from_gvox) {
        (Some(a), Some(b)) => Some(if digits(ms) >= digits(gvox) { a } else { b }),
        (a, b) => a.or(b),
    }
}

impl BenchReport {
    /// The best numpy time (the reference rows), if any.
    fn best_reference(&self) -> Option<f64> {
        self.reference.iter().map(|r| r.seconds).reduce(f64::min)
    }

    /// Machine-readable form.
    pub fn to_json(&self) -> Value {
        let row = |r: &Row| {
            json!({
                "name": r.name, "seconds": r.seconds, "voxels": r.voxels, "bytes": r.bytes,
                "gvoxels_per_s": r.voxels_per_second() / 1e9, "gbytes_per_s": r.bytes_per_second() / 1e9,
                "of_memcpy": r.bytes_per_second() / self.memcpy.bytes_per_second(),
                "speedup_vs_best_numpy": self.best_reference().map(|b| b / r.seconds),
            })
        };
        json!({
            "config": self.config,
            "machine": self.machine,
            "memcpy": row(&self.memcpy),
            "engines": self.rows.iter().map(row).collect::<Vec<_>>(),
            "reference": self.reference.iter().map(row).collect::<Vec<_>>(),
            "notes": self.notes,
        })
    }
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.config)?;
        writeln!(f, "machine: {}", self.machine)?;
        writeln!(
            f,
            "{:<40} {:>10} {:>9} {:>9} {:>9} {:>10}",
            "", "time ms", "Gvox/s", "GB/s", "% memcpy", "x numpy"
        )?;
        let best_numpy = self.best_reference();
        for r in std::iter::once(&self.memcpy)
            .chain(&self.rows)
            .chain(&self.reference)
        {
            let speedup =
                best_numpy.map_or_else(|| "-".to_string(), |b| format!("{:.1}x", b / r.seconds));
            writeln!(
                f,
                "{:<40} {:>10.3} {:>9.3} {:>9.2} {:>8.0}% {:>10}",
                r.name,
                r.seconds * 1e3,
                r.voxels_per_second() / 1e9,
                r.bytes_per_second() / 1e9,
                100.0 * r.bytes_per_second() / self.memcpy.bytes_per_second(),
                speedup
            )?;
        }
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_times_from_the_more_precise_number() {
        let v = 256f64.powi(3);
        let t = reference_seconds("256^3 uint64 x 8 ch: best 850.3 ms, 0.020 Gvox/s", v);
        assert_eq!(t, Some(0.8503));
        // 0.0 ms: the Gvox/s figure tells the time.
        let t = reference_seconds("16^3 uint64 x 8 ch: best 0.0 ms, 0.082 Gvox/s", 4096.0);
        assert!((t.unwrap() - 4096.0 / 0.082e9).abs() < 1e-12);
        assert_eq!(reference_seconds("x: best 0.0 ms, 0.000 Gvox/s", 1.0), None);
        assert_eq!(reference_seconds("x: no time here", 1.0), None);
    }
}
