//! The seam between the mask and its source formats: [`MaskSource`] (one opened source) and
//! [`SourceFormat`] (how a format is recognised and opened). The ordered list of formats that
//! detection walks once is [`crate::formats::FORMATS`].
//!
//! A format lives in its own folder (`src/labels/` for label arrays, `src/cellmap/` for CellMap
//! crop groups) and implements both traits; everything downstream — [`MissingAnnotationsMask`],
//! the pipeline, the output, the feeder, the command line and the Python binding — works through
//! them and never names a format. Adding a format adds its folder and one line to [`crate::formats::FORMATS`].
//!
//! Formats open sources from a [`Node`] (a zarrs store and a path in it), so every store
//! serves every format.
//!
//! [`MissingAnnotationsMask`]: crate::MissingAnnotationsMask

use std::any::Any;
use std::fmt;
use std::path::Path;

use serde_json::{Map, Value};

use crate::cellmap::CropOptions;
use crate::engine::Engine;
use crate::error::Result;
use crate::groupings::ChannelGroupings;
use crate::label::LabelArray;
use crate::node::Node;
use crate::options::MaskOptions;
use crate::volume::LabelVolume;

/// An option of opening a source that only some formats use, as the command line names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SourceOption {
    /// `--policy`: whole-channel or per-voxel masking of missing ids.
    Policy,
    /// `--sparse`: whether sparsely annotated ids count as missing.
    Sparse,
    /// `--background`: the unlabelled value.
    Background,
    /// `--allow-missing-metadata`: no `labels` attribute means nothing is missing.
    AllowMissingMetadata,
    /// `--scale`: the multiscale level to read.
    Scale,
}

/// A source format: how to recognise a source of it, open it, and report on it.
pub trait SourceFormat: Send + Sync {
    /// Its name in messages, e.g. `label array`.
    fn name(&self) -> &'static str;

    /// Whether `node` is of this format (cheap: reads metadata only). The last of [`crate::formats::FORMATS`]
    /// answers true for every node.
    fn recognises(&self, node: &Node) -> bool;

    /// `Some(reason)` if `option` does not apply to sources of this format, the reason
    /// completing "`<flag>` applies to ... only; ": why not, and what to do instead.
    fn refuses(&self, option: SourceOption, value: &str) -> Option<String>;

    /// Checks that `node` can be opened as this format before anything else is tried (e.g.
    /// the fallback refusing a zarr group that is no source).
    fn check(&self, node: &Node) -> Result<()> {
        let _ = node;
        Ok(())
    }

    /// Opens the source at `node` with `groupings` (which must be of the kind this format
    /// takes), building its plan.
    fn open(
        &self,
        node: &Node,
        groupings: ChannelGroupings,
        options: &MaskOptions,
        crop_options: &CropOptions,
    ) -> Result<Box<dyn MaskSource>>;

    /// The `inspect` report of the source at `node`: what its metadata says, and with
    /// `groupings`, the plan per channel. Problems that would stop `compute` may be reported
    /// as warnings instead of errors.
    fn inspect(
        &self,
        node: &Node,
        groupings: Option<ChannelGroupings>,
        options: &MaskOptions,
        crop_options: &CropOptions,
    ) -> Result<Box<dyn SourceReport>>;
}

/// The `inspect` report of a source: text for people, JSON for machines.
pub trait SourceReport: fmt::Display {
    /// The report as pretty JSON text.
    fn to_json(&self) -> String;
}

/// The plan of one channel, for every format: the members it groups, those of them that are
/// missing, and whether that switches the channel off everywhere. A label array's members are
/// label ids (`ChannelPlan<u64>`, [`crate::MaskPlan::channels`]), a crop group's are class names
/// (`ChannelPlan<String>`, [`crate::CropPlan::channels`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelPlan<M> {
    /// Channel name.
    pub name: String,
    /// What the channel groups, as given: label ids, or class names.
    pub members: Vec<M>,
    /// Those of `members` that are missing: ids that are present but not annotated (sorted), or
    /// classes the crop does not list (in grouping order).
    pub missing: Vec<M>,
    /// Whether the channel is 0 everywhere: under the whole-channel policy a missing id, for a
    /// crop group a lacking class.
    pub zeroed: bool,
}

/// The plan of a source: which channels are off everywhere, which are equal by construction,
/// and a printable account of why.
pub trait SourcePlan: fmt::Display + fmt::Debug + Send + Sync {
    /// Number of channels.
    fn num_channels(&self) -> usize;

    /// Whether channel `c` is 0 everywhere.
    fn zeroed(&self, c: usize) -> bool;

    /// Per channel, the first channel whose mask is the same by construction, or `None` for a
    /// zeroed channel (a pipeline counts one channel of each kind).
    fn first_equal_channels(&self) -> Vec<Option<usize>>;

    /// The plan as [`Any`], to reach the format's own plan type.
    fn as_any(&self) -> &dyn Any;
}

/// One opened source: its geometry, channels and plan, and the two halves of computing a
/// region (reading it, then computing it on an engine).
pub trait MaskSource: Send + Sync + fmt::Debug {
    /// The format's name ([`SourceFormat::name`]).
    fn format(&self) -> &'static str;

    /// The path it was opened from (the `input` of an output's attributes).
    fn path(&self) -> &Path;

    /// The path as text, as errors print it.
    fn name(&self) -> &str;

    /// How a run's log names it besides its path (e.g. a crop group's scale), if at all.
    fn describe(&self) -> Option<String> {
        None
    }

    /// Every path it reads from (an output must lie apart from all of them).
    fn input_paths(&self) -> Vec<&Path>;

    /// The array whose geometry (shape, chunks, voxel size, offset, axes) the mask has.
    fn volume(&self) -> &LabelVolume;

    /// Channel names, in order.
    fn channels(&self) -> Vec<&str>;

    /// The plan the engines execute.
    fn plan(&self) -> &dyn SourcePlan;

    /// The source's attributes.
    fn attrs(&self) -> &Map<String, Value>;

    /// Per channel, whether the crop may hold positive targets for it: the channel is not
    /// zeroed and, where the format's metadata says so, some member is present in the crop.
    /// A feeder's class weighting samples crops by it. The default knows only `zeroed`.
    fn channel_presence(&self) -> Vec<bool> {
        let plan = self.plan();
        (0..plan.num_channels()).map(|c| !plan.zeroed(c)).collect()
    }

    /// Reads the source data of a region (voxels, inside the source).
    fn read_block(&self, region: &VoxelRegion) -> Result<SourceBlock>;

    /// Computes the mask of `block` (read by [`MaskSource::read_block`]) into `mask`, and the
    /// targets into `targets` where given, channel-major (`num_channels * voxels` bytes each).
    ///
    /// # Panics
    /// If `block` was not read from this source (or one of its format and plan), or an output
    /// has the wrong size.
    fn compute_block(
        &self,
        engine: &Engine,
        block: &SourceBlock,
        mask: &mut [u8],
        targets: Option<&mut [u8]>,
        verify: bool,
    ) -> Result<()>;

    /// The attributes it contributes to a mask output (its rules: missing ids, policy, ...).
    fn output_attributes(&self) -> Map<String, Value>;

    /// Per channel, its members as text and the rule that decides where it is trained, and the
    /// members' heading (`ids`, `classes`): the rows of the end-of-run table.
    fn channel_rules(&self) -> (&'static str, Vec<(String, String)>);

    /// Bytes of source data read per voxel.
    fn source_bytes_per_voxel(&self) -> u64;

    /// Keeps up to `bytes` of decoded chunks in memory (see [`LabelVolume::cache_chunks`]).
    fn cache_chunks(&self, bytes: u64);

    /// Reads each chunk whole only up to `bytes` decoded (see [`LabelVolume::set_chunk_limit`]).
    fn set_chunk_limit(&mut self, bytes: u64);

    /// The source as [`Any`], to reach the format's own accessors
    /// ([`MissingAnnotationsMask::source_as`](crate::MissingAnnotationsMask::source_as)).
    fn as_any(&self) -> &dyn Any;
}

use crate::geometry::VoxelRegion;

/// The source data of one region, read and ready to be computed: one label array, or several
/// named arrays (a crop group's classes), all of `shape`.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceBlock {
    shape: Vec<usize>,
    arrays: Vec<LabelArray>,
    names: Option<Vec<String>>,
}

impl SourceBlock {
    /// A block of one label array.
    pub fn single(array: LabelArray) -> Self {
        Self {
            shape: array.shape().to_vec(),
            arrays: vec![array],
            names: None,
        }
    }

    /// A block of named arrays, each of `shape` (there may be none).
    ///
    /// # Panics
    /// If `names` and `arrays` differ in length, or an array is not of `shape`.
    pub fn named(shape: Vec<usize>, names: Vec<String>, arrays: Vec<LabelArray>) -> Self {
        assert_eq!(names.len(), arrays.len(), "one name per array");
        assert!(
            arrays.iter().all(|a| a.shape() == shape.as_slice()),
            "every array of a block has its shape"
        );
        Self {
            shape,
            arrays,
            names: Some(names),
        }
    }

    /// Shape of the region in voxels.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The arrays, in the source's order.
    pub fn arrays(&self) -> &[LabelArray] {
        &self.arrays
    }

    /// The names of the arrays, or `None` for a block of one unnamed label array.
    pub fn names(&self) -> Option<&[String]> {
        self.names.as_deref()
    }

    /// The one label array of a [`SourceBlock::single`] block.
    pub fn labels(&self) -> Option<&LabelArray> {
        match self.names {
            None => self.arrays.first(),
            Some(_) => None,
        }
    }

    /// The arrays and their names (`None`: one unnamed label array).
    pub fn into_parts(self) -> (Vec<LabelArray>, Option<Vec<String>>) {
        (self.arrays, self.names)
    }
}
