//! Feeder benchmark (`annomask bench --feeder`): batches per second of the training feeder —
//! random ROIs of a zarr crop, targets and mask fused — against a DaCapo-style numpy feeder
//! (zarr-python read, `BinarizeArray`-style targets, released `MissingAnnotationsMask`) over
//! the same ROIs, in one run.
//!
//! A `size`³ `uint64` crop (zarr v3, blosc-lz4, 64³ chunks, the demo metadata) is written to a
//! temporary directory. The ROI sequence is the feeder's own for seed 0 (`RoiSampler`), handed
//! to the Python feeder as a list, so both read the same chunks. Rounds are interleaved; the
//! best of each row is reported. After the first round the Python feeder's per-channel sums of
//! the first ROI are compared with annomask's.
//!
//! Then, on the same ROIs, the CellMap rows ([`super::feeder_cellmap`]): annomask's feeder on a
//! crop group in the challenge layout, with and without its chunk cache, against cellmap-data's
//! loader (raw + targets, and targets only) where a Python with `cellmap_data` is found.

use std::fmt;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use crate::engine::Engine;
use crate::error::Result;
use crate::feeder::{Feeder, FeederConfig, RoiSampler};
use crate::mask::MissingAnnotationsMask;
use crate::options::{EngineChoice, MaskOptions};
use crate::synth;
use crate::volume::ZarrFormat;
use serde_json::{Value, json};

use super::compute::{TimedRow, bench_groupings, run_script, storage};
use super::cpu_model;
use super::feeder_cellmap::{CellmapBench, CellmapSection};

/// The Python feeder, written next to the crop and run by the reference's Python.
pub const PYTHON_FEEDER: &str = include_str!("../../../scripts/python_feeder.py");

/// What to measure.
#[derive(Clone, Debug)]
pub struct FeederBenchConfig {
    /// Edge of the cubic crop, in voxels (default 256).
    pub size: usize,
    /// Edge of the cubic ROI, in voxels (default 128).
    pub roi: usize,
    /// Number of channels (default 8).
    pub channels: usize,
    /// Batches (of one ROI) per round (default 16).
    pub batches: usize,
    /// Engine of the feeder (default auto).
    pub engine: EngineChoice,
    /// Rounds (default 3).
    pub repeat: usize,
    /// Python interpreter and `reference_mask.py`; `None` skips the numpy feeder.
    pub reference: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// Python with `cellmap_data` for the cellmap-data rows, or why there is none (a note).
    pub cellmap: std::result::Result<std::path::PathBuf, String>,
}

/// The result of a run.
#[derive(Clone, Debug)]
pub struct FeederReport {
    /// What was measured.
    pub config: String,
    /// CPU model and threads, and the engine.
    pub machine: String,
    /// Batches per round.
    pub batches: usize,
    /// Voxels per ROI.
    pub roi_voxels: u64,
    /// The annomask feeder, seconds per round.
    pub annomask: TimedRow,
    /// The numpy feeder (its own timing, after imports), where run.
    pub numpy: Option<TimedRow>,
    /// The CellMap crop-group rows (annomask with and without its cache, cellmap-data).
    pub cellmap: CellmapSection,
    /// Skips and checks.
    pub notes: Vec<String>,
}

/// Per-channel sums of one sample of a `(batch, c, ...)` array.
pub(super) fn channel_sums(a: &ndarray::ArrayD<u8>, sample: usize) -> Vec<u64> {
    let s = a.index_axis(ndarray::Axis(0), sample);
    s.outer_iter()
        .map(|c| c.iter().map(|&v| v as u64).sum())
        .collect()
}

/// Runs the benchmark; `log` gets progress lines.
pub fn run(config: &FeederBenchConfig, log: &dyn Fn(&str)) -> Result<FeederReport> {
    let (size, roi) = (config.size.max(1), config.roi.clamp(1, config.size.max(1)));
    let temp = tempfile::tempdir()
        .map_err(|e| storage(&std::env::temp_dir(), "a temporary directory", e))?;
    let dir = temp.path();
    log(&format!(
        "writing a {size}^3 uint64 crop into {}",
        dir.display()
    ));
    let labels = synth::write_demo_crop(dir, size, ZarrFormat::V3)?;
    let groupings = bench_groupings(config.channels.max(1));
    let engine = Engine::select(config.engine)?;
    let mut notes = vec![format!("engine: {}", engine.describe())];
    let mask = Arc::new(MissingAnnotationsMask::open_with_engine(
        &labels,
        groupings.clone(),
        MaskOptions::default(),
        &Default::default(),
        engine.clone(),
    )?);
    let batches = config.batches.max(1);
    let feeder_config = FeederConfig::new(vec![roi as u64; 3])
        .seed(0)
        .batches(batches);
    let mut sampler = RoiSampler::new(vec![mask.shape().to_vec()], &feeder_config);
    let starts: Vec<Vec<u64>> = (0..batches)
        .map(|_| sampler.next_region().1.start)
        .collect();

    let rois = dir.join("rois.json");
    std::fs::write(&rois, json!(starts).to_string()).map_err(|e| storage(&rois, "ROIs", e))?;
    if let Err(why) = &config.cellmap {
        notes.push(format!("cellmap-data rows skipped: {why}"));
    }
    let mut cellmap = CellmapBench::new(
        &dir.join("cellmap"),
        size,
        roi,
        batches,
        engine.clone(),
        config.cellmap.as_ref().ok(),
        &rois,
        log,
    )?;
    log(&format!("CellMap dataset at {}", cellmap.root().display()));

    let python = match &config.reference {
        None => {
            notes.push("numpy feeder skipped: no Python venv found (run reference/setup.sh, or set ANNOMASK_REFERENCE_PYTHON)".into());
            None
        }
        Some((python, reference)) => {
            let script = dir.join("python_feeder.py");
            std::fs::write(&script, PYTHON_FEEDER)
                .map_err(|e| storage(&script, "the Python feeder", e))?;
            let groupings_file = dir.join("groupings.json");
            let list: Vec<Value> = groupings
                .channels()
                .iter()
                .map(|c| json!([c.name, c.ids]))
                .collect();
            std::fs::write(&groupings_file, Value::Array(list).to_string())
                .map_err(|e| storage(&groupings_file, "groupings", e))?;
            let mut command = Command::new(python);
            command
                .arg(&script)
                .arg("--reference")
                .arg(reference)
                .arg("--labels")
                .arg(&labels)
                .arg("--groupings")
                .arg(&groupings_file)
                .arg("--rois")
                .arg(&rois)
                .args(["--roi", &roi.to_string()]);
            Some(command)
        }
    };

    let mut annomask = TimedRow::new("annomask feeder (fused, prefetched)");
    let mut numpy = python
        .as_ref()
        .map(|_| TimedRow::new("numpy DaCapo-style feeder (job only)"));
    let mut python = python;
    let rounds = config.repeat.max(1);
    let mut first_sums = None;
    for round in 0..rounds {
        log(&format!("round {}/{rounds}", round + 1));
        let t = Instant::now();
        let mut first = None;
        for batch in Feeder::new(vec![mask.clone()], feeder_config.clone())? {
            let batch = batch?;
            if first.is_none() {
                first = Some((
                    channel_sums(&batch.targets, 0),
                    channel_sums(&batch.mask, 0),
                ));
            }
        }
        annomask.push(t.elapsed().as_secs_f64());
        first_sums = first_sums.or(first);
        if let (Some(command), Some(row)) = (python.as_mut(), numpy.as_mut()) {
            match run_numpy(command) {
                Ok((seconds, first)) => {
                    row.push(seconds);
                    if round == 0 {
                        let ours = first_sums
                            .clone()
                            .map(|(t, m)| json!({"targets": t, "mask": m}));
                        notes.push(if ours.as_ref() == Some(&first) {
                            "checked: the numpy feeder's first ROI has annomask's per-channel sums".into()
                        } else {
                            format!("the numpy feeder differs on the first ROI: {first} vs annomask {ours:?}")
                        });
                    }
                }
                Err(e) => {
                    notes.push(format!("numpy feeder skipped: {e}"));
                    numpy = None;
                    python = None;
                }
            }
        }
        cellmap.round(round == 0, &mut notes)?;
    }
    Ok(FeederReport {
        config: format!(
            "{roi}^3 ROIs of a {size}^3 uint64 zarr crop (v3, blosc-lz4, 64^3 chunks), {} channels, \
             {batches} batches of 1 ROI per round, best of {rounds} interleaved rounds",
            groupings.len()
        ),
        machine: format!("{}, {} threads", cpu_model(), rayon::current_num_threads()),
        batches,
        roi_voxels: (roi as u64).pow(3),
        annomask,
        numpy,
        cellmap: cellmap.section,
        notes,
    })
}

/// Runs the numpy feeder once: its job seconds and its first-ROI sums.
fn run_numpy(command: &mut Command) -> std::result::Result<(f64, Value), String> {
    let (line, _) = run_script(command, "the numpy feeder")?;
    let seconds = line["seconds"]
        .as_f64()
        .ok_or_else(|| format!("no seconds in {line}"))?;
    Ok((seconds, line["first"].clone()))
}

impl FeederReport {
    /// Batches per second of a row's best round.
    pub fn batches_per_second(&self, row: &TimedRow) -> f64 {
        self.batches as f64 / row.best()
    }

    /// How many times faster annomask's feeder is than the numpy one, where run.
    pub fn speedup(&self) -> Option<f64> {
        self.numpy.as_ref().map(|n| n.best() / self.annomask.best())
    }

    /// Machine-readable form.
    pub fn to_json(&self) -> Value {
        let row = |r: &TimedRow| {
            json!({
                "name": r.name, "seconds": r.seconds, "best_seconds": r.best(),
                "batches_per_s": self.batches_per_second(r),
                "mvoxels_per_s": self.roi_voxels as f64 * self.batches as f64 / r.best() / 1e6,
            })
        };
        json!({
            "config": self.config,
            "machine": self.machine,
            "annomask": row(&self.annomask),
            "numpy": self.numpy.as_ref().map(row),
            "speedup_vs_numpy": self.speedup(),
            "cellmap": self.cellmap.to_json(&row),
            "notes": self.notes,
        })
    }
}

impl fmt::Display for FeederReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.config)?;
        writeln!(f, "machine: {}", self.machine)?;
        writeln!(
            f,
            "{:<40} {:>10} {:>11} {:>9}",
            "", "best s", "batches/s", "Mvox/s"
        )?;
        for r in std::iter::once(&self.annomask).chain(self.numpy.as_ref()) {
            writeln!(
                f,
                "{:<40} {:>10.3} {:>11.1} {:>9.1}",
                r.name,
                r.best(),
                self.batches_per_second(r),
                self.roi_voxels as f64 * self.batches as f64 / r.best() / 1e6
            )?;
        }
        if let Some(s) = self.speedup() {
            writeln!(
                f,
                "annomask feeder / numpy feeder: {s:.1}x batches per second"
            )?;
        }
        writeln!(f)?;
        writeln!(f, "{}", self.cellmap.config)?;
        for r in self.cellmap.rows() {
            writeln!(
                f,
                "{:<40} {:>10.3} {:>11.1} {:>9.1}",
                r.name,
                r.best(),
                self.batches_per_second(r),
                self.roi_voxels as f64 * self.batches as f64 / r.best() / 1e6
            )?;
        }
        for (what, ratio) in self.cellmap.ratios() {
            writeln!(f, "{what}: {ratio:.1}x batches per second")?;
        }
        if let Some(v) = &self.cellmap.versions {
            writeln!(f, "cellmap-data stack: {v}")?;
        }
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        Ok(())
    }
}
