//! [`MissingAnnotationsMask`]: the array API of SPEC 4, mirroring DaCapo's
//! `MissingAnnotationsMask`. The mask is computed on request for a ROI; nothing is stored.

use std::path::Path;

use ndarray::{ArrayD, IxDyn};
use serde_json::{Map, Value};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::geometry::{Coordinate, Roi, VoxelRegion};
use crate::groupings::Groupings;
use crate::label::LabelArray;
use crate::metadata::LabelMetadata;
use crate::options::MaskOptions;
use crate::plan::MaskPlan;
use crate::volume::LabelVolume;

/// The source data of one region, read and ready to be computed.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum SourceBlock {
    /// Labels of a label array.
    Labels(LabelArray),
}

impl SourceBlock {
    /// Shape of the region in voxels.
    pub fn shape(&self) -> &[usize] {
        match self {
            SourceBlock::Labels(l) => l.shape(),
        }
    }
}

/// A read-only, computed-on-request `u8` array of shape `(channels, *spatial)`, axes
/// `["c"] + source axes`: 1 where channel `c` may be trained, 0 where not.
///
/// ```
/// use annomask::{synth, EngineChoice, Groupings, MaskOptions, MissingAnnotationsMask};
/// let dir = tempfile::tempdir()?;
/// let crop = synth::write_demo_crop(dir.path(), 32, annomask::ZarrFormat::V3)?;
/// let mask = MissingAnnotationsMask::open(&crop, synth::demo_groupings(),
///     MaskOptions::default().engine(EngineChoice::Cpu))?;
/// assert_eq!(mask.axes(), ["c", "z", "y", "x"]);
/// let data = mask.get(&mask.roi())?;
/// assert_eq!(data.shape(), &[mask.num_channels(), 32, 32, 32]);
/// assert!(mask.data().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MissingAnnotationsMask {
    name: String,
    volume: LabelVolume,
    metadata: LabelMetadata,
    groupings: Groupings,
    plan: MaskPlan,
    options: MaskOptions,
    engine: Engine,
}

impl std::fmt::Debug for MissingAnnotationsMask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MissingAnnotationsMask")
            .field("name", &self.name)
            .field("volume", &self.volume)
            .field("plan", &self.plan)
            .field("engine", &self.engine.name())
            .finish_non_exhaustive()
    }
}

impl MissingAnnotationsMask {
    /// Opens the label array at `path`, reads its annotation metadata and builds the plan.
    pub fn open(
        path: impl AsRef<Path>,
        groupings: Groupings,
        options: MaskOptions,
    ) -> Result<Self> {
        let volume = LabelVolume::open(path)?;
        let engine = Engine::select(options.engine)?;
        Self::from_volume(volume, groupings, options, engine)
    }

    /// A mask over an opened volume with a chosen engine (shares one GPU context between masks).
    pub fn from_volume(
        volume: LabelVolume,
        groupings: Groupings,
        options: MaskOptions,
        engine: Engine,
    ) -> Result<Self> {
        let metadata = LabelMetadata::from_attributes(
            volume.name(),
            volume.attributes(),
            options.allow_missing_metadata,
        )?;
        let plan = MaskPlan::from_metadata(&groupings, &metadata, &options);
        let source = volume.path().file_name().map_or_else(
            || volume.name().to_string(),
            |f| f.to_string_lossy().into_owned(),
        );
        Ok(Self {
            name: format!("{source}_missing_annotations_mask"),
            volume,
            metadata,
            groupings,
            plan,
            options,
            engine,
        })
    }

    /// The mask's name: `<label array name>_missing_annotations_mask`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `["c"]` followed by the source's axis names.
    pub fn axes(&self) -> Vec<String> {
        std::iter::once("c".to_string())
            .chain(self.volume.geometry().axis_names.iter().cloned())
            .collect()
    }

    /// Number of spatial dimensions.
    pub fn dims(&self) -> usize {
        self.volume.geometry().dims()
    }

    /// Voxel size in world units.
    pub fn voxel_size(&self) -> &Coordinate {
        &self.volume.geometry().voxel_size
    }

    /// The source's ROI in world units.
    pub fn roi(&self) -> Roi {
        self.volume.geometry().roi()
    }

    /// Always false: the mask is computed, not stored.
    pub fn writable(&self) -> bool {
        false
    }

    /// Always `uint8`.
    pub fn dtype(&self) -> &'static str {
        "uint8"
    }

    /// Number of channels.
    pub fn num_channels(&self) -> usize {
        self.plan.num_channels()
    }

    /// Channel names, in order.
    pub fn channels(&self) -> Vec<&str> {
        self.groupings.names().collect()
    }

    /// The source array's attributes.
    pub fn attrs(&self) -> &Map<String, Value> {
        self.volume.attributes()
    }

    /// Always an error: there is no stored data, use [`MissingAnnotationsMask::get`].
    pub fn data(&self) -> Result<ArrayD<u8>> {
        Err(Error::NoStoredData {
            name: self.name.clone(),
        })
    }

    /// The mask inside `roi` (voxel-aligned, inside [`MissingAnnotationsMask::roi`]): shape
    /// `(channels, *roi.shape / voxel_size)`. DaCapo's `__getitem__`.
    pub fn get(&self, roi: &Roi) -> Result<ArrayD<u8>> {
        let region = self
            .volume
            .geometry()
            .voxel_region(self.volume.name(), roi)?;
        self.get_region(&region)
    }

    /// The mask of a region given in voxels.
    pub fn get_region(&self, region: &VoxelRegion) -> Result<ArrayD<u8>> {
        let block = self.read_block(region)?;
        let mut shape = vec![self.num_channels()];
        shape.extend_from_slice(block.shape());
        let mut out = vec![0u8; shape.iter().product()];
        self.compute_block(&block, &mut out)?;
        Ok(ArrayD::from_shape_vec(IxDyn(&shape), out).expect("shape matches the buffer"))
    }

    /// Reads the source data of a region (the I/O half of [`MissingAnnotationsMask::get_region`];
    /// pipelines run it on another thread than [`MissingAnnotationsMask::compute_block`]).
    pub fn read_block(&self, region: &VoxelRegion) -> Result<SourceBlock> {
        Ok(SourceBlock::Labels(self.volume.read_region(region)?))
    }

    /// Computes the mask of a block read by [`MissingAnnotationsMask::read_block`] into `out`,
    /// channel-major: `num_channels() * voxels` bytes, channel `c` of voxel `i` (C order within
    /// the block) at `c * voxels + i`.
    pub fn compute_block(&self, block: &SourceBlock, out: &mut [u8]) -> Result<()> {
        match block {
            SourceBlock::Labels(labels) => self.engine.compute_into(
                &self.plan,
                labels.as_slice(),
                labels.shape(),
                out,
                self.options.verify,
            ),
        }
    }

    /// Shape of the source in voxels.
    pub fn shape(&self) -> &[u64] {
        self.volume.shape()
    }

    /// Chunk shape of the source in voxels (blockwise pipelines align to it).
    pub fn chunk_shape(&self) -> &[u64] {
        self.volume.chunk_shape()
    }

    /// The plan both engines execute.
    pub fn plan(&self) -> &MaskPlan {
        &self.plan
    }

    /// The annotation metadata.
    pub fn metadata(&self) -> &LabelMetadata {
        &self.metadata
    }

    /// The groupings.
    pub fn groupings(&self) -> &Groupings {
        &self.groupings
    }

    /// The options it was opened with.
    pub fn options(&self) -> &MaskOptions {
        &self.options
    }

    /// The label source.
    pub fn volume(&self) -> &LabelVolume {
        &self.volume
    }

    /// The engine that computes it.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}
