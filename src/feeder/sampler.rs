//! The ROI sequence of a feeder: which crop, where, and which augmentation, for every sample of
//! every batch. Batch `b` is drawn from its own generator, seeded by `(seed, b)` (SplitMix64),
//! so any batch can be drawn without the ones before it: shards of the sequence (one per data
//! loader worker) and a feeder resumed at batch `b` see exactly the batches a single feeder
//! would.

use std::collections::VecDeque;

use super::{CropWeighting, FeederConfig};
use crate::geometry::VoxelRegion;
use crate::raw::clip;
use crate::synth::splitmix64;

/// One sample: the crop, the ROI's first voxel in it (negative, or the ROI ending past the crop,
/// where the crop is smaller than the ROI: the feeder pads), and the augmentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Draw {
    /// Index of the crop.
    pub crop: usize,
    /// First voxel of the ROI in crop voxels, per axis.
    pub start: Vec<i64>,
    /// Per spatial axis, whether it is mirrored (before the permutation).
    pub flips: Vec<bool>,
    /// The permutation: output axis `k` is input axis `order[k]`.
    pub order: Vec<usize>,
}

impl Draw {
    /// Whether the draw mirrors or permutes any axis.
    pub fn augments(&self) -> bool {
        self.flips.iter().any(|&f| f) || self.order.iter().enumerate().any(|(k, &o)| k != o)
    }
}

/// A counter-based generator: SplitMix64 from a state seeded by `(seed, batch)`.
struct Rng(u64);

impl Rng {
    fn for_batch(seed: u64, batch: usize) -> Self {
        Self(splitmix64(splitmix64(seed) ^ batch as u64))
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        splitmix64(self.0)
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
}

/// Draws the ROIs of a feeder's batches; see the module docs.
#[derive(Clone, Debug)]
pub struct RoiSampler {
    seed: u64,
    shapes: Vec<Vec<u64>>,
    cumulative: Vec<u64>,
    roi_shape: Vec<u64>,
    batch_size: usize,
    mirror: Vec<usize>,
    transpose: Vec<usize>,
    /// For [`RoiSampler::next_region`]: the next batch and what is left of the current one.
    next_batch: usize,
    pending: VecDeque<(usize, VoxelRegion)>,
}

impl RoiSampler {
    /// A sampler over crops of `shapes` (voxels) with the config's weighting, where
    /// [`CropWeighting::ByClass`] counts every channel as present in every crop (uniform); see
    /// [`RoiSampler::with_presence`].
    pub fn new(shapes: Vec<Vec<u64>>, config: &FeederConfig) -> Self {
        Self::with_presence(shapes, &[], config)
    }

    /// A sampler whose [`CropWeighting::ByClass`] weighting uses `presence[crop][channel]`
    /// (empty: every channel present everywhere). Each channel gets an equal share of the
    /// draws, split evenly between the crops where it is present; crops where no channel is
    /// present are drawn only when no crop has one.
    pub fn with_presence(
        shapes: Vec<Vec<u64>>,
        presence: &[Vec<bool>],
        config: &FeederConfig,
    ) -> Self {
        let weights = crop_weights(&shapes, presence, config.weighting);
        let mut total = 0u64;
        let cumulative = weights
            .iter()
            .map(|&w| {
                total = total.saturating_add(w);
                total
            })
            .collect();
        Self {
            seed: config.seed,
            shapes,
            cumulative,
            roi_shape: config.roi_shape.clone(),
            batch_size: config.batch_size.max(1),
            mirror: config.mirror.clone(),
            transpose: config.transpose.clone(),
            next_batch: 0,
            pending: VecDeque::new(),
        }
    }

    /// The samples of batch `index`, a pure function of the seed and `index`.
    pub fn batch(&self, index: usize) -> Vec<Draw> {
        let mut rng = Rng::for_batch(self.seed, index);
        (0..self.batch_size).map(|_| self.draw(&mut rng)).collect()
    }

    fn draw(&self, rng: &mut Rng) -> Draw {
        let total = *self.cumulative.last().expect("at least one crop");
        let pick = rng.below(total);
        let crop = self.cumulative.partition_point(|&c| c <= pick);
        let start = self.shapes[crop]
            .iter()
            .zip(&self.roi_shape)
            .map(|(&len, &roi)| match len >= roi {
                true => rng.below(len - roi + 1) as i64,
                // The crop lies somewhere inside the ROI.
                false => -(rng.below(roi - len + 1) as i64),
            })
            .collect();
        let dims = self.roi_shape.len();
        let mut flips = vec![false; dims];
        for &axis in &self.mirror {
            flips[axis] = rng.below(2) == 1;
        }
        let mut order: Vec<usize> = (0..dims).collect();
        // Fisher-Yates over the transposed axes' positions.
        for i in (1..self.transpose.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            order.swap(self.transpose[i], self.transpose[j]);
        }
        Draw {
            crop,
            start,
            flips,
            order,
        }
    }

    /// The next ROI of the sequence, batch after batch: `(crop, the ROI's voxels inside the
    /// crop)`.
    pub fn next_region(&mut self) -> (usize, VoxelRegion) {
        loop {
            if let Some(next) = self.pending.pop_front() {
                return next;
            }
            let draws = self.batch(self.next_batch);
            self.next_batch += 1;
            for d in draws {
                let (region, _) = clip(&d.start, &self.roi_shape, &self.shapes[d.crop])
                    .expect("a drawn ROI overlaps its crop");
                self.pending.push_back((d.crop, region));
            }
        }
    }
}

/// Integer draw weights per crop; see [`RoiSampler::with_presence`].
fn crop_weights(shapes: &[Vec<u64>], presence: &[Vec<bool>], weighting: CropWeighting) -> Vec<u64> {
    match weighting {
        CropWeighting::Uniform => vec![1; shapes.len()],
        CropWeighting::BySize => shapes
            .iter()
            .map(|s| s.iter().product::<u64>().max(1))
            .collect(),
        CropWeighting::ByClass => {
            let channels = presence.iter().map(Vec::len).max().unwrap_or(0);
            let crops_with = |c: usize| presence.iter().filter(|p| p.get(c) == Some(&true)).count();
            let share: Vec<u64> = (0..channels)
                .map(|c| match crops_with(c) {
                    0 => 0,
                    n => (1u64 << 32) / n as u64,
                })
                .collect();
            let weights: Vec<u64> = (0..shapes.len())
                .map(|crop| {
                    presence.get(crop).map_or(0, |p| {
                        p.iter()
                            .zip(&share)
                            .filter(|(present, _)| **present)
                            .map(|(_, s)| s)
                            .sum()
                    })
                })
                .collect();
            match weights.iter().any(|&w| w > 0) {
                true => weights,
                false => vec![1; shapes.len()],
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(roi: Vec<u64>) -> FeederConfig {
        FeederConfig::new(roi).seed(3).batch_size(4)
    }

    #[test]
    fn batches_are_a_pure_function_of_seed_and_index() {
        let s = RoiSampler::new(vec![vec![40, 40], vec![20, 30]], &config(vec![8, 8]));
        assert_eq!(s.batch(5), s.batch(5));
        assert_ne!(s.batch(5), s.batch(6));
        let other = RoiSampler::new(
            vec![vec![40, 40], vec![20, 30]],
            &config(vec![8, 8]).seed(4),
        );
        assert_ne!(s.batch(5), other.batch(5));
    }

    #[test]
    fn rois_stay_in_crops_or_hold_small_crops() {
        let shapes = vec![vec![40, 5], vec![8, 8]];
        let s = RoiSampler::new(shapes.clone(), &config(vec![8, 8]));
        for b in 0..200 {
            for d in s.batch(b) {
                for (axis, (&start, &len)) in d.start.iter().zip(&shapes[d.crop]).enumerate() {
                    let end = start + 8;
                    match len >= 8 {
                        true => assert!(start >= 0 && end <= len as i64, "axis {axis}"),
                        false => assert!(start <= 0 && end >= len as i64, "axis {axis}"),
                    }
                }
            }
        }
    }

    #[test]
    fn next_region_follows_the_batches() {
        let shapes = vec![vec![40, 40]];
        let mut s = RoiSampler::new(shapes, &config(vec![8, 8]));
        let first: Vec<_> = (0..8).map(|_| s.next_region()).collect();
        let batches: Vec<_> = s.batch(0).into_iter().chain(s.batch(1)).collect();
        for ((crop, region), d) in first.iter().zip(&batches) {
            assert_eq!(*crop, d.crop);
            assert_eq!(
                region.start,
                d.start.iter().map(|&v| v as u64).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn augmentations_cover_flips_and_permutations() {
        let mut c = config(vec![8, 8, 8]);
        c.mirror = vec![0, 2];
        c.transpose = vec![1, 2];
        let s = RoiSampler::new(vec![vec![20; 3]], &c);
        let draws: Vec<Draw> = (0..100).flat_map(|b| s.batch(b)).collect();
        assert!(draws.iter().all(|d| !d.flips[1] && d.order[0] == 0));
        assert!(draws.iter().any(|d| d.flips[0]) && draws.iter().any(|d| d.flips[2]));
        assert!(draws.iter().any(|d| d.order == [0, 2, 1]));
        assert!(draws.iter().any(|d| d.order == [0, 1, 2]));
    }

    #[test]
    fn class_weighting_shares_draws_between_channels() {
        // Channel 0 present in crops 0 and 1; channel 1 only in crop 2; crop 3 has none.
        let presence = vec![
            vec![true, false],
            vec![true, false],
            vec![false, true],
            vec![false, false],
        ];
        let w = crop_weights(&vec![vec![1]; 4], &presence, CropWeighting::ByClass);
        assert_eq!(w[0], w[1]);
        assert_eq!(w[2], 2 * w[0]);
        assert_eq!(w[3], 0);
        let none = crop_weights(
            &vec![vec![1]; 2],
            &[vec![false], vec![false]],
            CropWeighting::ByClass,
        );
        assert_eq!(none, [1, 1]);
    }
}
