//! [`MissingAnnotationsMask`]: the array API of SPEC 4, mirroring DaCapo's
//! `MissingAnnotationsMask`. The mask is computed on request for a ROI; nothing is stored.
//!
//! A mask holds one [`MaskSource`]: a label array with a `labels` attribute (SPEC 1.1–1.3,
//! grouped by [`Groupings`](crate::Groupings) of ids) or a CellMap crop group (SPEC 1.4,
//! grouped by [`ClassGroupings`](crate::ClassGroupings) of class names), or any other format
//! of [`crate::formats::FORMATS`]. [`MissingAnnotationsMask::open`] detects the format once.

use std::fmt;
use std::path::Path;

use ndarray::{ArrayD, IxDyn};
use serde_json::{Map, Value};

use crate::budget::MemoryBudget;
use crate::cellmap::CropOptions;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::geometry::{Coordinate, Roi, VoxelRegion};
use crate::groupings::ChannelGroupings;
use crate::node::Node;
use crate::options::MaskOptions;
use crate::source::{MaskSource, SourceBlock, SourcePlan};
use crate::volume::LabelVolume;

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
    source: Box<dyn MaskSource>,
    options: MaskOptions,
    engine: Engine,
}

impl fmt::Debug for MissingAnnotationsMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MissingAnnotationsMask")
            .field("name", &self.name)
            .field("source", &self.source)
            .field("engine", &self.engine.name())
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
    /// source: [`crate::Groupings`] of ids for a label array, [`crate::ClassGroupings`] of class names for a
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

    /// Opens the source at the local `path` (see [`MissingAnnotationsMask::open_node_source`];
    /// looking for a GPU comes after the cheap checks).
    fn open_source(
        path: &Path,
        groupings: ChannelGroupings,
        options: MaskOptions,
        crop_options: &CropOptions,
        engine: impl FnOnce() -> Result<Engine>,
    ) -> Result<Self> {
        Self::open_node_source(
            &Node::open(&path.to_string_lossy(), options.store)?,
            groupings,
            options,
            crop_options,
            engine,
        )
    }

    /// As [`MissingAnnotationsMask::open_with`], from a node of any store.
    pub fn open_node(
        node: &Node,
        groupings: impl Into<ChannelGroupings>,
        options: MaskOptions,
        crop_options: &CropOptions,
    ) -> Result<Self> {
        let engine = || Engine::select(options.engine);
        Self::open_node_source(node, groupings.into(), options, crop_options, engine)
    }

    /// Opens the source at `node` in the format [`crate::formats::detect`] finds; `engine` is called
    /// once the source is open.
    fn open_node_source(
        node: &Node,
        groupings: ChannelGroupings,
        options: MaskOptions,
        crop_options: &CropOptions,
        engine: impl FnOnce() -> Result<Engine>,
    ) -> Result<Self> {
        let format = crate::formats::detect(node);
        let source = format.open(node, groupings, &options, crop_options)?;
        Ok(Self::from_source(source, options, engine()?))
    }

    /// The same mask, computed by `engine` instead.
    pub fn with_engine(mut self, engine: Engine) -> Self {
        self.engine = engine;
        self
    }

    /// A mask over an opened source, computed by `engine`.
    pub fn from_source(source: Box<dyn MaskSource>, options: MaskOptions, engine: Engine) -> Self {
        Self {
            name: mask_name(source.path(), source.name()),
            source,
            options,
            engine,
        }
    }

    /// A mask over an opened label volume with a chosen engine (shares one GPU context between
    /// masks).
    pub fn from_volume(
        volume: LabelVolume,
        groupings: crate::Groupings,
        options: MaskOptions,
        engine: Engine,
    ) -> Result<Self> {
        let source = crate::labels::LabelSource::new(volume, groupings, &options)?;
        Ok(Self::from_source(Box::new(source), options, engine))
    }

    /// A mask over an opened crop group with a chosen engine (see
    /// [`CropSource::new`](crate::cellmap::CropSource::new)). Of `options`, only `engine` and
    /// `verify` apply: crop groups have no background or sparse states.
    pub fn from_crop(
        crop: crate::CropGroup,
        groupings: crate::ClassGroupings,
        options: MaskOptions,
        crop_options: &CropOptions,
        engine: Engine,
    ) -> Result<Self> {
        let source = crate::cellmap::CropSource::new(crop, groupings, crop_options)?;
        Ok(Self::from_source(Box::new(source), options, engine))
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
        self.source.channels()
    }

    /// The source's attributes: the label array's, or the crop group's.
    pub fn attrs(&self) -> &Map<String, Value> {
        self.source.attrs()
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
        self.source.read_block(region)
    }

    /// Computes the mask of a block read by [`MissingAnnotationsMask::read_block`] into `out`,
    /// channel-major: `num_channels() * voxels` bytes, channel `c` of voxel `i` (C order within
    /// the block) at `c * voxels + i`.
    ///
    /// # Panics
    /// If `block` was read from a source of another format or plan, or if `out` has the wrong
    /// size.
    pub fn compute_block(&self, block: &SourceBlock, out: &mut [u8]) -> Result<()> {
        self.source
            .compute_block(&self.engine, block, out, None, self.options.verify)
    }

    /// As [`MissingAnnotationsMask::compute_block`], also writing the targets into `targets`
    /// (same layout, see [`MissingAnnotationsMask::get_with_targets`]), in the same pass.
    pub fn compute_block_with_targets(
        &self,
        block: &SourceBlock,
        mask: &mut [u8],
        targets: &mut [u8],
    ) -> Result<()> {
        self.source.compute_block(
            &self.engine,
            block,
            mask,
            Some(targets),
            self.options.verify,
        )
    }

    /// Keeps up to `bytes` of decoded source chunks in memory (split evenly between the class
    /// arrays a crop group reads), so reads that come back to the same chunks decode them once
    /// (see [`LabelVolume::cache_chunks`]; only the first call has an effect).
    pub fn cache_chunks(&self, bytes: u64) {
        self.source.cache_chunks(bytes);
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

    /// The plan both engines execute; its format's own type through
    /// [`SourcePlan::as_any`].
    pub fn plan(&self) -> &dyn SourcePlan {
        self.source.plan()
    }

    /// The source.
    pub fn source(&self) -> &dyn MaskSource {
        self.source.as_ref()
    }

    /// The source as its format's own type, e.g. [`LabelSource`](crate::labels::LabelSource)
    /// or [`CropSource`](crate::cellmap::CropSource); `None` for a source of another format.
    ///
    /// ```
    /// use annomask::{labels::LabelSource, synth, EngineChoice, MaskOptions, MissingAnnotationsMask};
    /// let dir = tempfile::tempdir()?;
    /// let crop = synth::write_demo_crop(dir.path(), 8, annomask::ZarrFormat::V3)?;
    /// let mask = MissingAnnotationsMask::open(&crop, synth::demo_groupings(),
    ///     MaskOptions::default().engine(EngineChoice::Cpu))?;
    /// let labels = mask.source_as::<LabelSource>().unwrap();
    /// assert_eq!(labels.plan().num_channels(), mask.num_channels());
    /// assert!(mask.source_as::<annomask::cellmap::CropSource>().is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn source_as<S: MaskSource + 'static>(&self) -> Option<&S> {
        self.source.as_any().downcast_ref()
    }

    /// Bytes of source labels read per voxel: the label dtype's size, or for a crop group the
    /// sum over the class arrays read.
    pub fn source_bytes_per_voxel(&self) -> u64 {
        self.source.source_bytes_per_voxel()
    }

    /// Reads each chunk whole only up to the budget's chunk limit (see
    /// the chunk reader (`src/chunk_reader.rs`)); the default is that of [`MemoryBudget::default`].
    pub fn set_memory_budget(&mut self, budget: MemoryBudget) {
        self.source.set_chunk_limit(budget.chunk_limit());
    }

    /// The options it was opened with.
    pub fn options(&self) -> &MaskOptions {
        &self.options
    }

    /// The array whose geometry the mask has: the label array, or a crop group's first class
    /// array read (the crop's first class when no class is read).
    pub fn volume(&self) -> &LabelVolume {
        self.source.volume()
    }

    /// The engine that computes it.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}
