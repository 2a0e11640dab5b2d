//! The training feeder: batches of `(labels?, targets, mask)` for random voxel-aligned ROIs of
//! one or more crops, computed in one fused pass per ROI (on the GPU when the crops' engine is
//! one), prefetched by a background thread into a bounded queue, deterministic for a seed.
//!
//! ```
//! use std::sync::Arc;
//! use annomask::{synth, feeder::{Feeder, FeederConfig}, MaskOptions, MissingAnnotationsMask, ZarrFormat};
//! let dir = tempfile::tempdir()?;
//! let crop = synth::write_demo_crop(dir.path(), 32, ZarrFormat::V3)?;
//! let mask = Arc::new(MissingAnnotationsMask::open(&crop, synth::demo_groupings(), MaskOptions::default())?);
//! let config = FeederConfig::new(vec![16, 16, 16]).seed(7).batch_size(2).batches(3);
//! let mut seen = 0;
//! for batch in Feeder::new(vec![mask], config)? {
//!     let batch = batch?;
//!     assert_eq!(batch.mask.shape(), &[2, 5, 16, 16, 16]);   // (batch, channel, z, y, x)
//!     assert_eq!(batch.targets.shape(), batch.mask.shape());
//!     seen += 1;
//! }
//! assert_eq!(seen, 3);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use ndarray::{ArrayD, IxDyn};

use crate::error::{Error, Result};
use crate::geometry::{Coordinate, Roi, VoxelRegion};
use crate::mask::MissingAnnotationsMask;
use crate::source::SourceBlock;
use crate::synth::splitmix64;

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
    /// Stop after this many batches (default: never).
    pub batches: Option<usize>,
    /// Bytes of decoded chunks kept in memory, split evenly between the crops (default
    /// 1 GiB; 0: none). Random ROIs keep coming back to the same chunks; with the cache each
    /// is decoded once instead of once per ROI that touches it.
    pub chunk_cache: u64,
}

impl FeederConfig {
    /// Defaults for ROIs of `roi_shape` voxels: seed 0, batches of 1, prefetch 4, uniform crops,
    /// no labels, endless, a 1 GiB chunk cache.
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

    /// Stops after `batches` batches.
    pub fn batches(mut self, batches: usize) -> Self {
        self.batches = Some(batches);
        self
    }
}

/// Where one ROI of a batch came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Index of the crop in the feeder's list.
    pub crop: usize,
    /// The ROI in voxels of that crop.
    pub region: VoxelRegion,
    /// The ROI in world units.
    pub roi: Roi,
}

/// One batch: `targets` and `mask` of shape `(batch, channels, *roi_shape)`.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Position in the sequence (0, 1, ...).
    pub index: usize,
    /// Where each ROI came from.
    pub samples: Vec<Sample>,
    /// The source data of each ROI, when asked for.
    pub labels: Option<Vec<SourceBlock>>,
    /// Per-channel binary targets.
    pub targets: ArrayD<u8>,
    /// The missing-annotation mask: 1 where the target may be trained.
    pub mask: ArrayD<u8>,
}

/// The deterministic random number generator of the ROI sequence (SplitMix64).
#[derive(Clone, Debug)]
pub struct RoiSampler {
    state: u64,
    shapes: Vec<Vec<u64>>,
    cumulative: Vec<u64>,
    roi_shape: Vec<u64>,
}

impl RoiSampler {
    /// A sampler over crops of `shapes` (voxels). Every crop must hold the ROI.
    pub fn new(shapes: Vec<Vec<u64>>, config: &FeederConfig) -> Self {
        let mut total = 0u64;
        let cumulative = shapes
            .iter()
            .map(|s| {
                total += match config.weighting {
                    CropWeighting::Uniform => 1,
                    CropWeighting::BySize => s.iter().product::<u64>().max(1),
                };
                total
            })
            .collect();
        Self {
            state: config.seed,
            shapes,
            cumulative,
            roi_shape: config.roi_shape.clone(),
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        splitmix64(self.state)
    }

    /// A uniform draw in `0..n` (`n > 0`), without modulo bias.
    fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let x = self.next_u64();
            if x < zone {
                return x % n;
            }
        }
    }

    /// The next ROI: `(crop, region)`.
    pub fn next_region(&mut self) -> (usize, VoxelRegion) {
        let total = *self.cumulative.last().expect("at least one crop");
        let pick = self.below(total);
        let crop = self.cumulative.partition_point(|&c| c <= pick);
        let start = self.shapes[crop]
            .clone()
            .iter()
            .zip(self.roi_shape.clone())
            .map(|(&len, roi)| self.below(len - roi + 1))
            .collect();
        let region = VoxelRegion {
            start,
            shape: self.roi_shape.clone(),
        };
        (crop, region)
    }
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
    /// must have the same channels and as many axes as `config.roi_shape`, and each must hold
    /// the ROI.
    pub fn new(crops: Vec<Arc<MissingAnnotationsMask>>, config: FeederConfig) -> Result<Self> {
        validate(&crops, &config)?;
        if config.chunk_cache > 0 {
            let each = config.chunk_cache / crops.len() as u64;
            for crop in &crops {
                crop.cache_chunks(each);
            }
        }
        let (sender, receiver) = sync_channel(config.prefetch.max(1));
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let worker = std::thread::Builder::new()
            .name("annomask-feeder".into())
            .spawn(move || {
                // On the process's own pool in a forked child (see `crate::threads`).
                crate::threads::install(|| produce(&crops, &config, &sender, &flag))
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

fn validate(crops: &[Arc<MissingAnnotationsMask>], config: &FeederConfig) -> Result<()> {
    let Some(first) = crops.first() else {
        return Err(feeder_error("<feeder>", "no crops given".into()));
    };
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
        let shape = crop.shape();
        let fits = shape.len() == config.roi_shape.len()
            && shape
                .iter()
                .zip(&config.roi_shape)
                .all(|(&s, &r)| r >= 1 && r <= s);
        if !fits {
            return Err(feeder_error(
                crop.name(),
                format!(
                    "ROI shape {:?} (voxels) does not fit the crop's shape {shape:?}",
                    config.roi_shape
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
    config: &FeederConfig,
    sender: &SyncSender<Result<Batch>>,
    stop: &AtomicBool,
) {
    let shapes = crops.iter().map(|c| c.shape().to_vec()).collect();
    let mut sampler = RoiSampler::new(shapes, config);
    let mut index = 0;
    while config.batches.is_none_or(|b| index < b) && !stop.load(Ordering::Relaxed) {
        let regions: Vec<(usize, VoxelRegion)> = (0..config.batch_size)
            .map(|_| sampler.next_region())
            .collect();
        let batch = compute_batch(crops, config, index, regions);
        let failed = batch.is_err();
        if sender.send(batch).is_err() || failed {
            return;
        }
        index += 1;
    }
}

/// Reads and computes one batch (also usable without the thread, e.g. to check the feeder).
pub fn compute_batch(
    crops: &[Arc<MissingAnnotationsMask>],
    config: &FeederConfig,
    index: usize,
    regions: Vec<(usize, VoxelRegion)>,
) -> Result<Batch> {
    let channels = crops[0].num_channels();
    let voxels: u64 = config.roi_shape.iter().product();
    let per_sample = channels * voxels as usize;
    let mut shape = vec![regions.len(), channels];
    shape.extend(config.roi_shape.iter().map(|&s| s as usize));
    let mut mask = vec![0u8; per_sample * regions.len()];
    let mut targets = vec![0u8; per_sample * regions.len()];
    let mut labels = config.with_labels.then(Vec::new);
    let mut samples = Vec::with_capacity(regions.len());
    for (i, (crop, region)) in regions.into_iter().enumerate() {
        let source = &crops[crop];
        let block = source.read_block(&region)?;
        let range = i * per_sample..(i + 1) * per_sample;
        source.compute_block_with_targets(&block, &mut mask[range.clone()], &mut targets[range])?;
        let geometry = source.volume().geometry();
        let start = Coordinate::new(region.start.iter().map(|&s| s as f64).collect::<Vec<_>>());
        let extent = Coordinate::new(region.shape.iter().map(|&s| s as f64).collect::<Vec<_>>());
        let roi = Roi::new(
            geometry.offset.add(&start.mul(&geometry.voxel_size)),
            extent.mul(&geometry.voxel_size),
        );
        if let Some(l) = labels.as_mut() {
            l.push(block);
        }
        samples.push(Sample { crop, region, roi });
    }
    let array = |v: Vec<u8>| ArrayD::from_shape_vec(IxDyn(&shape), v).expect("shape matches");
    Ok(Batch {
        index,
        samples,
        labels,
        targets: array(targets),
        mask: array(mask),
    })
}
