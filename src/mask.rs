//! [`MissingAnnotationsMask`]: the array API of SPEC 4, mirroring DaCapo's
//! `MissingAnnotationsMask`. The mask is computed on request for a ROI; nothing is stored.
//!
//! Two sources share the API: a label array with a `labels` attribute (SPEC 1.1–1.3, grouped
//! by [`Groupings`] of ids) and a CellMap crop group (SPEC 1.4, grouped by [`ClassGroupings`] of
//! class names). [`MissingAnnotationsMask::open`] tells them apart: a zarr group with a
//! `cellmap` attribute is a crop group, anything else is opened as a label array.

use std::fmt;
use std::path::Path;

use ndarray::{ArrayD, IxDyn};
use serde_json::{Map, Value};

use crate::budget::MemoryBudget;
use crate::cellmap::{CropGroup, CropOptions, CropPlan};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::geometry::{Coordinate, Roi, VoxelRegion};
use crate::groupings::{ChannelGroupings, ClassGroupings, Groupings};
use crate::label::{LabelArray, LabelSlice};
use crate::metadata::LabelMetadata;
use crate::options::MaskOptions;
use crate::plan::MaskPlan;
use crate::volume::LabelVolume;

/// The class arrays of one region of a crop group: one per class the plan reads
/// ([`CropPlan::classes`], same order), each of `shape`.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassBlock {
    /// Shape of the region in voxels (also when no class is read).
    pub shape: Vec<usize>,
    /// The values of each class read, in plan order.
    pub classes: Vec<LabelArray>,
}

/// The source data of one region, read and ready to be computed.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum SourceBlock {
    /// Labels of a label array.
    Labels(LabelArray),
    /// Class arrays of a crop group.
    Classes(ClassBlock),
}

impl SourceBlock {
    /// Shape of the region in voxels.
    pub fn shape(&self) -> &[usize] {
        match self {
            SourceBlock::Labels(l) => l.shape(),
            SourceBlock::Classes(c) => &c.shape,
        }
    }
}

/// The plan of a mask, of either source; printable.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PlanRef<'a> {
    /// The plan of a label array (SPEC 2).
    Labels(&'a MaskPlan),
    /// The plan of a crop group (SPEC 1.4).
    Crop(&'a CropPlan),
}

impl PlanRef<'_> {
    /// Number of channels.
    pub fn num_channels(&self) -> usize {
        match self {
            PlanRef::Labels(p) => p.num_channels(),
            PlanRef::Crop(p) => p.num_channels(),
        }
    }

    /// Whether channel `c` is 0 everywhere.
    pub fn zeroed(&self, c: usize) -> bool {
        match self {
            PlanRef::Labels(p) => p.zeroed(c),
            PlanRef::Crop(p) => p.zeroed(c),
        }
    }

    /// Per channel, the first channel whose mask is the same by construction, or `None` for a
    /// zeroed channel (see [`MaskPlan::first_equal_channels`], [`CropPlan::first_equal_channels`]).
    pub fn first_equal_channels(&self) -> Vec<Option<usize>> {
        match self {
            PlanRef::Labels(p) => p.first_equal_channels(),
            PlanRef::Crop(p) => p.first_equal_channels(),
        }
    }
}

impl fmt::Display for PlanRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanRef::Labels(p) => p.fmt(f),
            PlanRef::Crop(p) => p.fmt(f),
        }
    }
}

/// What a mask computes from (boxed: a mask holds one, and the two differ much in size).
enum Source {
    /// A label array with its metadata.
    Labels(Box<LabelSource>),
    /// A crop group.
    Crop(Box<CropSource>),
}

/// A label array, its metadata and plan.
struct LabelSource {
    volume: LabelVolume,
    metadata: LabelMetadata,
    groupings: Groupings,
    plan: MaskPlan,
}

/// A crop group, its plan and the class arrays it reads.
struct CropSource {
    crop: CropGroup,
    groupings: ClassGroupings,
    plan: CropPlan,
    scale: String,
    /// The arrays of `plan.classes()`, in order; when the plan reads none, the array of the
    /// crop's first class, for the geometry alone.
    volumes: Vec<LabelVolume>,
}

impl CropSource {
    /// The arrays the plan reads.
    fn read_volumes(&self) -> &[LabelVolume] {
        &self.volumes[..self.plan.classes().len()]
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
///
/// A CellMap crop group opens the same way, with groupings by class name; it also has targets:
///
/// ```
/// use annomask::{cellmap::synth, EngineChoice, MaskOptions, MissingAnnotationsMask, ZarrFormat};
/// let dir = tempfile::tempdir()?;
/// let crop = synth::write_demo_crop(dir.path(), 16, ZarrFormat::V2)?;
/// let mask = MissingAnnotationsMask::open(&crop, synth::demo_groupings(),
///     MaskOptions::default().engine(EngineChoice::Cpu))?;
/// assert_eq!(mask.channels(), ["mito", "er", "mito_instances"]);
/// println!("{}", mask.plan()); // er is zeroed: the crop lacks er_lum
/// let (m, t) = mask.get_with_targets(&mask.roi())?;
/// assert_eq!(m.shape(), &[3, 16, 16, 16]);
/// assert!(m.index_axis(ndarray::Axis(0), 1).iter().all(|&v| v == 0));
/// assert!(ndarray::Zip::from(&m).and(&t).all(|&m, &t| m <= 1 && t <= 1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MissingAnnotationsMask {
    name: String,
    source: Source,
    options: MaskOptions,
    engine: Engine,
}

impl fmt::Debug for MissingAnnotationsMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("MissingAnnotationsMask");
        d.field("name", &self.name).field("volume", self.volume());
        match &self.source {
            Source::Labels(l) => d.field("plan", &l.plan),
            Source::Crop(c) => d
                .field("crop", &c.crop.name())
                .field("scale", &c.scale)
                .field("plan", &c.plan),
        };
        d.field("engine", &self.engine.name())
            .finish_non_exhaustive()
    }
}

/// The mask's name for a source at `path`: `<last path component>_missing_annotations_mask`.
fn mask_name(path: &Path, fallback: &str) -> String {
    let source = path.file_name().map_or_else(
        || fallback.to_string(),
        |f| f.to_string_lossy().into_owned(),
    );
    format!("{source}_missing_annotations_mask")
}

impl MissingAnnotationsMask {
    /// Opens the label array or crop group at `path` and builds the plan; a crop group is read
    /// at scale `s0` (see [`MissingAnnotationsMask::open_with`]). `groupings` must fit the
    /// source: [`Groupings`] of ids for a label array, [`ClassGroupings`] of class names for a
    /// crop group (else [`GroupingsError::WrongKind`](crate::GroupingsError::WrongKind));
    /// [`ChannelGroupings`] read from a file holds either.
    pub fn open(
        path: impl AsRef<Path>,
        groupings: impl Into<ChannelGroupings>,
        options: MaskOptions,
    ) -> Result<Self> {
        Self::open_with(path, groupings, options, &CropOptions::default())
    }

    /// As [`MissingAnnotationsMask::open`], reading a crop group with `crop_options` (the
    /// scale). A label array ignores them.
    ///
    /// ```
    /// use annomask::{cellmap::synth, CropOptions, EngineChoice, MaskOptions, MissingAnnotationsMask};
    /// let dir = tempfile::tempdir()?;
    /// let crop = synth::write_demo_crop(dir.path(), 16, annomask::ZarrFormat::V3)?;
    /// let mask = MissingAnnotationsMask::open_with(&crop, synth::demo_groupings(),
    ///     MaskOptions::default().engine(EngineChoice::Cpu), &CropOptions::default().scale("s1"))?;
    /// assert_eq!(mask.shape(), &[8, 8, 8]);
    /// assert_eq!(mask.voxel_size().as_slice(), &[16.0, 16.0, 16.0]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_with(
        path: impl AsRef<Path>,
        groupings: impl Into<ChannelGroupings>,
        options: MaskOptions,
        crop_options: &CropOptions,
    ) -> Result<Self> {
        Self::open_source(
            path.as_ref(),
            groupings.into(),
            options,
            crop_options,
            || Engine::select(options.engine),
        )
    }

    /// As [`MissingAnnotationsMask::open_with`], computing with `engine` (`options.engine` is
    /// not used): masks opened with clones of one engine share its GPU device.
    ///
    /// ```
    /// use annomask::{synth, CropOptions, Engine, MaskOptions, MissingAnnotationsMask, ZarrFormat};
    /// let dir = tempfile::tempdir()?;
    /// let crop = synth::write_demo_crop(dir.path(), 8, ZarrFormat::V3)?;
    /// let engine = Engine::cpu();
    /// let mask = MissingAnnotationsMask::open_with_engine(&crop, synth::demo_groupings(),
    ///     MaskOptions::default(), &CropOptions::default(), engine.clone())?;
    /// assert_eq!(mask.engine().name(), "cpu"); // options.engine (auto) is not used
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_with_engine(
        path: impl AsRef<Path>,
        groupings: impl Into<ChannelGroupings>,
        options: MaskOptions,
        crop_options: &CropOptions,
        engine: Engine,
    ) -> Result<Self> {
        Self::open_source(
            path.as_ref(),
            groupings.into(),
            options,
            crop_options,
            || Ok(engine),
        )
    }

    /// Opens a label array or crop group; `engine` is called once the source is known to fit
    /// the groupings (looking for a GPU comes after the cheap checks).
    fn open_source(
        path: &Path,
        groupings: ChannelGroupings,
        options: MaskOptions,
        crop_options: &CropOptions,
        engine: impl FnOnce() -> Result<Engine>,
    ) -> Result<Self> {
        crate::store::refuse_url(path)?;
        if CropGroup::is_crop_group(path) {
            let classes = groupings.into_classes(path)?;
            let crop = CropGroup::open(path)?;
            return Self::from_crop(crop, classes, options, crop_options, engine()?);
        }
        let volume = LabelVolume::open(path)
            .map_err(|e| crate::cellmap::crop::explain_not_an_array(path, e))?;
        let ids = groupings.into_ids(path)?;
        Self::from_volume(volume, ids, options, engine()?)
    }

    /// The same mask, computed by `engine` instead.
    pub fn with_engine(mut self, engine: Engine) -> Self {
        self.engine = engine;
        self
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
        Ok(Self {
            name: mask_name(volume.path(), volume.name()),
            source: Source::Labels(Box::new(LabelSource {
                volume,
                metadata,
                groupings,
                plan,
            })),
            options,
            engine,
        })
    }

    /// A mask over an opened crop group with a chosen engine. Opens the arrays of the classes
    /// that the plan reads at `crop_options.scale` (they must share shape, voxel size and
    /// offset: [`CropError::GeometryMismatch`](crate::CropError::GeometryMismatch)), or, when
    /// every channel is zeroed, the crop's first class array for the geometry. Of `options`,
    /// only `engine` and `verify` apply: crop groups have no background or sparse states.
    pub fn from_crop(
        crop: CropGroup,
        groupings: ClassGroupings,
        options: MaskOptions,
        crop_options: &CropOptions,
        engine: Engine,
    ) -> Result<Self> {
        let annotations: Vec<_> = crop
            .classes()
            .iter()
            .map(|c| c.annotation.clone())
            .collect();
        let plan = CropPlan::new(&groupings, &annotations);
        let scale = crop_options.scale.clone();
        let mut read: Vec<&str> = plan.classes().iter().map(|c| c.name.as_str()).collect();
        if read.is_empty() {
            let first =
                crop.classes()
                    .first()
                    .ok_or_else(|| crate::error::CropError::NoClasses {
                        path: crop.name().to_string(),
                    })?;
            read.push(first.name());
        }
        let volumes = crop.open_classes(&read, &scale)?;
        Ok(Self {
            name: mask_name(crop.path(), crop.name()),
            source: Source::Crop(Box::new(CropSource {
                crop,
                groupings,
                plan,
                scale,
                volumes,
            })),
            options,
            engine,
        })
    }

    /// The mask's name: `<label array or crop group name>_missing_annotations_mask`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `["c"]` followed by the source's axis names.
    pub fn axes(&self) -> Vec<String> {
        std::iter::once("c".to_string())
            .chain(self.volume().geometry().axis_names.iter().cloned())
            .collect()
    }

    /// Number of spatial dimensions.
    pub fn dims(&self) -> usize {
        self.volume().geometry().dims()
    }

    /// Voxel size in world units.
    pub fn voxel_size(&self) -> &Coordinate {
        &self.volume().geometry().voxel_size
    }

    /// The source's ROI in world units.
    pub fn roi(&self) -> Roi {
        self.volume().geometry().roi()
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
        self.plan().num_channels()
    }

    /// Channel names, in order.
    pub fn channels(&self) -> Vec<&str> {
        match &self.source {
            Source::Labels(l) => l.groupings.names().collect(),
            Source::Crop(c) => c.groupings.names().collect(),
        }
    }

    /// The source's attributes: the label array's, or the crop group's.
    pub fn attrs(&self) -> &Map<String, Value> {
        match &self.source {
            Source::Labels(l) => l.volume.attributes(),
            Source::Crop(c) => c.crop.attributes(),
        }
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
        self.get_region(&self.region(roi)?)
    }

    /// The mask and the targets inside `roi`, both of shape `(channels, *roi.shape /
    /// voxel_size)`, computed in one pass over the source. For a label array, `targets[c, v]`
    /// is 1 where the label is one of channel `c`'s ids, or not background for a channel with
    /// no ids (DaCapo's `BinarizeArray`); missing ids do not change targets, the mask says where
    /// to train them. For a crop group, it is 1 where some class of channel `c` is positive
    /// (SPEC 1.4), and 0 everywhere in a zeroed channel.
    pub fn get_with_targets(&self, roi: &Roi) -> Result<(ArrayD<u8>, ArrayD<u8>)> {
        self.get_region_with_targets(&self.region(roi)?)
    }

    /// The targets inside `roi` (see [`MissingAnnotationsMask::get_with_targets`]).
    pub fn get_targets(&self, roi: &Roi) -> Result<ArrayD<u8>> {
        Ok(self.get_with_targets(roi)?.1)
    }

    fn region(&self, roi: &Roi) -> Result<VoxelRegion> {
        let volume = self.volume();
        Ok(volume.geometry().voxel_region(volume.name(), roi)?)
    }

    /// The mask of a region given in voxels.
    pub fn get_region(&self, region: &VoxelRegion) -> Result<ArrayD<u8>> {
        let block = self.read_block(region)?;
        let mut out = self.output_for(&block);
        self.compute_block(&block, out.as_slice_mut().expect("standard layout"))?;
        Ok(out)
    }

    /// The mask and targets of a region given in voxels.
    pub fn get_region_with_targets(
        &self,
        region: &VoxelRegion,
    ) -> Result<(ArrayD<u8>, ArrayD<u8>)> {
        let block = self.read_block(region)?;
        let mut mask = self.output_for(&block);
        let mut targets = mask.clone();
        self.compute_block_with_targets(
            &block,
            mask.as_slice_mut().expect("standard layout"),
            targets.as_slice_mut().expect("standard layout"),
        )?;
        Ok((mask, targets))
    }

    /// A zeroed `(channels, *block shape)` array.
    fn output_for(&self, block: &SourceBlock) -> ArrayD<u8> {
        let mut shape = vec![self.num_channels()];
        shape.extend_from_slice(block.shape());
        ArrayD::zeros(IxDyn(&shape))
    }

    /// Reads the source data of a region (the I/O half of [`MissingAnnotationsMask::get_region`];
    /// pipelines run it on another thread than [`MissingAnnotationsMask::compute_block`]).
    /// For a crop group: the arrays of the classes the plan reads.
    pub fn read_block(&self, region: &VoxelRegion) -> Result<SourceBlock> {
        match &self.source {
            Source::Labels(l) => Ok(SourceBlock::Labels(l.volume.read_region(region)?)),
            Source::Crop(c) => {
                if c.read_volumes().is_empty() {
                    c.volumes[0].check_region(region)?;
                }
                let classes = c
                    .read_volumes()
                    .iter()
                    .map(|v| v.read_region(region))
                    .collect::<Result<Vec<_>>>()?;
                Ok(SourceBlock::Classes(ClassBlock {
                    shape: region.shape.iter().map(|&s| s as usize).collect(),
                    classes,
                }))
            }
        }
    }

    /// Computes the mask of a block read by [`MissingAnnotationsMask::read_block`] into `out`,
    /// channel-major: `num_channels() * voxels` bytes, channel `c` of voxel `i` (C order within
    /// the block) at `c * voxels + i`.
    ///
    /// # Panics
    /// If `block` is of the other source kind (a label block for a crop-group mask or the
    /// reverse), if a [`ClassBlock`] built by hand does not hold one array of its shape per
    /// class the plan reads, or if `out` has the wrong size.
    pub fn compute_block(&self, block: &SourceBlock, out: &mut [u8]) -> Result<()> {
        self.compute(block, out, None)
    }

    /// As [`MissingAnnotationsMask::compute_block`], also writing the targets into `targets`
    /// (same layout, see [`MissingAnnotationsMask::get_with_targets`]), in the same pass.
    pub fn compute_block_with_targets(
        &self,
        block: &SourceBlock,
        mask: &mut [u8],
        targets: &mut [u8],
    ) -> Result<()> {
        self.compute(block, mask, Some(targets))
    }

    fn compute(
        &self,
        block: &SourceBlock,
        out: &mut [u8],
        targets: Option<&mut [u8]>,
    ) -> Result<()> {
        let verify = self.options.verify;
        match (&self.source, block) {
            (Source::Labels(l), SourceBlock::Labels(labels)) => {
                let (slice, shape) = (labels.as_slice(), labels.shape());
                match targets {
                    None => self.engine.compute_into(&l.plan, slice, shape, out, verify),
                    Some(targets) => self
                        .engine
                        .compute_fused_into(&l.plan, slice, shape, out, targets, verify),
                }
            }
            (Source::Crop(c), SourceBlock::Classes(b)) => {
                let slices: Vec<LabelSlice<'_>> =
                    b.classes.iter().map(LabelArray::as_slice).collect();
                self.engine
                    .compute_crop_into(&c.plan, &slices, &b.shape, out, targets, verify)
            }
            _ => panic!(
                "{}: compute_block was given a block of another source kind",
                self.name
            ),
        }
    }

    /// Keeps up to `bytes` of decoded source chunks in memory (split evenly between the class
    /// arrays a crop group reads), so reads that come back to the same chunks decode them once
    /// (see [`LabelVolume::cache_chunks`]; only the first call has an effect).
    pub fn cache_chunks(&self, bytes: u64) {
        match &self.source {
            Source::Labels(l) => {
                l.volume.cache_chunks(bytes);
            }
            Source::Crop(c) => {
                let volumes = c.read_volumes();
                let each = bytes / volumes.len().max(1) as u64;
                for v in volumes {
                    v.cache_chunks(each);
                }
            }
        }
    }

    /// Shape of the source in voxels.
    pub fn shape(&self) -> &[u64] {
        self.volume().shape()
    }

    /// Chunk shape of the source in voxels (blockwise pipelines align to it); for a crop group,
    /// that of its first class array read.
    pub fn chunk_shape(&self) -> &[u64] {
        self.volume().chunk_shape()
    }

    /// The plan both engines execute.
    pub fn plan(&self) -> PlanRef<'_> {
        match &self.source {
            Source::Labels(l) => PlanRef::Labels(&l.plan),
            Source::Crop(c) => PlanRef::Crop(&c.plan),
        }
    }

    /// The plan of a label array (`None` for a crop group).
    pub fn mask_plan(&self) -> Option<&MaskPlan> {
        match &self.source {
            Source::Labels(l) => Some(&l.plan),
            Source::Crop(_) => None,
        }
    }

    /// The plan of a crop group (`None` for a label array).
    pub fn crop_plan(&self) -> Option<&CropPlan> {
        match &self.source {
            Source::Labels(_) => None,
            Source::Crop(c) => Some(&c.plan),
        }
    }

    /// The annotation metadata of a label array (`None` for a crop group).
    pub fn metadata(&self) -> Option<&LabelMetadata> {
        match &self.source {
            Source::Labels(l) => Some(&l.metadata),
            Source::Crop(_) => None,
        }
    }

    /// The id groupings of a label array (`None` for a crop group).
    pub fn groupings(&self) -> Option<&Groupings> {
        match &self.source {
            Source::Labels(l) => Some(&l.groupings),
            Source::Crop(_) => None,
        }
    }

    /// The class groupings of a crop group (`None` for a label array).
    pub fn class_groupings(&self) -> Option<&ClassGroupings> {
        match &self.source {
            Source::Labels(_) => None,
            Source::Crop(c) => Some(&c.groupings),
        }
    }

    /// The crop group (`None` for a label array).
    pub fn crop(&self) -> Option<&CropGroup> {
        match &self.source {
            Source::Labels(_) => None,
            Source::Crop(c) => Some(&c.crop),
        }
    }

    /// The scale a crop group is read at (`None` for a label array).
    pub fn scale(&self) -> Option<&str> {
        match &self.source {
            Source::Labels(_) => None,
            Source::Crop(c) => Some(&c.scale),
        }
    }

    /// The class arrays a crop-group mask reads, in plan order (empty for a label array).
    pub fn class_volumes(&self) -> &[LabelVolume] {
        match &self.source {
            Source::Labels(_) => &[],
            Source::Crop(c) => c.read_volumes(),
        }
    }

    /// Bytes of source labels read per voxel: the label dtype's size, or for a crop group the
    /// sum over the class arrays read.
    pub fn source_bytes_per_voxel(&self) -> u64 {
        match &self.source {
            Source::Labels(l) => l.volume.dtype().size() as u64,
            Source::Crop(c) => c
                .read_volumes()
                .iter()
                .map(|v| v.dtype().size() as u64)
                .sum(),
        }
    }

    /// Reads each chunk whole only up to the budget's chunk limit (see
    /// the chunk reader (`src/chunk_reader.rs`)); the default is that of [`MemoryBudget::default`].
    pub fn set_memory_budget(&mut self, budget: MemoryBudget) {
        let volumes: Vec<&mut LabelVolume> = match &mut self.source {
            Source::Labels(l) => vec![&mut l.volume],
            Source::Crop(c) => c.volumes.iter_mut().collect(),
        };
        for volume in volumes {
            volume.set_chunk_limit(budget.chunk_limit());
        }
    }

    /// The options it was opened with.
    pub fn options(&self) -> &MaskOptions {
        &self.options
    }

    /// The array whose geometry the mask has: the label array, or a crop group's first class
    /// array read (the crop's first class when no class is read).
    pub fn volume(&self) -> &LabelVolume {
        match &self.source {
            Source::Labels(l) => &l.volume,
            Source::Crop(c) => &c.volumes[0],
        }
    }

    /// The engine that computes it.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}
