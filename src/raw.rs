//! Raw data beside the labels: the EM intensities a training sample pairs with its targets and
//! mask, read at the same world ROI (optionally grown by a context, as U-Nets need).
//!
//! A raw source is a zarr/N5 array, or an OME-NGFF multiscale group, locally or at a URL
//! ([`crate::node::Node::open`]). From a multiscale group [`RawVolume::open`] picks the level
//! whose voxel size equals the labels' (within 1e-6 of a unit); a single array must have that
//! voxel size itself. annomask does not resample: when no level matches, opening fails with
//! [`RawError::NoLevel`], listing the voxel sizes there are. A ROI whose corner is not on the raw
//! voxel grid fails with [`RawError::Misaligned`]. Reads outside the raw array are zero-padded
//! ([`RawVolume::read_padded`]). Raw arrays of the integer dtypes are read (`uint8`, `uint16`,
//! `int16`, ...: EM data); floats are refused by name.
//!
//! ```
//! use annomask::{raw::RawVolume, remote::StoreOptions, synth, Coordinate, Roi, ZarrFormat};
//! let dir = tempfile::tempdir()?;
//! // Any integer array will do as raw data here: the demo labels (8 nm voxels).
//! let crop = synth::write_demo_crop(dir.path(), 16, ZarrFormat::V3)?;
//! let raw = RawVolume::open(&crop.to_string_lossy(), &Coordinate::splat(8.0, 3), StoreOptions::default())?;
//! // 4 voxels of context on each side of a 16^3 ROI at the array's corner: 24^3, zero outside.
//! let block = raw.read_roi(&Roi::new([-32.0; 3], [192.0; 3]))?;
//! assert_eq!(block.shape(), &[24, 24, 24]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use ndarray::{ArrayD, IxDyn, Slice};
use serde_json::Value;
use thiserror::Error;

use crate::error::Result;
use crate::geometry::{Coordinate, Geometry, Roi, VoxelRegion};
use crate::label::{LabelArray, LabelDtype};
use crate::node::Node;
use crate::remote::StoreOptions;
use crate::volume::LabelVolume;
use crate::with_labels;

/// Why raw data cannot be read where the labels are.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RawError {
    /// No level of the raw data has the labels' voxel size.
    #[error(
        "{path}: no raw level has the labels' voxel size {wanted}; there are {levels} (annomask does not resample: pick raw data, or a label scale, with the same voxel size)"
    )]
    NoLevel {
        /// The raw array or multiscale group.
        path: String,
        /// The labels' voxel size.
        wanted: String,
        /// The levels found, as `path: voxel size`.
        levels: String,
    },
    /// The raw data has another number of axes than the labels.
    #[error("{path}: raw data has {raw} spatial axes, the labels have {labels}")]
    Dims {
        /// The raw array.
        path: String,
        /// Its axes.
        raw: usize,
        /// The labels' axes.
        labels: usize,
    },
    /// A ROI does not start on the raw voxel grid.
    #[error(
        "{path}: ROI {roi} is not on the raw voxel grid (voxel size {voxel_size}, offset {offset})"
    )]
    Misaligned {
        /// The raw array.
        path: String,
        /// The ROI asked for.
        roi: String,
        /// The raw voxel size.
        voxel_size: String,
        /// The raw offset.
        offset: String,
    },
}

/// An opened raw array at the labels' voxel size; see the module docs.
#[derive(Debug)]
pub struct RawVolume {
    volume: LabelVolume,
}

impl RawVolume {
    /// Opens the raw data at `location` (a path or URL of an array or of an OME-NGFF multiscale
    /// group) at the level whose voxel size is `voxel_size`.
    pub fn open(location: &str, voxel_size: &Coordinate, options: StoreOptions) -> Result<Self> {
        Self::open_node(&Node::open(location, options)?, voxel_size)
    }

    /// Opens the raw data at `node`; see [`RawVolume::open`].
    pub fn open_node(node: &Node, voxel_size: &Coordinate) -> Result<Self> {
        let levels = multiscale_levels(node);
        let candidates: Vec<Node> = match &levels {
            Some(paths) => paths.iter().map(|p| node.child(p)).collect(),
            None => vec![node.clone()],
        };
        let mut seen = Vec::new();
        for candidate in candidates {
            let volume = LabelVolume::open_node(&candidate)?;
            let dims = volume.geometry().dims();
            if dims != voxel_size.dims() {
                return Err(RawError::Dims {
                    path: volume.name().to_string(),
                    raw: dims,
                    labels: voxel_size.dims(),
                }
                .into());
            }
            if same_size(&volume.geometry().voxel_size, voxel_size) {
                return Ok(Self { volume });
            }
            seen.push(format!(
                "{}: {}",
                candidate.last_name(),
                volume.geometry().voxel_size
            ));
        }
        Err(RawError::NoLevel {
            path: node.name().to_string(),
            wanted: voxel_size.to_string(),
            levels: if seen.is_empty() {
                "no levels".into()
            } else {
                seen.join(", ")
            },
        }
        .into())
    }

    /// The raw array (the chosen level).
    pub fn volume(&self) -> &LabelVolume {
        &self.volume
    }

    /// The chosen level's name as errors print it.
    pub fn name(&self) -> &str {
        self.volume.name()
    }

    /// The raw dtype.
    pub fn dtype(&self) -> LabelDtype {
        self.volume.dtype()
    }

    /// Where the raw data lies in the world.
    pub fn geometry(&self) -> &Geometry {
        self.volume.geometry()
    }

    /// Keeps up to `bytes` of decoded raw chunks in memory (as a feeder does for labels).
    pub fn cache_chunks(&self, bytes: u64) {
        self.volume.cache_chunks(bytes);
    }

    /// The voxels of `roi` in the raw grid: start (negative before the array) and shape.
    pub fn voxels_of(&self, roi: &Roi) -> Result<(Vec<i64>, Vec<u64>)> {
        let g = self.geometry();
        let misaligned = || RawError::Misaligned {
            path: self.name().to_string(),
            roi: roi.to_string(),
            voxel_size: g.voxel_size.to_string(),
            offset: g.offset.to_string(),
        };
        if roi.dims() != g.dims() {
            return Err(RawError::Dims {
                path: self.name().to_string(),
                raw: g.dims(),
                labels: roi.dims(),
            }
            .into());
        }
        let start = roi
            .offset()
            .sub(&g.offset)
            .in_voxels(&g.voxel_size)
            .ok_or_else(misaligned)?;
        let shape = roi
            .shape()
            .in_voxels(&g.voxel_size)
            .filter(|s| s.iter().all(|&v| v >= 0))
            .ok_or_else(misaligned)?;
        Ok((start, shape.into_iter().map(|v| v as u64).collect()))
    }

    /// The raw data of a world ROI, zero outside the array.
    pub fn read_roi(&self, roi: &Roi) -> Result<LabelArray> {
        let (start, shape) = self.voxels_of(roi)?;
        self.read_padded(&start, &shape)
    }

    /// The raw voxels `start .. start + shape` (start may be negative, the end past the array),
    /// zero where they lie outside it.
    pub fn read_padded(&self, start: &[i64], shape: &[u64]) -> Result<LabelArray> {
        let full: Vec<usize> = shape.iter().map(|&s| s as usize).collect();
        let inside = clip(start, shape, self.volume.shape());
        let Some((region, at)) = inside else {
            return Ok(zeros(self.dtype(), &full));
        };
        let data = self.volume.read_region(&region)?;
        if region.shape == shape {
            return Ok(data);
        }
        Ok(with_labels!(data, LabelArray, a => paste(a, &full, &at).into()))
    }
}

/// The dataset paths of an OME-NGFF multiscale group (0.4 or 0.5), finest first as listed.
fn multiscale_levels(node: &Node) -> Option<Vec<String>> {
    let attrs = node.attributes()?;
    let multiscales = attrs
        .get("ome")
        .and_then(|o| o.get("multiscales"))
        .or_else(|| attrs.get("multiscales"))?;
    let datasets = multiscales.get(0)?.get("datasets")?.as_array()?;
    Some(
        datasets
            .iter()
            .filter_map(|d| d.get("path").and_then(Value::as_str))
            .map(|p| p.trim_matches('/').to_string())
            .collect(),
    )
}

fn same_size(a: &Coordinate, b: &Coordinate) -> bool {
    a.dims() == b.dims()
        && a.as_slice()
            .iter()
            .zip(b.as_slice())
            .all(|(x, y)| (x - y).abs() <= 1e-6 * y.abs().max(1.0))
}

/// The part of the box `start .. start + shape` inside an array of `bounds`: the region to read
/// and where it goes in the box; `None` when they do not overlap.
pub fn clip(start: &[i64], shape: &[u64], bounds: &[u64]) -> Option<(VoxelRegion, Vec<usize>)> {
    let mut region = VoxelRegion {
        start: Vec::with_capacity(start.len()),
        shape: Vec::with_capacity(start.len()),
    };
    let mut at = Vec::with_capacity(start.len());
    for ((&s, &len), &bound) in start.iter().zip(shape).zip(bounds) {
        let begin = s.clamp(0, bound as i64);
        let end = (s + len as i64).clamp(0, bound as i64);
        if end <= begin {
            return None;
        }
        region.start.push(begin as u64);
        region.shape.push((end - begin) as u64);
        at.push((begin - s) as usize);
    }
    Some((region, at))
}

/// `part` placed at `at` in a zeroed array of `shape`.
pub fn paste<T: Clone + Default>(part: ArrayD<T>, shape: &[usize], at: &[usize]) -> ArrayD<T> {
    let mut full = ArrayD::from_elem(IxDyn(shape), T::default());
    let lens = part.shape().to_vec();
    full.slice_each_axis_mut(|ax| {
        let i = ax.axis.index();
        Slice::from(at[i]..at[i] + lens[i])
    })
    .assign(&part);
    full
}

fn zeros(dtype: LabelDtype, shape: &[usize]) -> LabelArray {
    let n = shape.iter().product();
    LabelArray::from_ids(dtype, shape, vec![0; n]).expect("0 fits every dtype")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_inside_across_and_outside() {
        let (r, at) = clip(&[2, 3], &[4, 4], &[10, 10]).unwrap();
        assert_eq!((r.start, r.shape, at), (vec![2, 3], vec![4, 4], vec![0, 0]));
        let (r, at) = clip(&[-2, 8], &[4, 4], &[10, 10]).unwrap();
        assert_eq!((r.start, r.shape, at), (vec![0, 8], vec![2, 2], vec![2, 0]));
        assert!(clip(&[-4, 0], &[4, 4], &[10, 10]).is_none());
        assert!(clip(&[10, 0], &[4, 4], &[10, 10]).is_none());
    }

    #[test]
    fn paste_places_the_part() {
        let part = ArrayD::from_shape_vec(IxDyn(&[2, 2]), vec![1u8, 2, 3, 4]).unwrap();
        let full = paste(part, &[3, 4], &[1, 2]);
        assert_eq!(
            full.iter().copied().collect::<Vec<_>>(),
            [0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 3, 4]
        );
    }

    #[test]
    fn same_size_tolerates_rounding_only() {
        let a = Coordinate::new(vec![4.0, 4.0]);
        assert!(same_size(&a, &Coordinate::new(vec![4.000_000_1, 4.0])));
        assert!(!same_size(&a, &Coordinate::new(vec![8.0, 4.0])));
    }
}
