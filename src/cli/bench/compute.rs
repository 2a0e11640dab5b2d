//! End-to-end benchmark (`annomask bench --pipeline`): whole `compute` jobs on a zarr crop,
//! against the ceiling of plain zarrs I/O and a Python user's pipeline, in one run.
//!
//! A `size`³ `uint64` crop (zarr v3, blosc-lz4, 64³ chunks, the demo's annotation metadata) is
//! written to a directory; then, round after round (interleaved, so load from other processes
//! hits every row alike; the best round of each is reported):
//!
//! - **annomask compute**: the library pipeline as `annomask compute` runs it with default
//!   settings: open the crop and its metadata, create the output, read, compute and write every
//!   chunk (atomically, each `fsync`ed). The engine is chosen once, before the rounds. The same
//!   again with `--writers 0` (each reader writes the blocks it computed).
//! - **zarrs read + write** (the ceiling): every input chunk read and decoded, and the mask chunk
//!   of the same place encoded and written with the same codec (the bytes of annomask's own
//!   output, kept in memory), parallel over chunks, through zarrs' `FilesystemStore`; nothing is
//!   computed. The same again through annomask's atomic store (temporary file, `fsync`,
//!   rename) shows what durable chunk writes cost.
//! - **Python pipeline** (where a Python with numpy and zarr 3 is found): `scripts/python_pipeline.py`
//!   as a whole process: zarr-python reads the labels, DaCapo's released numpy mask
//!   (`dacapo_mask` of `reference_mask.py`), zarr-python writes the mask in the same chunks and
//!   codec. Also its own timing of the job alone, without interpreter start and imports.
//!
//! After the first round the Python output is compared with annomask's; a difference is
//! reported in the notes.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use crate::engine::Engine;
use crate::error::{Error, Result, StorageError};
use crate::groupings::Groupings;
use crate::mask::MissingAnnotationsMask;
use crate::options::{EngineChoice, MaskOptions};
use crate::output::{MaskOutput, OutputOptions};
use crate::pipeline::{self, RunOptions};
use crate::store::filesystem_output;
use crate::synth;
use crate::volume::ZarrFormat;
use crate::zarr_array::ArraySpec;
use rayon::prelude::*;
use serde_json::{Value, json};
use zarrs::array::{Array, ArrayMetadataOptions, ArraySubset, CodecOptions};
use zarrs::filesystem::FilesystemStore;
use zarrs::storage::{ReadableStorageTraits, WritableStorageTraits};

use super::cpu_model;

/// The Python pipeline, written next to the crop and run by the reference's Python.
pub const PYTHON_PIPELINE: &str = include_str!("../../../scripts/python_pipeline.py");

/// What to measure.
#[derive(Clone, Debug)]
pub struct ComputeBenchConfig {
    /// Edge of the cubic crop, in voxels (default 256).
    pub size: usize,
    /// Number of channels (default 8).
    pub channels: usize,
    /// Engine of the annomask runs (default auto).
    pub engine: EngineChoice,
    /// Rounds; the best of each row is reported (default 3).
    pub repeat: usize,
    /// Where to write the crop and the outputs; `None`: a temporary directory. Removed after.
    pub dir: Option<PathBuf>,
    /// Python interpreter and `reference_mask.py` for the Python pipeline; `None` skips it.
    pub reference: Option<(PathBuf, PathBuf)>,
}

/// The groupings of the benchmark: `channels` channels over the demo crop's ids (the demo's five,
/// then single classes; repeated with a suffix beyond eight).
pub fn bench_groupings(channels: usize) -> Groupings {
    let base: [(&str, &[u64]); 8] = [
        ("mito", &[3, 4, 5]),
        ("er", &[16, 17]),
        ("nucleus", &[20, 21]),
        ("ecs", &[1]),
        ("all", &[]),
        ("mito_mem", &[3]),
        ("mito_lum", &[4]),
        ("er_mem", &[16]),
    ];
    Groupings::new((0..channels).map(|c| {
        let (name, ids) = base[c % base.len()];
        let name = match c / base.len() {
            0 => name.to_string(),
            k => format!("{name}_{k}"),
        };
        (name, ids.to_vec())
    }))
    .expect("generated names are unique")
}

/// One timed thing, with the time of every round.
#[derive(Clone, Debug, PartialEq)]
pub struct TimedRow {
    /// What was timed.
    pub name: String,
    /// Seconds, one per round.
    pub seconds: Vec<f64>,
}

impl TimedRow {
    /// A row with no rounds yet.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            seconds: Vec::new(),
        }
    }

    /// Adds a round.
    pub fn push(&mut self, seconds: f64) {
        self.seconds.push(seconds);
    }

    /// The best round, in seconds.
    pub fn best(&self) -> f64 {
        self.seconds.iter().copied().fold(f64::INFINITY, f64::min)
    }

    /// The median round, in seconds.
    pub fn median(&self) -> f64 {
        let mut s = self.seconds.clone();
        s.sort_by(f64::total_cmp);
        match s.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => s[n / 2],
            n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
        }
    }
}

/// The result of a run.
#[derive(Clone, Debug)]
pub struct ComputeBenchReport {
    /// What was measured.
    pub config: String,
    /// CPU model and threads, and the engine.
    pub machine: String,
    /// Voxels of the crop.
    pub voxels: u64,
    /// `annomask compute` through the library pipeline.
    pub annomask: TimedRow,
    /// The same with `--writers 0`.
    pub annomask_inline: TimedRow,
    /// Plain zarrs read + write (the ceiling).
    pub zarrs: TimedRow,
    /// The same through the atomic store.
    pub zarrs_atomic: TimedRow,
    /// The Python pipeline as a whole process, and its own timing of the job; where run.
    pub python: Option<(TimedRow, TimedRow)>,
    /// Skips and checks.
    pub notes: Vec<String>,
}

pub(super) fn storage(path: &Path, what: &str, e: impl ToString) -> Error {
    StorageError::Write {
        path: path.display().to_string(),
        what: what.to_string(),
        message: e.to_string().into(),
    }
    .into()
}

fn remove(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(storage(path, "(removing a benchmark output)", e))
        }
        _ => Ok(()),
    }
}

/// A mask output as stored: its shape, chunk shape, and every chunk (indices, bytes).
struct Payload {
    shape: Vec<u64>,
    chunk_shape: Vec<u64>,
    chunks: Vec<(Vec<u64>, Vec<u8>)>,
}

/// Reads every chunk of the mask array `output` (the payload of the zarrs rows).
fn read_chunks(output: &MaskOutput) -> Result<Payload> {
    let path = output.array_path();
    let fail = |e: &dyn fmt::Display| storage(path, "(reading the mask back)", e);
    let store = FilesystemStore::new(path).map_err(|e| fail(&e))?;
    let array = Array::open(Arc::new(store), "/").map_err(|e| fail(&e))?;
    let mut chunk_shape = vec![output.channel_chunk()];
    chunk_shape.extend_from_slice(output.grid().chunks());
    let grid = ArraySubset::new_with_shape(array.chunk_grid_shape().to_vec());
    let chunks = grid
        .indices()
        .into_iter()
        .map(|chunk| {
            let bytes: Vec<u8> = array.retrieve_chunk(&chunk).map_err(|e| fail(&e))?;
            Ok((chunk.to_vec(), bytes))
        })
        .collect::<Result<_>>()?;
    Ok(Payload {
        shape: output.shape().to_vec(),
        chunk_shape,
        chunks,
    })
}

/// Reads every label chunk of `labels` and writes the payload into a new array at `out` over
/// `store`, parallel over chunks: plain zarrs I/O, nothing computed.
fn copy_chunks<S>(labels: &Path, out: &Path, store: Arc<S>, payload: &Payload) -> Result<()>
where
    S: ReadableStorageTraits + WritableStorageTraits + ?Sized + 'static,
{
    let input_store = FilesystemStore::new(labels).map_err(|e| storage(labels, "(open)", e))?;
    let input =
        Array::open(Arc::new(input_store), "/").map_err(|e| storage(labels, "(open)", e))?;
    let spec = ArraySpec::new(
        payload.shape.clone(),
        payload.chunk_shape.clone(),
        "uint8",
        ZarrFormat::V3,
    );
    let metadata = spec.metadata().map_err(|e| storage(out, "(metadata)", e))?;
    let array = Array::new_with_metadata(store, "/", metadata)
        .map_err(|e| storage(out, "(metadata)", e))?;
    array
        .store_metadata_opt(&ArrayMetadataOptions::default().with_include_zarrs_metadata(false))
        .map_err(|e| storage(out, "array metadata", e))?;
    let options = CodecOptions::default().with_store_empty_chunks(true);
    payload.chunks.par_iter().try_for_each(|(chunk, bytes)| {
        let labels: Vec<u64> = input
            .retrieve_chunk(&chunk[1..])
            .map_err(|e| storage(labels, &format!("chunk {:?}", &chunk[1..]), e))?;
        std::hint::black_box(&labels);
        array
            .store_chunk_opt(chunk, bytes.as_slice(), &options)
            .map_err(|e| storage(out, &format!("chunk {chunk:?}"), e))
    })
}

/// The whole array at `path`, as bytes.
fn read_all(path: &Path) -> std::result::Result<(Vec<u64>, Vec<u8>), String> {
    let store = FilesystemStore::new(path).map_err(|e| e.to_string())?;
    let array = Array::open(Arc::new(store), "/").map_err(|e| e.to_string())?;
    let shape = array.shape().to_vec();
    let data: Vec<u8> = array
        .retrieve_array_subset(&ArraySubset::new_with_shape(shape.clone()))
        .map_err(|e| e.to_string())?;
    Ok((shape, data))
}

/// Whether the Python pipeline's mask at `python` equals annomask's at `annomask`, in words.
fn compare(python: &Path, annomask: &Path) -> String {
    match (read_all(python), read_all(annomask)) {
        (Ok(a), Ok(b)) if a == b => "checked: the Python pipeline's mask equals annomask's".into(),
        (Ok(_), Ok(_)) => "WARNING: the Python pipeline's mask differs from annomask's".into(),
        (Err(e), _) | (_, Err(e)) => {
            format!("WARNING: could not compare the Python pipeline's mask with annomask's: {e}")
        }
    }
}

/// Runs the Python pipeline once: whole-process seconds and the script's own job seconds.
fn run_python(
    python: &Path,
    script: &Path,
    reference: &Path,
    labels: &Path,
    groupings: &Path,
    out: &Path,
) -> std::result::Result<(f64, f64), String> {
    let mut command = Command::new(python);
    command
        .arg(script)
        .arg("--reference")
        .arg(reference)
        .arg("--labels")
        .arg(labels)
        .arg("--groupings")
        .arg(groupings)
        .arg("--out")
        .arg(out);
    let (line, whole) = run_script(&mut command, "the Python pipeline")?;
    let job = line["seconds"]
        .as_f64()
        .ok_or_else(|| format!("no seconds in the Python pipeline's output {line}"))?;
    Ok((whole, job))
}

/// Runs a benchmark script and returns the last JSON line it printed and the wall time of the
/// whole process; a failure says `what` failed, with the last line of its standard error.
pub(super) fn run_script(
    command: &mut Command,
    what: &str,
) -> std::result::Result<(Value, f64), String> {
    let start = Instant::now();
    let output = command
        .output()
        .map_err(|e| format!("{}: {e}", command.get_program().to_string_lossy()))?;
    let whole = start.elapsed().as_secs_f64();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
        return Err(format!(
            "{what} failed: {}",
            last.unwrap_or("(no message)").trim()
        ));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l).ok())
        .ok_or_else(|| format!("unexpected output of {what}: {text}"))?;
    Ok((line, whole))
}

/// Runs the benchmark; `log` hears what is being done (writing the crop, each round).
pub fn run(config: &ComputeBenchConfig, log: &dyn Fn(&str)) -> Result<ComputeBenchReport> {
    let size = config.size.max(1);
    let temp = match &config.dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| storage(d, "(benchmark directory)", e))?;
            tempfile::tempdir_in(d)
        }
        None => tempfile::tempdir(),
    }
    .map_err(|e| storage(&std::env::temp_dir(), "a temporary directory", e))?;
    let dir = temp.path();
    log(&format!(
        "writing a {size}^3 uint64 crop (zarr v3, blosc-lz4) into {}",
        dir.display()
    ));
    let labels = synth::write_demo_crop(dir, size, ZarrFormat::V3)?;
    let groupings = bench_groupings(config.channels.max(1));
    let groupings_file = dir.join("groupings.json");
    let list: Vec<Value> = groupings
        .channels()
        .iter()
        .map(|c| json!([c.name, c.ids]))
        .collect();
    std::fs::write(&groupings_file, Value::Array(list).to_string())
        .map_err(|e| storage(&groupings_file, "groupings", e))?;
    let engine = Engine::select(config.engine)?;
    let mut notes = vec![format!("engine: {}", engine.describe())];

    // What `annomask compute` does, bar parsing its arguments and choosing the engine.
    let compute = |out: &Path, run: &RunOptions| -> Result<MaskOutput> {
        let mask = MissingAnnotationsMask::open_with_engine(
            &labels,
            groupings.clone(),
            MaskOptions::default(),
            &Default::default(),
            engine.clone(),
        )?;
        let output = MaskOutput::new(out, &mask, None, &OutputOptions::default())?;
        pipeline::run(&mask, &output, run, &|_| {})?;
        Ok(output)
    };
    // A first run, untimed: its chunks are the payload of the zarrs rows.
    let reference_out = dir.join("annomask_reference.zarr");
    let payload = read_chunks(&compute(&reference_out, &RunOptions::default())?)?;
    let inline = RunOptions {
        writers: 0,
        ..RunOptions::default()
    };

    let python = match &config.reference {
        None => {
            notes.push("Python pipeline skipped: no Python venv found (run reference/setup.sh, or set ANNOMASK_REFERENCE_PYTHON)".into());
            None
        }
        Some((python, reference)) => {
            let script = dir.join("python_pipeline.py");
            std::fs::write(&script, PYTHON_PIPELINE)
                .map_err(|e| storage(&script, "the Python pipeline", e))?;
            Some((python.clone(), script, reference.clone()))
        }
    };

    let mut annomask = TimedRow::new("annomask compute (library pipeline)");
    let mut annomask_inline = TimedRow::new("  same, --writers 0 (readers write)");
    let mut zarrs = TimedRow::new("zarrs read + write, no compute (ceiling)");
    let mut zarrs_atomic = TimedRow::new("  same, atomic store (temp + fsync + rename)");
    let mut python_rows = python.as_ref().map(|_| {
        (
            TimedRow::new("python: zarr-python + DaCapo numpy (process)"),
            TimedRow::new("  same, job only (no start-up, imports)"),
        )
    });
    let out = dir.join("out.zarr");
    let time = |f: &mut dyn FnMut() -> Result<()>| -> Result<f64> {
        remove(&out)?;
        let t = Instant::now();
        f()?;
        Ok(t.elapsed().as_secs_f64())
    };
    let rounds = config.repeat.max(1);
    for round in 0..rounds {
        log(&format!("round {}/{rounds}", round + 1));
        annomask.seconds.push(time(&mut || {
            compute(&out, &RunOptions::default()).map(drop)
        })?);
        annomask_inline
            .seconds
            .push(time(&mut || compute(&out, &inline).map(drop))?);
        zarrs.seconds.push(time(&mut || {
            let store = FilesystemStore::new(&out).map_err(|e| storage(&out, "(open)", e))?;
            copy_chunks(&labels, &out, Arc::new(store), &payload)
        })?);
        zarrs_atomic.seconds.push(time(&mut || {
            let store = filesystem_output(&out).map_err(|e| storage(&out, "(open)", e))?;
            copy_chunks(&labels, &out, Arc::new(store), &payload)
        })?);
        let mut python_failed = None;
        if let (Some((py, script, reference)), Some((whole, job))) = (&python, &mut python_rows) {
            remove(&out)?;
            match run_python(py, script, reference, &labels, &groupings_file, &out) {
                Ok((w, j)) => {
                    whole.seconds.push(w);
                    job.seconds.push(j);
                    if round == 0 {
                        notes.push(compare(&out, &reference_out));
                    }
                }
                Err(e) => python_failed = Some(e),
            }
        }
        if let Some(e) = python_failed {
            notes.push(format!("Python pipeline skipped: {e}"));
            python_rows = None;
        }
    }
    remove(&out)?;
    let chunk = size.min(64);
    Ok(ComputeBenchReport {
        config: format!(
            "{size}^3 uint64 crop (zarr v3, blosc-lz4, {chunk}^3 chunks, {} chunks), {} channels, \
             best of {rounds} interleaved rounds",
            payload.chunks.len(),
            groupings.len()
        ),
        machine: format!("{}, {} threads", cpu_model(), rayon::current_num_threads()),
        voxels: (size as u64).pow(3),
        annomask,
        annomask_inline,
        zarrs,
        zarrs_atomic,
        python: python_rows,
        notes,
    })
}

impl ComputeBenchReport {
    fn rows(&self) -> Vec<&TimedRow> {
        let mut rows = vec![
            &self.annomask,
            &self.annomask_inline,
            &self.zarrs,
            &self.zarrs_atomic,
        ];
        if let Some((a, b)) = &self.python {
            rows.extend([a, b]);
        }
        rows
    }

    /// annomask compute's best time over the plain zarrs ceiling's (the target is <= 1.25).
    pub fn annomask_over_zarrs(&self) -> f64 {
        self.annomask.best() / self.zarrs.best()
    }

    /// The Python pipeline's best (whole process) over annomask compute's, where run.
    pub fn python_over_annomask(&self) -> Option<f64> {
        self.python
            .as_ref()
            .map(|(p, _)| p.best() / self.annomask.best())
    }

    /// Machine-readable form.
    pub fn to_json(&self) -> Value {
        let row = |r: &TimedRow| {
            json!({
                "name": r.name,
                "seconds": r.seconds,
                "best_seconds": r.best(),
                "median_seconds": r.median(),
                "mvoxels_per_s": self.voxels as f64 / r.best() / 1e6,
                "vs_annomask": r.best() / self.annomask.best(),
            })
        };
        json!({
            "config": self.config,
            "machine": self.machine,
            "voxels": self.voxels,
            "rows": self.rows().into_iter().map(row).collect::<Vec<_>>(),
            "annomask_over_zarrs": self.annomask_over_zarrs(),
            "annomask_over_zarrs_atomic": self.annomask.best() / self.zarrs_atomic.best(),
            "annomask_inline_over_zarrs": self.annomask_inline.best() / self.zarrs.best(),
            "python_over_annomask": self.python_over_annomask(),
            "python_job_over_annomask": self.python.as_ref().map(|(_, j)| j.best() / self.annomask.best()),
            "notes": self.notes,
        })
    }
}

impl fmt::Display for ComputeBenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.config)?;
        writeln!(f, "machine: {}", self.machine)?;
        writeln!(
            f,
            "{:<46} {:>9} {:>9} {:>9} {:>12}",
            "", "best s", "median s", "Mvox/s", "x annomask"
        )?;
        for r in self.rows() {
            writeln!(
                f,
                "{:<46} {:>9.3} {:>9.3} {:>9.1} {:>11.2}x",
                r.name,
                r.best(),
                r.median(),
                self.voxels as f64 / r.best() / 1e6,
                r.best() / self.annomask.best()
            )?;
        }
        writeln!(
            f,
            "annomask compute / plain zarrs read + write: {:.2}x (target <= 1.25x); / atomic store: {:.2}x; with --writers 0: {:.2}x",
            self.annomask_over_zarrs(),
            self.annomask.best() / self.zarrs_atomic.best(),
            self.annomask_inline.best() / self.zarrs.best()
        )?;
        if let Some(r) = self.python_over_annomask() {
            writeln!(
                f,
                "Python pipeline / annomask compute: {r:.1}x (whole process), {:.1}x (job only)",
                self.python.as_ref().map_or(f64::NAN, |(_, j)| j.best()) / self.annomask.best()
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
    fn groupings_repeat_the_demo_channels() {
        let g = bench_groupings(10);
        let names: Vec<&str> = g.names().collect();
        assert_eq!(names[..5], ["mito", "er", "nucleus", "ecs", "all"]);
        assert_eq!(names[8..], ["mito_1", "er_1"]);
        assert_eq!(g.channels()[9].ids, [16, 17]);
    }

    #[test]
    fn median_of_even_and_odd_rounds() {
        let mut r = TimedRow::new("x");
        r.seconds = vec![3.0, 1.0, 2.0];
        assert_eq!((r.best(), r.median()), (1.0, 2.0));
        r.seconds.push(10.0);
        assert_eq!(r.median(), 2.5);
    }
}
