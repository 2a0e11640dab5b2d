//! The training feeder: batches of `(raw?, labels?, targets, mask)` for random voxel-aligned
//! ROIs of one or more crops, computed in one fused pass per ROI (on the GPU when the crops'
//! engine is one), prefetched by a background thread into a bounded queue, deterministic for a
//! seed.
//!
//! - Raw data ([`Feeder::with_raw`], [`crate::raw`]): read at each sample's ROI grown by
//!   [`FeederConfig::context`] voxels per side, in the same prefetch thread.
//! - Padding: a crop smaller than the ROI along an axis lies somewhere inside the ROI; targets
//!   and mask are 0 in the padding (nothing is trained there), raw data is read where it exists
//!   (it usually extends past the label crop) and 0 beyond.
//! - Augmentations ([`FeederConfig::mirror`], [`FeederConfig::transpose`]): random mirrors and
//!   axis permutations, the same for raw, targets and mask ([`augment`]).
//! - The sequence: batch `b` is a pure function of the seed and `b` ([`sampler`]), so a feeder
//!   may start at any batch ([`FeederConfig::start`]) and shard the sequence between workers
//!   ([`FeederConfig::shard`]): worker `i` of `n` yields batches `i, i + n, ...`, and
//!   round-robin over the workers gives back the one-process sequence.
//!
//! ```
//! use std::sync::Arc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use ndarray::{ArrayD, IxDyn};

use crate::error::{Error, Result};
use crate::geometry::{Coordinate, Roi, VoxelRegion};
use crate::label::{Label, LabelArray};
use crate::mask::MissingAnnotationsMask;
use crate::raw::{RawVolume, clip, paste};
use crate::source::SourceBlock;
use crate::with_labels;

pub mod augment;
pub mod sampler;

pub use sampler::{Draw, RoiSampler};

/// Default decoded-chunk cache of a feeder, all crops together: 1 GiB.
pub const DEFAULT_CHUNK_CACHE: u64 = 1 << 30;

/// How crops are chosen for each ROI.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CropWeighting {
    /// Every crop equally often.
    #[default]
    Uniform,
    /// In proportion to a crop's number of voxels.
    BySize,
    /// By class presence: each channel gets an equal share of the draws, split between the crops
    /// where it is present ([`crate::source::MaskSource::channel_presence`]), so crops holding
    /// rare classes come up as often as those holding common ones.
    ByClass,
}

/// What the feeder produces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeederConfig {
    /// ROI shape in voxels, one per spatial axis of the crops.
    pub roi_shape: Vec<u64>,
    /// Seed of the ROI sequence: the same seed gives the same batches.
    pub seed: u64,
    /// ROIs per batch (default 1).
    pub batch_size: usize,
    /// Batches computed ahead by the background thread (default 4).
    pub prefetch: usize,
    /// How crops are chosen (default uniform).
    pub weighting: CropWeighting,
    /// Also return the source data of each ROI (default false).
    pub with_labels: bool,
    /// The sequence ends before this batch index (default: never). With shards, the length of
    /// the whole sequence, not of one shard.
    pub batches: Option<usize>,
    /// Bytes of decoded chunks kept in memory, split evenly between the crops (and their raw
    /// arrays) (default 1 GiB; 0: none). Random ROIs keep coming back to the same chunks; with
    /// the cache each is decoded once instead of once per ROI that touches it.
    pub chunk_cache: u64,
    /// Raw voxels added on each side of the ROI, per axis (empty: none).
    pub context: Vec<u64>,
    /// Spatial axes mirrored at random, each with probability 1/2 (default none).
    pub mirror: Vec<usize>,
    /// Spatial axes permuted at random among themselves; the ROI (and context) must have the
    /// same size along them (default none).
    pub transpose: Vec<usize>,
    /// This feeder's part of the sequence: `(index, count)` yields the batches `b` with
    /// `b % count == index` (default `(0, 1)`: all).
    pub shard: (usize, usize),
    /// The first batch index to yield (default 0); a feeder resumed at `start` continues the
    /// sequence of one that yielded the batches before it.
    pub start: usize,
}

impl FeederConfig {
    /// Defaults for ROIs of `roi_shape` voxels: seed 0, batches of 1, prefetch 4, uniform crops,
    /// no labels, endless, a 1 GiB chunk cache, no context, no augmentation, one shard.
    pub fn new(roi_shape: Vec<u64>) -> Self {
        Self {
            roi_shape,
            seed: 0,
            batch_size: 1,
            prefetch: 4,
            weighting: CropWeighting::Uniform,
            with_labels: false,
            batches: None,
            chunk_cache: DEFAULT_CHUNK_CACHE,
            context: Vec::new(),
            mirror: Vec::new(),
            transpose: Vec::new(),
            shard: (0, 1),
            start: 0,
        }
    }

    /// Sets the chunk cache budget in bytes (0: no cache).
    pub fn chunk_cache(mut self, bytes: u64) -> Self {
        self.chunk_cache = bytes;
        self
    }

    /// Sets the seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the batch size (at least 1).
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// Sets the prefetch depth (at least 1).
    pub fn prefetch(mut self, prefetch: usize) -> Self {
        self.prefetch = prefetch.max(1);
        self
    }

    /// Sets the crop weighting.
    pub fn weighting(mut self, weighting: CropWeighting) -> Self {
        self.weighting = weighting;
        self
    }

    /// Sets whether batches carry the source data.
    pub fn with_labels(mut self, with_labels: bool) -> Self {
        self.with_labels = with_labels;
        self
    }

    /// Ends the sequence before batch `batches`.
    pub fn batches(mut self, batches: usize) -> Self {
        self.batches = Some(batches);
        self
    }

    /// Sets the raw context in voxels per side, per axis.
    pub fn context(mut self, context: Vec<u64>) -> Self {
        self.context = context;
        self
    }

    /// Sets the mirrored axes.
    pub fn mirror(mut self, axes: Vec<usize>) -> Self {
        self.mirror = axes;
        self
    }

    /// Sets the permuted axes.
    pub fn transpose(mut self, axes: Vec<usize>) -> Self {
        self.transpose = axes;
        self
    }

    /// Sets the shard `(index, count)`.
    pub fn shard(mut self, index: usize, count: usize) -> Self {
        self.shard = (index, count);
        self
    }

    /// Sets the first batch index.
    pub fn start(mut self, start: usize) -> Self {
        self.start = start;
        self
    }

    /// The raw shape in voxels: the ROI plus the context on both sides.
    pub fn raw_shape(&self) -> Vec<u64> {
        let context = |axis: usize| self.context.get(axis).copied().unwrap_or(0);
        self.roi_shape
            .iter()
            .enumerate()
            .map(|(axis, &r)| r.saturating_add(context(axis).saturating_mul(2)))
            .collect()
    }

    /// The batch indices this feeder yields, in order.
    pub fn indices(&self) -> impl Iterator<Item = usize> + use<> {
        let (index, count) = (self.shard.0, self.shard.1.max(1));
        let first = self.start + (index + count - self.start % count) % count;
        let end = self.batches.unwrap_or(usize::MAX);
        (first..end).step_by(count)
    }
}

/// Where one ROI of a batch came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Index of the crop in the feeder's list.
    pub crop: usize,
    /// The ROI's voxels inside the crop (the whole ROI unless the crop is smaller: padding).
    pub region: VoxelRegion,
    /// The ROI's first voxel in crop voxels (negative where the ROI starts before the crop).
    pub start: Vec<i64>,
    /// The ROI in world units (before augmentation; the raw ROI is it grown by the context).
    pub roi: Roi,
    /// The augmentation applied: mirrored axes, then the axis order.
    pub draw: Draw,
}

/// One batch: `targets` and `mask` of shape `(batch, channels, *roi_shape)`; `raw` of shape
/// `(batch, *raw_shape)` in the raw arrays' dtype.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Position in the sequence (0, 1, ...).
    pub index: usize,
    /// Where each ROI came from.
    pub samples: Vec<Sample>,
    /// The source data of each ROI (inside the crop, not augmented), when asked for.
    pub labels: Option<Vec<SourceBlock>>,
    /// The raw data of each ROI with its context, with [`Feeder::with_raw`].
    pub raw: Option<LabelArray>,
    /// Per-channel binary targets.
    pub targets: ArrayD<u8>,
    /// The missing-annotation mask: 1 where the target may be trained.
    pub mask: ArrayD<u8>,
}

/// Batches from a background thread; see the module docs. Dropping it stops the thread.
pub struct Feeder {
    receiver: Option<Receiver<Result<Batch>>>,
    stop: Arc<AtomicBool>,
    worker: Option<JoinHandle<()>>,
}

impl Feeder {
    /// Starts a feeder over `crops` (masks opened with the engine that should compute: share
    /// one GPU engine through [`MissingAnnotationsMask::from_volume`] or `from_crop`). The crops
    /// must have the same channels and as many axes as `config.roi_shape`.
    pub fn new(crops: Vec<Arc<MissingAnnotationsMask>>, config: FeederConfig) -> Result<Self> {
        Self::with_raw(crops, Vec::new(), config)
    }

    /// A feeder whose batches carry raw data: `raws[i]` (at the voxel size of `crops[i]`, see
    /// [`RawVolume::open`]) read at each ROI of crop `i` grown by the context. `raws` is empty
    /// (no raw data) or has one entry per crop, all of one dtype.
    pub fn with_raw(
        crops: Vec<Arc<MissingAnnotationsMask>>,
        raws: Vec<Arc<RawVolume>>,
        config: FeederConfig,
    ) -> Result<Self> {
        validate(&crops, &raws, &config)?;
        if config.chunk_cache > 0 {
            let parts = (crops.len() + raws.len()) as u64;
            let each = config.chunk_cache / parts;
            crops.iter().for_each(|c| c.cache_chunks(each));
            raws.iter().for_each(|r| r.cache_chunks(each));
        }
        let shapes = crops.iter().map(|c| c.shape().to_vec()).collect();
        let presence: Vec<Vec<bool>> = crops
            .iter()
            .map(|c| c.source().channel_presence())
            .collect();
        let sampler = RoiSampler::with_presence(shapes, &presence, &config);
        let (sender, receiver) = sync_channel(config.prefetch.max(1));
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let worker = std::thread::Builder::new()
            .name("annomask-feeder".into())
            .spawn(move || {
                // On the process's own pool in a forked child (see `crate::threads`).
                crate::threads::install(|| {
                    produce(&crops, &raws, &config, &sampler, &sender, &flag)
                })
            })
            .map_err(|e| {
                feeder_error("<feeder>", format!("cannot start the prefetch thread: {e}"))
            })?;
        Ok(Self {
            receiver: Some(receiver),
            stop,
            worker: Some(worker),
        })
    }
}

impl Iterator for Feeder {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        self.receiver.as_ref()?.recv().ok()
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Dropping the receiver unblocks a producer waiting on a full queue.
        self.receiver = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

fn validate(
    crops: &[Arc<MissingAnnotationsMask>],
    raws: &[Arc<RawVolume>],
    config: &FeederConfig,
) -> Result<()> {
    let Some(first) = crops.first() else {
        return Err(feeder_error("<feeder>", "no crops given".into()));
    };
    let dims = config.roi_shape.len();
    let fail = |problem: String| Err(feeder_error("<feeder>", problem));
    if config.roi_shape.contains(&0) {
        return fail(format!(
            "ROI shape {:?}: every axis needs at least one voxel",
            config.roi_shape
        ));
    }
    if !config.context.is_empty() && config.context.len() != dims {
        return fail(format!(
            "context {:?} has {} axes, the ROI shape {:?} has {dims}",
            config.context,
            config.context.len(),
            config.roi_shape
        ));
    }
    let (index, count) = config.shard;
    if count == 0 || index >= count {
        return fail(format!(
            "shard {index} of {count}: needs 0 <= index < count"
        ));
    }
    for (what, axes) in [("mirror", &config.mirror), ("transpose", &config.transpose)] {
        let mut seen = vec![false; dims];
        for &axis in axes {
            if axis >= dims || std::mem::replace(&mut seen[axis], true) {
                return fail(format!(
                    "{what} axes {axes:?}: each must be one of the {dims} spatial axes, once"
                ));
            }
        }
    }
    let raw_shape = config.raw_shape();
    if let Some(&a) = config.transpose.first()
        && config
            .transpose
            .iter()
            .any(|&b| config.roi_shape[b] != config.roi_shape[a] || raw_shape[b] != raw_shape[a])
    {
        return fail(format!(
            "transpose axes {:?}: the ROI shape {:?} (and context {:?}) must be equal along them",
            config.transpose, config.roi_shape, config.context
        ));
    }
    for crop in crops {
        if crop.channels() != first.channels() {
            return Err(feeder_error(
                crop.name(),
                format!(
                    "channels {:?} differ from {:?} of {}",
                    crop.channels(),
                    first.channels(),
                    first.name()
                ),
            ));
        }
        if crop.shape().len() != dims {
            return Err(feeder_error(
                crop.name(),
                format!(
                    "ROI shape {:?} (voxels) has {dims} axes, the crop's shape {:?} has {}",
                    config.roi_shape,
                    crop.shape(),
                    crop.shape().len()
                ),
            ));
        }
    }
    if raws.is_empty() {
        return Ok(());
    }
    if raws.len() != crops.len() {
        return fail(format!(
            "{} raw arrays for {} crops: give one per crop",
            raws.len(),
            crops.len()
        ));
    }
    for (crop, raw) in crops.iter().zip(raws) {
        if raw.dtype() != raws[0].dtype() {
            return Err(feeder_error(
                raw.name(),
                format!(
                    "raw dtype {} differs from {} of {}",
                    raw.dtype(),
                    raws[0].dtype(),
                    raws[0].name()
                ),
            ));
        }
        if raw.geometry().voxel_size != *crop.voxel_size() {
            return Err(feeder_error(
                raw.name(),
                format!(
                    "raw voxel size {} differs from {} of {} (annomask does not resample)",
                    raw.geometry().voxel_size,
                    crop.voxel_size(),
                    crop.name()
                ),
            ));
        }
    }
    Ok(())
}

fn feeder_error(crop: &str, problem: String) -> Error {
    Error::Feeder {
        crop: crop.to_string(),
        problem,
    }
}

/// The producer loop of the background thread.
fn produce(
    crops: &[Arc<MissingAnnotationsMask>],
    raws: &[Arc<RawVolume>],
    config: &FeederConfig,
    sampler: &RoiSampler,
    sender: &SyncSender<Result<Batch>>,
    stop: &AtomicBool,
) {
    for index in config.indices() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let batch = compute_batch(crops, raws, config, index, sampler.batch(index));
        let failed = batch.is_err();
        if sender.send(batch).is_err() || failed {
            return;
        }
    }
}

/// Reads and computes one batch (also usable without the thread, e.g. to check the feeder, or
/// to compute fixed ROIs: validation tiles).
pub fn compute_batch(
    crops: &[Arc<MissingAnnotationsMask>],
    raws: &[Arc<RawVolume>],
    config: &FeederConfig,
    index: usize,
    draws: Vec<Draw>,
) -> Result<Batch> {
    let channels = crops[0].num_channels();
    let roi: Vec<usize> = config.roi_shape.iter().map(|&s| s as usize).collect();
    let voxels: usize = roi.iter().product();
    let per_sample = channels * voxels;
    let mut shape = vec![draws.len(), channels];
    shape.extend(config.roi_shape.iter().map(|&s| s as usize));
    let mut mask = vec![0u8; per_sample * draws.len()];
    let mut targets = vec![0u8; per_sample * draws.len()];
    let mut labels = config.with_labels.then(Vec::new);
    let mut raw_blocks = Vec::new();
    let mut samples = Vec::with_capacity(draws.len());
    // In voxels, the same for every sample: the ROI, the raw context per side, the raw ROI.
    let as_f64 = |v: &[u64]| v.iter().map(|&s| s as f64).collect::<Vec<f64>>();
    let extent = as_f64(&config.roi_shape);
    let context: Vec<f64> = (0..roi.len())
        .map(|a| config.context.get(a).copied().unwrap_or(0) as f64)
        .collect();
    let raw_extent = as_f64(&config.raw_shape());
    for (i, draw) in draws.into_iter().enumerate() {
        let source = &crops[draw.crop];
        let (region, at) =
            clip(&draw.start, &config.roi_shape, source.shape()).ok_or_else(|| {
                feeder_error(
                    source.name(),
                    format!("ROI at voxel {:?} lies outside the crop", draw.start),
                )
            })?;
        let block = source.read_block(&region)?;
        let range = i * per_sample..(i + 1) * per_sample;
        if region.shape == config.roi_shape {
            source.compute_block_with_targets(
                &block,
                &mut mask[range.clone()],
                &mut targets[range.clone()],
            )?;
        } else {
            // Padding: compute the part inside the crop, place it; 0 (not trained) around it.
            let part: usize = channels * region.num_voxels() as usize;
            let (mut m, mut t) = (vec![0u8; part], vec![0u8; part]);
            source.compute_block_with_targets(&block, &mut m, &mut t)?;
            let mut part_shape = vec![channels];
            part_shape.extend(region.shape.iter().map(|&s| s as usize));
            let mut full_shape = vec![channels];
            full_shape.extend(&roi);
            let mut offset = vec![0];
            offset.extend(&at);
            for (out, values) in [(&mut mask, m), (&mut targets, t)] {
                let part = ArrayD::from_shape_vec(IxDyn(&part_shape), values).expect("shape");
                let placed = paste(part, &full_shape, &offset);
                out[range.clone()].copy_from_slice(placed.as_slice().expect("standard"));
            }
        }
        let geometry = source.volume().geometry();
        let to_world = |v: &[f64]| Coordinate::new(v.to_vec()).mul(&geometry.voxel_size);
        let start: Vec<f64> = draw.start.iter().map(|&s| s as f64).collect();
        let world = Roi::new(geometry.offset.add(&to_world(&start)), to_world(&extent));
        if let Some(raw) = raws.get(draw.crop) {
            let grown = Roi::new(
                world.offset().sub(&to_world(&context)),
                to_world(&raw_extent),
            );
            let block = raw.read_roi(&grown)?;
            raw_blocks.push(match draw.augments() {
                true => augment::transform_raw(block, &draw),
                false => block,
            });
        }
        if draw.augments() {
            augment::transform_channels(&mut mask[range.clone()], channels, &roi, &draw);
            augment::transform_channels(&mut targets[range], channels, &roi, &draw);
        }
        if let Some(l) = labels.as_mut() {
            l.push(block);
        }
        samples.push(Sample {
            crop: draw.crop,
            region,
            start: draw.start.clone(),
            roi: world,
            draw,
        });
    }
    // Permuted axes have equal sizes (validated): augmentation keeps the shape.
    let array = |v: Vec<u8>| ArrayD::from_shape_vec(IxDyn(&shape), v).expect("shape matches");
    let raw = match raw_blocks.is_empty() {
        true => None,
        false => Some(stack(raw_blocks)),
    };
    Ok(Batch {
        index,
        samples,
        labels,
        raw,
        targets: array(targets),
        mask: array(mask),
    })
}

/// Raw blocks of one dtype and shape stacked along a new first axis.
fn stack(blocks: Vec<LabelArray>) -> LabelArray {
    let mut blocks = blocks.into_iter();
    let first = blocks.next().expect("at least one block");
    with_labels!(first, LabelArray, a => stack_as(a, blocks).into())
}

fn stack_as<T: Label>(first: ArrayD<T>, rest: impl Iterator<Item = LabelArray>) -> ArrayD<T> {
    let mut shape = vec![1];
    shape.extend_from_slice(first.shape());
    let mut values = first.into_raw_vec_and_offset().0;
    for block in rest {
        values.extend_from_slice(bytemuck::cast_slice::<u8, T>(block.as_slice().as_bytes()));
        shape[0] += 1;
    }
    ArrayD::from_shape_vec(IxDyn(&shape), values).expect("blocks of one shape")
}
