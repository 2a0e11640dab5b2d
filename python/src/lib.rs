//! `annomask._annomask`: the compiled half of the Python package `annomask` (PyO3).
//!
//! The user-facing API (docstrings, `Roi`, argument normalisation) is the pure-Python package in
//! `python/annomask/`; this module is the thin layer under it:
//!
//! - `Groupings`: channel groupings parsed and validated by `annomask::ChannelGroupings`.
//! - `open(...)` -> `Mask`: an opened `MissingAnnotationsMask` with its array API; `get` and
//!   `get_with_targets` return numpy arrays.
//! - `Feeder`: the training feeder, yielding raw batch tuples.
//! - `write_demo_crop`, `write_demo_crop_group`, `demo_groupings`, `demo_class_groupings`.
//!
//! numpy: arrays computed in Rust are handed to numpy without a copy (`IntoPyArray` moves the
//! `Vec` behind the `ndarray` into a numpy-owned container), writable, C order.
//! The GIL: opening, computing and waiting for a feeder batch run inside `Python::detach`, so
//! other Python threads (a data loader's, a training loop's) keep running meanwhile.
//! Errors: every `annomask::Error` becomes a Python exception carrying the Rust message
//! (`ValueError` for bad metadata, groupings, geometry, crops and options; `FileNotFoundError`
//! and `OSError` for storage; `RuntimeError` for the GPU); see [`py_err`].

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use annomask::feeder::{Batch, CropWeighting, Feeder as RustFeeder, FeederConfig};
use annomask::raw::RawVolume;
use annomask::remote::StoreOptions;
use annomask::{
    ChannelGroupings, Coordinate, CropOptions, Engine, EngineChoice, Error, GroupingsError,
    LabelArray, MaskOptions, MaskPolicy, MissingAnnotationsMask, Roi, SourceBlock, SparsePolicy,
    StorageError, ZarrFormat, with_labels,
};
use numpy::{IntoPyArray, PyArrayDyn};
use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

/// Blockwise jobs for Dask and daisy (`Job`), and masks of label blocks in memory.
mod jobs;

/// The Python exception for an annomask error, with its message.
fn py_err(error: Error) -> PyErr {
    let message = error.to_string();
    match error {
        Error::Storage(StorageError::NotFound { .. }) => PyFileNotFoundError::new_err(message),
        Error::Storage(
            StorageError::UnsupportedDtype { .. } | StorageError::Dimensionality { .. },
        ) => PyValueError::new_err(message),
        Error::Storage(_) | Error::Groupings(GroupingsError::Read { .. }) => {
            PyOSError::new_err(message)
        }
        Error::Metadata(_)
        | Error::Groupings(_)
        | Error::Geometry(_)
        | Error::Crop(_)
        | Error::Feeder { .. }
        | Error::Raw(_)
        | Error::NoStoredData { .. } => PyValueError::new_err(message),
        // The GPU, a failed verify, and whatever later versions add.
        _ => PyRuntimeError::new_err(message),
    }
}

/// A ROI from `(offset, shape)`, refusing a different number of axes in the two.
fn roi(offset: Vec<f64>, shape: Vec<f64>) -> PyResult<Roi> {
    if offset.len() != shape.len() {
        return Err(PyValueError::new_err(format!(
            "ROI offset {offset:?} has {} axes, its shape {shape:?} has {}",
            offset.len(),
            shape.len()
        )));
    }
    Ok(Roi::new(offset, shape))
}

/// A `ValueError` for a bad option, naming the parameter.
fn option_err(parameter: &str, message: String) -> PyErr {
    PyValueError::new_err(format!("{parameter}: {message}"))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One engine per choice for the whole process, selected on first use: every mask opened from
/// Python with `engine="gpu"` shares one GPU device (as the Rust API recommends), and `auto`
/// probes the adapters once. A failed selection is not remembered.
fn shared_engine(choice: EngineChoice) -> Result<Engine, Error> {
    // Per process: a forked child selects its own (a GPU device does not survive a fork); the
    // parent's engines are forgotten there, never dropped.
    static ENGINES: Mutex<(u32, Vec<(EngineChoice, Engine)>)> = Mutex::new((0, Vec::new()));
    let mut slot = lock(&ENGINES);
    let pid = std::process::id();
    if slot.0 != pid {
        std::mem::forget(std::mem::take(&mut slot.1));
        slot.0 = pid;
    }
    let engines = &mut slot.1;
    if let Some((_, engine)) = engines.iter().find(|(c, _)| *c == choice) {
        return Ok(engine.clone());
    }
    let engine = Engine::select(choice)?;
    engines.push((choice, engine.clone()));
    Ok(engine)
}

/// Channel groupings, parsed and validated: by label id (label arrays) or by class name
/// (CellMap crop groups).
#[pyclass(frozen, module = "annomask._annomask")]
struct Groupings {
    inner: ChannelGroupings,
}

#[pymethods]
impl Groupings {
    /// Groupings from JSON text (`[["mito", [3, 4, 5]], ...]`); `source` names it in errors.
    #[staticmethod]
    fn from_json(text: &str, source: &str) -> PyResult<Self> {
        ChannelGroupings::from_json_str(text, source)
            .map(|inner| Self { inner })
            .map_err(|e| py_err(e.into()))
    }

    /// Groupings from a JSON or TOML (`.toml`) file.
    #[staticmethod]
    fn from_file(path: PathBuf) -> PyResult<Self> {
        ChannelGroupings::from_file(path)
            .map(|inner| Self { inner })
            .map_err(|e| py_err(e.into()))
    }

    /// Channel names, in order.
    #[getter]
    fn names(&self) -> Vec<String> {
        self.inner.names().into_iter().map(String::from).collect()
    }

    /// `label ids` or `class names`.
    #[getter]
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
}

/// The options shared by `open` and the feeder, parsed.
fn mask_options(
    policy: &str,
    sparse: &str,
    background: u64,
    engine: &str,
    allow_missing_metadata: bool,
    verify: bool,
) -> PyResult<MaskOptions> {
    Ok(MaskOptions::default()
        .policy(
            policy
                .parse::<MaskPolicy>()
                .map_err(|e| option_err("policy", e))?,
        )
        .sparse(
            sparse
                .parse::<SparsePolicy>()
                .map_err(|e| option_err("sparse", e))?,
        )
        .background(background)
        .engine(
            engine
                .parse::<EngineChoice>()
                .map_err(|e| option_err("engine", e))?,
        )
        .allow_missing_metadata(allow_missing_metadata)
        .verify(verify))
}

/// An opened missing-annotations mask (label array or CellMap crop group).
#[pyclass(frozen, module = "annomask._annomask")]
struct Mask {
    inner: Arc<MissingAnnotationsMask>,
    /// The process that opened it: a GPU device does not survive a fork.
    pid: u32,
}

impl Drop for Mask {
    fn drop(&mut self) {
        // A forked child must not tear down the parent's GPU device: leak this reference.
        if self.pid != std::process::id() && self.inner.engine().name() == "gpu" {
            std::mem::forget(self.inner.clone());
        }
    }
}

impl Mask {
    /// Fails in a forked child for a mask on the GPU engine (its device is the parent's);
    /// CPU-engine masks work in any process (their threads: `annomask::threads`).
    fn check_process(&self) -> PyResult<()> {
        if self.pid != std::process::id() && self.inner.engine().name() == "gpu" {
            return Err(PyRuntimeError::new_err(format!(
                "{}: this mask was opened on the GPU in process {}; a GPU device does not \
                 survive a fork: open the mask in the worker process, or use engine=\"cpu\"",
                self.inner.name(),
                self.pid
            )));
        }
        Ok(())
    }
}

#[pymethods]
impl Mask {
    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }

    #[getter]
    fn axes(&self) -> Vec<String> {
        self.inner.axes()
    }

    #[getter]
    fn dims(&self) -> usize {
        self.inner.dims()
    }

    #[getter]
    fn voxel_size(&self) -> Vec<f64> {
        self.inner.voxel_size().as_slice().to_vec()
    }

    /// `(offset, shape)` in world units.
    #[getter]
    fn roi(&self) -> (Vec<f64>, Vec<f64>) {
        let roi = self.inner.roi();
        (
            roi.offset().as_slice().to_vec(),
            roi.shape().as_slice().to_vec(),
        )
    }

    /// Spatial shape in voxels.
    #[getter]
    fn shape(&self) -> Vec<u64> {
        self.inner.shape().to_vec()
    }

    #[getter]
    fn num_channels(&self) -> usize {
        self.inner.num_channels()
    }

    #[getter]
    fn channels(&self) -> Vec<String> {
        self.inner
            .channels()
            .into_iter()
            .map(String::from)
            .collect()
    }

    /// The source's attributes as JSON text.
    #[getter]
    fn attrs_json(&self) -> String {
        serde_json::Value::Object(self.inner.attrs().clone()).to_string()
    }

    /// The plan, as `inspect` prints it.
    #[getter]
    fn plan(&self) -> String {
        self.inner.plan().to_string()
    }

    /// Which engine computes, on what device, and why.
    #[getter]
    fn engine(&self) -> String {
        self.inner.engine().describe()
    }

    /// The stored data: always an error (the mask is computed on request).
    fn data<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArrayDyn<u8>>> {
        self.inner
            .data()
            .map(|a| a.into_pyarray(py))
            .map_err(py_err)
    }

    /// The mask inside the ROI `(offset, shape)`: `uint8`, shape `(channels, *voxels)`.
    fn get<'py>(
        &self,
        py: Python<'py>,
        offset: Vec<f64>,
        shape: Vec<f64>,
    ) -> PyResult<Bound<'py, PyArrayDyn<u8>>> {
        self.check_process()?;
        let roi = roi(offset, shape)?;
        let mask = py
            .detach(|| annomask::threads::install(|| self.inner.get(&roi)))
            .map_err(py_err)?;
        Ok(mask.into_pyarray(py))
    }

    /// `(mask, targets)` inside the ROI, computed in one pass.
    #[allow(clippy::type_complexity)]
    fn get_with_targets<'py>(
        &self,
        py: Python<'py>,
        offset: Vec<f64>,
        shape: Vec<f64>,
    ) -> PyResult<(Bound<'py, PyArrayDyn<u8>>, Bound<'py, PyArrayDyn<u8>>)> {
        self.check_process()?;
        let roi = roi(offset, shape)?;
        let (mask, targets) = py
            .detach(|| annomask::threads::install(|| self.inner.get_with_targets(&roi)))
            .map_err(py_err)?;
        Ok((mask.into_pyarray(py), targets.into_pyarray(py)))
    }
}

/// Opens a label array or CellMap crop group with the process-wide engine of its choice.
#[pyfunction]
#[pyo3(signature = (path, groupings, *, policy, sparse, background, engine, allow_missing_metadata, scale, verify, anonymous))]
#[allow(clippy::too_many_arguments)]
fn open(
    py: Python<'_>,
    path: PathBuf,
    groupings: &Groupings,
    policy: &str,
    sparse: &str,
    background: u64,
    engine: &str,
    allow_missing_metadata: bool,
    scale: &str,
    verify: bool,
    anonymous: bool,
) -> PyResult<Mask> {
    let options = mask_options(
        policy,
        sparse,
        background,
        engine,
        allow_missing_metadata,
        verify,
    )?
    .anonymous(anonymous);
    let crop_options = CropOptions::default().scale(scale);
    let groupings = groupings.inner.clone();
    py.detach(|| {
        annomask::threads::install(|| {
            let engine = shared_engine(options.engine)?;
            MissingAnnotationsMask::open_with_engine(
                &path,
                groupings,
                options,
                &crop_options,
                engine,
            )
        })
    })
    .map(|mask| Mask {
        inner: Arc::new(mask),
        pid: std::process::id(),
    })
    .map_err(py_err)
}

/// The training feeder over opened masks; yields batch tuples
/// `(index, targets, mask, samples, labels, raw)`, `samples` a list of
/// `(crop, offset, shape, start, flips, order)`.
#[pyclass(frozen, module = "annomask._annomask")]
struct Feeder {
    /// `None` once closed.
    inner: Mutex<Option<RustFeeder>>,
    /// The process that started its prefetch thread (which a fork does not copy).
    pid: u32,
}

impl Drop for Feeder {
    fn drop(&mut self) {
        // In a forked child the prefetch thread is not there to stop and join: forget it.
        if self.pid != std::process::id() {
            let inner = self.inner.get_mut().unwrap_or_else(PoisonError::into_inner);
            std::mem::forget(inner.take());
        }
    }
}

#[pymethods]
impl Feeder {
    #[new]
    #[pyo3(signature = (crops, roi_shape, *, seed, batch_size, prefetch, weighting, with_labels, batches, raw, context, mirror, transpose, shard, start, chunk_cache))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        crops: Vec<PyRef<'_, Mask>>,
        roi_shape: Vec<u64>,
        seed: u64,
        batch_size: usize,
        prefetch: usize,
        weighting: &str,
        with_labels: bool,
        batches: Option<usize>,
        raw: Vec<PyRef<'_, Raw>>,
        context: Vec<u64>,
        mirror: Vec<usize>,
        transpose: Vec<usize>,
        shard: (usize, usize),
        start: usize,
        chunk_cache: u64,
    ) -> PyResult<Self> {
        let weighting = match weighting {
            "uniform" => CropWeighting::Uniform,
            "size" => CropWeighting::BySize,
            "class" => CropWeighting::ByClass,
            other => {
                return Err(option_err(
                    "weighting",
                    format!("unknown weighting {other:?} (expected uniform, size or class)"),
                ));
            }
        };
        if batch_size == 0 || prefetch == 0 {
            return Err(option_err(
                if batch_size == 0 {
                    "batch_size"
                } else {
                    "prefetch"
                },
                "must be at least 1".into(),
            ));
        }
        let mut config = FeederConfig::new(roi_shape)
            .seed(seed)
            .batch_size(batch_size)
            .prefetch(prefetch)
            .weighting(weighting)
            .with_labels(with_labels)
            .context(context)
            .mirror(mirror)
            .transpose(transpose)
            .shard(shard.0, shard.1)
            .start(start)
            .chunk_cache(chunk_cache);
        config.batches = batches;
        for r in &raw {
            r.check_process()?;
        }
        let crops: Vec<_> = crops.iter().map(|c| c.inner.clone()).collect();
        let raws: Vec<_> = raw.iter().map(|r| r.inner.clone()).collect();
        let feeder = py
            .detach(|| RustFeeder::with_raw(crops, raws, config))
            .map_err(py_err)?;
        Ok(Self {
            inner: Mutex::new(Some(feeder)),
            pid: std::process::id(),
        })
    }

    /// The next batch, or `None` at the end (or once closed). Waits with the GIL released.
    fn next_batch<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        if self.pid != std::process::id() {
            return Err(PyRuntimeError::new_err(format!(
                "this Feeder was started in process {}; its prefetch thread does not survive a \
                 fork: create the Feeder in each worker process",
                self.pid
            )));
        }
        let batch = py.detach(|| lock(&self.inner).as_mut().and_then(Iterator::next));
        match batch {
            None => Ok(None),
            Some(batch) => self.batch_tuple(py, batch.map_err(py_err)?).map(Some),
        }
    }

    /// Stops the prefetch thread (waiting for the batch it is computing, GIL released).
    fn close(&self, py: Python<'_>) {
        if self.pid != std::process::id() {
            // The parent's thread is not here to join: forget it.
            std::mem::forget(lock(&self.inner).take());
            return;
        }
        py.detach(|| drop(lock(&self.inner).take()));
    }
}

impl Feeder {
    fn batch_tuple<'py>(&self, py: Python<'py>, batch: Batch) -> PyResult<Bound<'py, PyTuple>> {
        let samples = PyList::empty(py);
        for s in &batch.samples {
            let (offset, shape) = (s.roi.offset().as_slice(), s.roi.shape().as_slice());
            let d = &s.draw;
            samples.append((
                s.crop,
                offset.to_vec(),
                shape.to_vec(),
                s.start.clone(),
                d.flips.clone(),
                d.order.clone(),
            ))?;
        }
        let labels = match batch.labels {
            None => None,
            Some(blocks) => {
                let list = PyList::empty(py);
                for block in blocks {
                    list.append(self.block_object(py, block)?)?;
                }
                Some(list)
            }
        };
        let raw = batch.raw.map(|r| label_array(py, r));
        (
            batch.index,
            batch.targets.into_pyarray(py),
            batch.mask.into_pyarray(py),
            samples,
            labels,
            raw,
        )
            .into_pyobject(py)
    }

    /// A block of one label array as a numpy array of its dtype; a block of named arrays
    /// (a crop group's classes) as a dict name -> array.
    fn block_object<'py>(
        &self,
        py: Python<'py>,
        block: SourceBlock,
    ) -> PyResult<Bound<'py, PyAny>> {
        match block.into_parts() {
            (arrays, None) => {
                let labels = arrays
                    .into_iter()
                    .next()
                    .expect("a block of one label array");
                Ok(label_array(py, labels))
            }
            (arrays, Some(names)) => {
                let dict = PyDict::new(py);
                for (name, values) in names.into_iter().zip(arrays) {
                    dict.set_item(name, label_array(py, values))?;
                }
                Ok(dict.into_any())
            }
        }
    }
}

/// A label array as a numpy array of its own dtype (no copy).
fn label_array(py: Python<'_>, labels: LabelArray) -> Bound<'_, PyAny> {
    with_labels!(labels, LabelArray, a => a.into_pyarray(py).into_any())
}

/// Raw data (EM intensities) at a mask's voxel size: an array, or the level of an OME-NGFF
/// multiscale group whose voxel size matches.
#[pyclass(frozen, module = "annomask._annomask")]
struct Raw {
    inner: Arc<RawVolume>,
    /// The process that opened it (its chunk cache's locks are not the child's).
    pid: u32,
}

impl Raw {
    fn check_process(&self) -> PyResult<()> {
        if self.pid != std::process::id() {
            return Err(PyRuntimeError::new_err(format!(
                "{}: raw data opened in process {}: open it again in this process",
                self.inner.name(),
                self.pid
            )));
        }
        Ok(())
    }
}

#[pymethods]
impl Raw {
    #[new]
    #[pyo3(signature = (location, voxel_size, *, anonymous))]
    fn new(
        py: Python<'_>,
        location: String,
        voxel_size: Vec<f64>,
        anonymous: bool,
    ) -> PyResult<Self> {
        let voxel_size = Coordinate::new(voxel_size);
        py.detach(|| RawVolume::open(&location, &voxel_size, StoreOptions::anonymous(anonymous)))
            .map(|raw| Self {
                inner: Arc::new(raw),
                pid: std::process::id(),
            })
            .map_err(py_err)
    }

    /// The chosen array, as errors name it.
    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }

    /// The numpy dtype name.
    #[getter]
    fn dtype(&self) -> String {
        self.inner.dtype().to_string()
    }

    #[getter]
    fn voxel_size(&self) -> Vec<f64> {
        self.inner.geometry().voxel_size.as_slice().to_vec()
    }

    /// `(offset, shape)` in world units.
    #[getter]
    fn roi(&self) -> (Vec<f64>, Vec<f64>) {
        let roi = self.inner.geometry().roi();
        (
            roi.offset().as_slice().to_vec(),
            roi.shape().as_slice().to_vec(),
        )
    }

    /// The raw data inside the ROI `(offset, shape)`, zero outside the array.
    fn get<'py>(
        &self,
        py: Python<'py>,
        offset: Vec<f64>,
        shape: Vec<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.check_process()?;
        let roi = roi(offset, shape)?;
        let data = py.detach(|| self.inner.read_roi(&roi)).map_err(py_err)?;
        Ok(label_array(py, data))
    }
}

fn zarr_format(format: u8) -> PyResult<ZarrFormat> {
    match format {
        2 => Ok(ZarrFormat::V2),
        3 => Ok(ZarrFormat::V3),
        _ => Err(option_err(
            "zarr_format",
            format!("must be 2 or 3, not {format}"),
        )),
    }
}

/// Writes the demo label array (`dir/demo_crop.zarr/labels`) and returns its path.
#[pyfunction]
fn write_demo_crop(py: Python<'_>, dir: PathBuf, size: usize, zarr_format: u8) -> PyResult<String> {
    let format = self::zarr_format(zarr_format)?;
    py.detach(|| annomask::synth::write_demo_crop(&dir, size, format))
        .map(|p| p.display().to_string())
        .map_err(py_err)
}

/// Writes the demo CellMap crop group (`dir/crop1`) and returns its path.
#[pyfunction]
fn write_demo_crop_group(
    py: Python<'_>,
    dir: PathBuf,
    size: usize,
    zarr_format: u8,
) -> PyResult<String> {
    let format = self::zarr_format(zarr_format)?;
    py.detach(|| annomask::cellmap::synth::write_demo_crop(&dir, size, format))
        .map(|p| p.display().to_string())
        .map_err(py_err)
}

/// The demo label array's groupings: `[(name, [ids]), ...]`.
#[pyfunction]
fn demo_groupings() -> Vec<(String, Vec<u64>)> {
    annomask::synth::demo_groupings()
        .channels()
        .iter()
        .map(|c| (c.name.clone(), c.ids.clone()))
        .collect()
}

/// The demo crop group's groupings: `[(name, [class names]), ...]`.
#[pyfunction]
fn demo_class_groupings() -> Vec<(String, Vec<String>)> {
    annomask::cellmap::synth::demo_groupings()
        .channels()
        .iter()
        .map(|c| (c.name.clone(), c.classes.clone()))
        .collect()
}

/// The `annomask` command line (`annomask::cli::main`), run on `argv` (the program name
/// first) with the GIL released; returns the exit status. The console script `annomask` and
/// `python -m annomask` (`annomask/__main__.py`) call it.
#[pyfunction]
fn cli_main(py: Python<'_>, argv: Vec<std::ffi::OsString>) -> i32 {
    py.detach(move || annomask::cli::main(argv))
}

#[pymodule]
fn _annomask(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<Groupings>()?;
    m.add_class::<Mask>()?;
    m.add_class::<Feeder>()?;
    m.add_class::<Raw>()?;
    m.add_function(wrap_pyfunction!(open, m)?)?;
    m.add_function(wrap_pyfunction!(write_demo_crop, m)?)?;
    m.add_function(wrap_pyfunction!(write_demo_crop_group, m)?)?;
    m.add_function(wrap_pyfunction!(demo_groupings, m)?)?;
    m.add_function(wrap_pyfunction!(demo_class_groupings, m)?)?;
    m.add_function(wrap_pyfunction!(cli_main, m)?)?;
    m.add_class::<jobs::Job>()?;
    m.add_function(wrap_pyfunction!(jobs::compute_labels, m)?)?;
    m.add_function(wrap_pyfunction!(jobs::chunk_shape, m)?)?;
    Ok(())
}
