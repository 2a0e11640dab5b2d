//! Label arrays (SPEC 1.1–1.3): a zarr array of integer ids whose `labels` attribute says, per
//! id, whether it is present and annotated; channels group ids.
//!
//! [`LabelFormat`] recognises and opens them (the fallback of
//! [`formats::FORMATS`](crate::formats::FORMATS): anything that is no other format is tried as a
//! label array), [`LabelSource`] is one opened, with its [`metadata`], [`plan`] and the
//! [`inspect`] report.
//!
//! ```
//! use annomask::{labels::LabelSource, synth, EngineChoice, MaskOptions, MissingAnnotationsMask};
//! let dir = tempfile::tempdir()?;
//! let crop = synth::write_demo_crop(dir.path(), 8, annomask::ZarrFormat::V2)?;
//! let mask = MissingAnnotationsMask::open(&crop, synth::demo_groupings(),
//!     MaskOptions::default().engine(EngineChoice::Cpu))?;
//! let labels = mask.source_as::<LabelSource>().unwrap();
//! assert!(labels.metadata().attribute_found());
//! assert_eq!(labels.groupings().names().count(), mask.num_channels());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod inspect;
pub mod metadata;
pub mod plan;

use std::any::Any;
use std::path::Path;

use serde_json::{Map, Value, json};

use crate::bits::MaskLayout;
use crate::bits::Outputs;
use crate::cellmap::CropOptions;
use crate::cellmap::crop::{explain_not_an_array, why_not_a_source_node};
use crate::engine::Engine;
use crate::error::Result;
use crate::geometry::VoxelRegion;
use crate::groupings::{ChannelGroupings, Groupings};
use crate::node::Node;
use crate::options::{MaskOptions, MaskPolicy};
use crate::source::{
    MaskSource, SourceBlock, SourceFormat, SourceOption, SourcePlan, SourceReport,
};
use crate::volume::LabelVolume;

use self::inspect::Inspection;
use self::metadata::LabelMetadata;
use self::plan::MaskPlan;

/// The label-array format: the fallback of detection, recognising every path.
#[derive(Clone, Copy, Debug, Default)]
pub struct LabelFormat;

impl SourceFormat for LabelFormat {
    fn name(&self) -> &'static str {
        "label array"
    }

    fn recognises(&self, _node: &Node) -> bool {
        true
    }

    fn refuses(&self, option: SourceOption, value: &str) -> Option<String> {
        match option {
            SourceOption::Scale => Some(format!(
                "this is not one (for a level of a multiscale label image, give that level's \
                 array itself, e.g. .../{value})"
            )),
            _ => None,
        }
    }

    fn check(&self, node: &Node) -> Result<()> {
        // A zarr group that is no crop group, or metadata that is not valid JSON: say so,
        // rather than the zarr library's "not a zarr array" about the array it looked for.
        match why_not_a_source_node(node) {
            Some(why) => Err(why.into()),
            None => Ok(()),
        }
    }

    fn open(
        &self,
        node: &Node,
        groupings: ChannelGroupings,
        options: &MaskOptions,
        _crop_options: &CropOptions,
    ) -> Result<Box<dyn MaskSource>> {
        let volume = LabelVolume::open_node(node).map_err(|e| explain_not_an_array(node, e))?;
        let ids = groupings.into_ids(Path::new(node.name()))?;
        Ok(Box::new(LabelSource::new(volume, ids, options)?))
    }

    fn inspect(
        &self,
        node: &Node,
        groupings: Option<ChannelGroupings>,
        options: &MaskOptions,
        _crop_options: &CropOptions,
    ) -> Result<Box<dyn SourceReport>> {
        let volume = LabelVolume::open_node(node)?;
        volume.check_decodes()?;
        let groupings = groupings
            .map(|g| g.into_ids(Path::new(node.name())))
            .transpose()?;
        Ok(Box::new(Inspection::of(
            &volume,
            groupings.as_ref(),
            options,
        )?))
    }
}

/// An opened label array: the array, its metadata, the groupings and the plan.
#[derive(Debug)]
pub struct LabelSource {
    volume: LabelVolume,
    metadata: LabelMetadata,
    groupings: Groupings,
    plan: MaskPlan,
    options: MaskOptions,
}

impl LabelSource {
    /// Reads the `labels` attribute of `volume` and builds the plan.
    ///
    /// Errors: the metadata errors of [`LabelMetadata::from_attributes`].
    pub fn new(volume: LabelVolume, groupings: Groupings, options: &MaskOptions) -> Result<Self> {
        let metadata = LabelMetadata::from_attributes(
            volume.name(),
            volume.attributes(),
            options.allow_missing_metadata,
        )?;
        let plan = MaskPlan::from_metadata(&groupings, &metadata, options);
        Ok(Self {
            volume,
            metadata,
            groupings,
            plan,
            options: *options,
        })
    }

    /// The plan (SPEC 2).
    pub fn plan(&self) -> &MaskPlan {
        &self.plan
    }

    /// The annotation metadata.
    pub fn metadata(&self) -> &LabelMetadata {
        &self.metadata
    }

    /// The id groupings.
    pub fn groupings(&self) -> &Groupings {
        &self.groupings
    }
}

impl SourcePlan for MaskPlan {
    fn num_channels(&self) -> usize {
        MaskPlan::num_channels(self)
    }

    fn zeroed(&self, c: usize) -> bool {
        MaskPlan::zeroed(self, c)
    }

    fn first_equal_channels(&self) -> Vec<Option<usize>> {
        MaskPlan::first_equal_channels(self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl SourceReport for Inspection {
    fn to_json(&self) -> String {
        Inspection::to_json(self)
    }
}

impl MaskSource for LabelSource {
    fn format(&self) -> &'static str {
        LabelFormat.name()
    }

    fn path(&self) -> &Path {
        self.volume.path()
    }

    fn name(&self) -> &str {
        self.volume.name()
    }

    fn input_paths(&self) -> Vec<&Path> {
        vec![self.volume.path()]
    }

    fn volume(&self) -> &LabelVolume {
        &self.volume
    }

    fn channels(&self) -> Vec<&str> {
        self.groupings.names().collect()
    }

    fn plan(&self) -> &dyn SourcePlan {
        &self.plan
    }

    /// Not zeroed, and a channel without ids (foreground), or one with an id whose metadata
    /// says `present`.
    fn channel_presence(&self) -> Vec<bool> {
        let present = |id: u64| {
            self.metadata
                .entries()
                .iter()
                .any(|e| e.value == id && e.state.present)
        };
        self.groupings
            .channels()
            .iter()
            .enumerate()
            .map(|(c, ch)| {
                !self.plan.zeroed(c) && (ch.ids.is_empty() || ch.ids.iter().any(|&id| present(id)))
            })
            .collect()
    }

    fn attrs(&self) -> &Map<String, Value> {
        self.volume.attributes()
    }

    fn read_block(&self, region: &VoxelRegion) -> Result<SourceBlock> {
        Ok(SourceBlock::single(self.volume.read_region(region)?))
    }

    fn compute_block(
        &self,
        engine: &Engine,
        block: &SourceBlock,
        mask: &mut [u8],
        targets: Option<&mut [u8]>,
        verify: bool,
    ) -> Result<()> {
        let labels = block.labels().unwrap_or_else(|| {
            panic!(
                "{}: compute_block was given a block of another source kind",
                self.volume.name()
            )
        });
        let (slice, shape) = (labels.as_slice(), labels.shape());
        let out = Outputs {
            mask,
            layout: MaskLayout::Bytes,
            targets,
        };
        engine.run(&self.plan, &[slice], shape, out, verify)
    }

    fn output_attributes(&self) -> Map<String, Value> {
        let missing: Map<String, Value> = self
            .plan
            .channels()
            .iter()
            .map(|c| (c.name.clone(), json!(c.missing)))
            .collect();
        let mut attrs = Map::new();
        attrs.insert("missing_ids".into(), Value::Object(missing));
        attrs.insert("policy".into(), json!(self.plan.policy().name()));
        attrs.insert("sparse_policy".into(), json!(self.options.sparse.name()));
        attrs.insert("background".into(), json!(self.plan.background()));
        attrs
    }

    fn channel_rules(&self) -> (&'static str, Vec<(String, String)>) {
        let (plan, metadata) = (&self.plan, &self.metadata);
        let sparse = self.options.sparse;
        let rules = plan
            .channels()
            .iter()
            .map(|ch| {
                let why: Vec<String> = ch
                    .missing
                    .iter()
                    .map(|&id| {
                        let name = metadata
                            .entry(id)
                            .and_then(|e| e.name.clone())
                            .map_or_else(String::new, |n| format!(" ({n})"));
                        format!("id {id}{name} {}", metadata.status(id, sparse).explain())
                    })
                    .collect();
                let rule = if ch.zeroed {
                    format!("off everywhere: {}", why.join("; "))
                } else if plan.policy() == MaskPolicy::PerVoxel && !why.is_empty() {
                    format!(
                        "on where labels != {}, except {}",
                        plan.background(),
                        why.join("; ")
                    )
                } else {
                    format!("on where labels != {}", plan.background())
                };
                (format!("{:?}", ch.members), rule)
            })
            .collect();
        ("ids", rules)
    }

    fn source_bytes_per_voxel(&self) -> u64 {
        self.volume.dtype().size() as u64
    }

    fn cache_chunks(&self, bytes: u64) {
        self.volume.cache_chunks(bytes);
    }

    fn set_chunk_limit(&mut self, bytes: u64) {
        self.volume.set_chunk_limit(bytes);
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
