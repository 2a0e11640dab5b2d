//! Blockwise jobs for outside schedulers (Dask, daisy): `Job`, the `compute` command's job cut
//! into blocks that any process can compute and write, and `compute_labels`, the mask of a label
//! block already in memory.
//!
//! A `Job` is built with the very library calls `annomask compute` makes (the source opened
//! with the CPU engine for the checks, [`MaskOutput::new`] over the same region and output
//! options), so the metadata and attributes it writes are byte for byte the CLI's. The client
//! calls `create` once (the checks, a trial decode of the first block, the metadata); workers
//! call `write_blocks` on lists of block numbers (each block: read, compute, count, write its
//! chunks atomically) and `is_complete` (the resume check). A worker computes with the
//! process-wide engine of the job's choice, selected on its first block.

use std::path::PathBuf;
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime};

use annomask::blocks::{Block, Shard};
use annomask::budget::MemoryBudget;
use annomask::cellmap::CropSource;
use annomask::output::{MaskOutput, OutputOptions};
use annomask::sink::MaskSink;
use annomask::zarr_array::Compression;
use annomask::{
    CropOptions, Engine, Error, LabelArray, LabelDtype, MaskOptions, MissingAnnotationsMask,
    SourceBlock,
};
use ndarray::ArrayD;
use numpy::{IntoPyArray, PyArrayDyn, PyReadonlyArrayDyn};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::{Groupings, Mask, mask_options, option_err, py_err, roi, shared_engine, zarr_format};

/// The number of 1 bytes in a 0/1 mask (summed in `u32` pieces, which vectorise).
fn count_ones(mask: &[u8]) -> u64 {
    mask.chunks(1 << 16)
        .map(|piece| u64::from(piece.iter().map(|&v| u32::from(v)).sum::<u32>()))
        .sum()
}

/// Adds each channel's 1 voxels to `trained`, as the pipeline counts them: one channel of each
/// kind ([`annomask::SourcePlan::first_equal_channels`]), zeroed channels add nothing.
fn count_trained(data: &[u8], n: usize, equal: &[Option<usize>], trained: &mut [u64]) {
    let mut counts = vec![0u64; equal.len()];
    for (c, first) in equal.iter().enumerate() {
        counts[c] = match *first {
            None => 0,
            Some(f) if f < c => counts[f],
            Some(_) => count_ones(&data[c * n..(c + 1) * n]),
        };
        trained[c] += counts[c];
    }
}

/// What `write_blocks` did: per-channel trained voxels, voxels, blocks written and skipped,
/// seconds reading, computing and writing.
type Done = (Vec<u64>, u64, u64, u64, f64, f64, f64);

/// The `compute` command's job for one source and output, block by block.
#[pyclass(frozen, module = "annomask._annomask")]
pub(crate) struct Job {
    /// Opened with the CPU engine: the checks, the metadata and `is_complete` need no other.
    mask: MissingAnnotationsMask,
    output: MaskOutput,
    /// The mask with the chosen engine, made on the first block computed (`None` for `cpu`:
    /// `mask` then computes).
    computing: OnceLock<Arc<MissingAnnotationsMask>>,
    /// To open the source again with the chosen engine.
    reopen: (
        PathBuf,
        annomask::ChannelGroupings,
        MaskOptions,
        CropOptions,
    ),
    budget: MemoryBudget,
}

impl Job {
    fn block(&self, number: u64) -> PyResult<Block> {
        let grid = self.output.grid();
        if number >= grid.num_blocks() {
            return Err(PyValueError::new_err(format!(
                "{}: block {number} is outside the grid of {} blocks",
                self.output.root().display(),
                grid.num_blocks()
            )));
        }
        Ok(grid.block(number))
    }

    /// The mask that computes: with the process-wide engine of the job's choice.
    fn computing(&self) -> Result<&MissingAnnotationsMask, Error> {
        let (path, groupings, options, crop) = &self.reopen;
        if options.engine == annomask::EngineChoice::Cpu {
            return Ok(&self.mask);
        }
        if let Some(mask) = self.computing.get() {
            return Ok(mask);
        }
        let engine = shared_engine(options.engine)?;
        let mut mask = MissingAnnotationsMask::open_with_engine(
            path,
            groupings.clone(),
            *options,
            crop,
            engine,
        )?;
        mask.set_memory_budget(self.budget);
        Ok(self.computing.get_or_init(|| Arc::new(mask)))
    }

    fn run_blocks(&self, numbers: &[u64], resume: bool) -> Result<Done, Error> {
        let mask = self.computing()?;
        let output = &self.output;
        let equal = mask.plan().first_equal_channels();
        let mut trained = vec![0u64; equal.len()];
        let (mut voxels, mut written, mut skipped) = (0u64, 0u64, 0u64);
        let (mut read_s, mut compute_s) = (0f64, 0f64);
        // Block k is written on a second thread while block k + 1 is read and computed.
        let (tx, rx) = sync_channel::<(Block, Vec<u8>)>(1);
        let (back_tx, back_rx) = sync_channel::<Vec<u8>>(2);
        std::thread::scope(|scope| {
            let writer = scope.spawn(move || -> Result<f64, Error> {
                let mut busy = 0f64;
                for (block, data) in rx {
                    let t = Instant::now();
                    output.write_block(&block, &data)?;
                    busy += t.elapsed().as_secs_f64();
                    let _ = back_tx.try_send(data);
                }
                Ok(busy)
            });
            let mut work = || -> Result<(), Error> {
                for &k in numbers {
                    let block = output.grid().block(k);
                    if resume && output.is_complete(&block)? {
                        skipped += 1;
                        continue;
                    }
                    let region = output.source_region(&block);
                    let t = Instant::now();
                    let source = mask.read_block(&region)?;
                    let read = t.elapsed();
                    let n = block.num_voxels() as usize;
                    let mut data = back_rx.try_recv().unwrap_or_default();
                    data.resize(n * equal.len(), 0);
                    annomask::threads::install(|| mask.compute_block(&source, &mut data))?;
                    drop(source);
                    count_trained(&data, n, &equal, &mut trained);
                    compute_s += (t.elapsed() - read).as_secs_f64();
                    read_s += read.as_secs_f64();
                    voxels += n as u64;
                    if tx.send((block, data)).is_err() {
                        break; // the writer failed: its error is returned below
                    }
                    written += 1;
                }
                Ok(())
            };
            let worked = work();
            drop(tx);
            let write_s = writer.join().unwrap_or_else(|_| {
                Err(Error::Panic {
                    stage: "writer".into(),
                    message: "the writer thread panicked".into(),
                })
            });
            worked?;
            let write_s = write_s?;
            Ok((
                trained, voxels, written, skipped, read_s, compute_s, write_s,
            ))
        })
    }
}

#[pymethods]
impl Job {
    #[new]
    #[pyo3(signature = (path, groupings, out, *, policy, sparse, background, engine, allow_missing_metadata, scale, verify, anonymous, roi_offset, roi_shape, chunks, zarr_format, compression, memory_budget))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        groupings: &Groupings,
        out: String,
        policy: &str,
        sparse: &str,
        background: u64,
        engine: &str,
        allow_missing_metadata: bool,
        scale: &str,
        verify: bool,
        anonymous: bool,
        roi_offset: Option<Vec<f64>>,
        roi_shape: Option<Vec<f64>>,
        chunks: Option<Vec<u64>>,
        zarr_format: Option<u8>,
        compression: &str,
        memory_budget: Option<String>,
    ) -> PyResult<Self> {
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
        let region_roi = match (roi_offset, roi_shape) {
            (Some(offset), Some(shape)) => Some(roi(offset, shape)?),
            (None, None) => None,
            _ => return Err(option_err("roi", "give both offset and shape".into())),
        };
        let budget = match memory_budget {
            Some(text) => text
                .parse::<MemoryBudget>()
                .map_err(|e| option_err("memory_budget", e))?,
            None => MemoryBudget::default(),
        };
        let output_options = OutputOptions {
            format: zarr_format.map(self::zarr_format).transpose()?,
            chunks,
            compression: compression
                .parse::<Compression>()
                .map_err(|e| option_err("compression", e))?,
            memory_budget: budget,
            store: options.store,
        };
        let groupings = groupings.inner.clone();
        py.detach(|| {
            annomask::threads::install(|| {
                // As `annomask compute`: opened with the CPU engine for the checks; the chosen
                // engine computes (`Job::computing`).
                let mut mask = MissingAnnotationsMask::open_with_engine(
                    &path,
                    groupings.clone(),
                    options,
                    &crop_options,
                    Engine::cpu(),
                )?;
                mask.set_memory_budget(budget);
                let region = match &region_roi {
                    Some(roi) => Some(
                        mask.volume()
                            .geometry()
                            .voxel_region(&path.display().to_string(), roi)?,
                    ),
                    None => None,
                };
                let output = MaskOutput::new(&out, &mask, region.as_ref(), &output_options)?;
                output.check()?;
                output.check_memory(2)?;
                Ok::<_, Error>(Self {
                    mask,
                    output,
                    computing: OnceLock::new(),
                    reopen: (path.clone(), groupings, options, crop_options),
                    budget,
                })
            })
        })
        .map_err(py_err)
    }

    /// Checks the output again, decodes the first block (a codec the input names but cannot
    /// decode fails here, before anything is written) and writes the metadata; files already
    /// there and equal are left alone. Returns the number of stale temporary files of dead
    /// writers removed.
    fn create(&self, py: Python<'_>) -> PyResult<usize> {
        py.detach(|| {
            annomask::threads::install(|| {
                let grid = self.output.grid();
                if grid.num_blocks() > 0 {
                    let first = grid.block(0);
                    let region = self.output.source_region(&first);
                    self.mask.read_block(&region)?;
                }
                self.output.create()?;
                self.output
                    .remove_stale_temporaries(Shard::default(), SystemTime::now())
            })
        })
        .map_err(py_err)
    }

    /// Removes the temporary files dead writers left (after a worker was killed); returns how
    /// many.
    fn remove_stale_temporaries(&self, py: Python<'_>) -> PyResult<usize> {
        py.detach(|| {
            self.output
                .remove_stale_temporaries(Shard::default(), SystemTime::now())
        })
        .map_err(py_err)
    }

    /// Computes and writes blocks `numbers` (skipping complete ones under `resume`), with the
    /// GIL released. Returns `(trained per channel, voxels, written, skipped, read s, compute s,
    /// write s)`.
    fn write_blocks(&self, py: Python<'_>, numbers: Vec<u64>, resume: bool) -> PyResult<Done> {
        for &k in &numbers {
            self.block(k)?;
        }
        py.detach(|| self.run_blocks(&numbers, resume))
            .map_err(py_err)
    }

    /// Whether every chunk of block `number` is stored (complete: chunks are written
    /// atomically).
    fn is_complete(&self, py: Python<'_>, number: u64) -> PyResult<bool> {
        let block = self.block(number)?;
        py.detach(|| self.output.is_complete(&block))
            .map_err(py_err)
    }

    /// Block `number`: `(chunk indices, first voxel, shape)` in output voxels.
    #[allow(clippy::type_complexity)]
    fn block_at(&self, number: u64) -> PyResult<(Vec<u64>, Vec<u64>, Vec<u64>)> {
        let b = self.block(number)?;
        Ok((b.chunk, b.start, b.shape))
    }

    /// The number of the block with chunk indices `chunk`, or `None` outside the grid.
    fn number_of(&self, chunk: Vec<u64>) -> Option<u64> {
        self.output.grid().number_of(&chunk)
    }

    #[getter]
    fn num_blocks(&self) -> u64 {
        self.output.grid().num_blocks()
    }

    /// Output shape `(channels, *spatial)`.
    #[getter]
    fn shape(&self) -> Vec<u64> {
        self.output.shape().to_vec()
    }

    /// Spatial chunk shape of the output (the block shape).
    #[getter]
    fn chunks(&self) -> Vec<u64> {
        self.output.grid().chunks().to_vec()
    }

    /// The input voxel at the output's first voxel.
    #[getter]
    fn origin(&self) -> Vec<u64> {
        self.output.origin().to_vec()
    }

    #[getter]
    fn voxel_size(&self) -> Vec<f64> {
        self.mask.voxel_size().as_slice().to_vec()
    }

    /// The world offset of the input's first voxel.
    #[getter]
    fn input_offset(&self) -> Vec<f64> {
        self.mask.roi().offset().as_slice().to_vec()
    }

    #[getter]
    fn channels(&self) -> Vec<String> {
        self.mask.channels().into_iter().map(String::from).collect()
    }

    /// The path of the mask array (the output, or `OUT/<level>` in an OME-NGFF group).
    #[getter]
    fn array_path(&self) -> String {
        self.output.array_path().display().to_string()
    }

    #[getter]
    fn name(&self) -> String {
        self.mask.name().to_string()
    }
}

/// A numpy integer array as a [`LabelArray`] of `dtype` (copied), or a `TypeError` naming what.
fn label_array_of(what: &str, array: &Bound<'_, PyAny>, dtype: LabelDtype) -> PyResult<LabelArray> {
    fn take<T: numpy::Element + Clone>(
        what: &str,
        array: &Bound<'_, PyAny>,
        dtype: LabelDtype,
    ) -> PyResult<ArrayD<T>> {
        let a: PyReadonlyArrayDyn<'_, T> = array.extract().map_err(|_| {
            let found = array
                .getattr("dtype")
                .map(|d| d.to_string())
                .unwrap_or_else(|_| array.get_type().to_string());
            PyTypeError::new_err(format!(
                "{what}: must be a numpy array of the source's dtype {dtype}, not {found}"
            ))
        })?;
        Ok(a.as_array().to_owned())
    }
    Ok(match dtype {
        LabelDtype::U8 => LabelArray::U8(take(what, array, dtype)?),
        LabelDtype::U16 => LabelArray::U16(take(what, array, dtype)?),
        LabelDtype::U32 => LabelArray::U32(take(what, array, dtype)?),
        LabelDtype::U64 => LabelArray::U64(take(what, array, dtype)?),
        LabelDtype::I8 => LabelArray::I8(take(what, array, dtype)?),
        LabelDtype::I16 => LabelArray::I16(take(what, array, dtype)?),
        LabelDtype::I32 => LabelArray::I32(take(what, array, dtype)?),
        LabelDtype::I64 => LabelArray::I64(take(what, array, dtype)?),
    })
}

/// The mask and targets of a block of source data already in memory, computed with `mask`'s
/// plan and engine: a numpy array of the label array's dtype, or for a crop group a dict class
/// name -> array (every class the plan reads). Returns `(mask, targets)`, `uint8`,
/// `(channels, *labels.shape)`.
#[pyfunction]
#[allow(clippy::type_complexity)]
pub(crate) fn compute_labels<'py>(
    py: Python<'py>,
    mask: &Mask,
    labels: &Bound<'py, PyAny>,
) -> PyResult<(Bound<'py, PyArrayDyn<u8>>, Bound<'py, PyArrayDyn<u8>>)> {
    mask.check_process()?;
    let inner = &mask.inner;
    let dims = inner.dims();
    let block = match inner.source_as::<CropSource>() {
        None => {
            let dtype = inner.volume().dtype();
            SourceBlock::single(label_array_of("labels", labels, dtype)?)
        }
        Some(crop) => {
            let dict = labels.cast::<PyDict>().map_err(|_| {
                PyTypeError::new_err(format!(
                    "labels: {} is a crop group: give a dict class name -> numpy array",
                    inner.name()
                ))
            })?;
            let classes = crop.plan().classes();
            let mut names = Vec::new();
            let mut arrays = Vec::new();
            for (class, volume) in classes.iter().zip(crop.class_volumes()) {
                let item = dict.get_item(&class.name)?.ok_or_else(|| {
                    PyValueError::new_err(format!(
                        "labels: no array for class {:?} (the plan reads {:?})",
                        class.name,
                        classes.iter().map(|c| c.name.as_str()).collect::<Vec<_>>()
                    ))
                })?;
                names.push(class.name.clone());
                arrays.push(label_array_of(
                    &format!("labels[{:?}]", class.name),
                    &item,
                    volume.dtype(),
                )?);
            }
            let shape: Vec<usize> = match arrays.first() {
                Some(a) => a.shape().to_vec(),
                None => {
                    return Err(PyValueError::new_err(
                        "labels: the plan reads no class array, so a block has no shape: use \
                         mask[roi]",
                    ));
                }
            };
            if let Some((name, a)) = names.iter().zip(&arrays).find(|(_, a)| a.shape() != shape) {
                return Err(PyValueError::new_err(format!(
                    "labels[{name:?}]: shape {:?}, not {shape:?} as the other classes",
                    a.shape()
                )));
            }
            SourceBlock::named(shape, names, arrays)
        }
    };
    if block.shape().len() != dims {
        return Err(PyValueError::new_err(format!(
            "labels: {} axes, the source has {dims}",
            block.shape().len()
        )));
    }
    let n: usize = block.shape().iter().product();
    let channels = inner.num_channels();
    let mut shape = vec![channels];
    shape.extend_from_slice(block.shape());
    let (m, t) = py
        .detach(|| {
            annomask::threads::install(|| {
                let mut m = vec![0u8; channels * n];
                let mut t = vec![0u8; channels * n];
                inner.compute_block_with_targets(&block, &mut m, &mut t)?;
                Ok::<_, Error>((m, t))
            })
        })
        .map_err(py_err)?;
    let array = |data: Vec<u8>| {
        ArrayD::from_shape_vec(shape.clone(), data)
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))
    };
    Ok((array(m)?.into_pyarray(py), array(t)?.into_pyarray(py)))
}

/// The label chunk shape of an opened mask (its source's chunks, in voxels).
#[pyfunction]
pub(crate) fn chunk_shape(mask: &Mask) -> Vec<u64> {
    mask.inner.chunk_shape().to_vec()
}
