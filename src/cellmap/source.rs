//! The crop-group format behind the [`source`](crate::source) seam: [`CropFormat`] recognises
//! and opens a crop group, [`CropSource`] is one opened at a scale, with its plan and the class
//! arrays the plan reads.

use std::any::Any;
use std::path::Path;

use serde_json::{Map, Value, json};

use super::crop::{CropGroup, CropOptions};
use super::plan::CropPlan;
use super::report::CropReport;
use crate::bits::MaskLayout;
use crate::bits::Outputs;
use crate::engine::Engine;
use crate::error::{CropError, Result};
use crate::geometry::VoxelRegion;
use crate::groupings::{ChannelGroupings, ClassGroupings};
use crate::label::{LabelArray, LabelSlice};
use crate::node::Node;
use crate::options::MaskOptions;
use crate::source::{
    MaskSource, SourceBlock, SourceFormat, SourceOption, SourcePlan, SourceReport,
};
use crate::volume::LabelVolume;

/// The CellMap crop-group format (SPEC 1.4): a zarr group with a `cellmap` attribute.
#[derive(Clone, Copy, Debug, Default)]
pub struct CropFormat;

impl SourceFormat for CropFormat {
    fn name(&self) -> &'static str {
        "CellMap crop group"
    }

    fn recognises(&self, node: &Node) -> bool {
        CropGroup::is_crop_group_node(node)
    }

    fn refuses(&self, option: SourceOption, _value: &str) -> Option<String> {
        match option {
            SourceOption::Scale => None,
            _ => Some(
                "this is a CellMap crop group, masked where its classes are known (no \
                 background, no annotation states)"
                    .into(),
            ),
        }
    }

    fn open(
        &self,
        node: &Node,
        groupings: ChannelGroupings,
        _options: &MaskOptions,
        crop_options: &CropOptions,
    ) -> Result<Box<dyn MaskSource>> {
        let classes = groupings.into_classes(Path::new(node.name()))?;
        let crop = CropGroup::open_node(node)?;
        Ok(Box::new(CropSource::new(crop, classes, crop_options)?))
    }

    fn inspect(
        &self,
        node: &Node,
        groupings: Option<ChannelGroupings>,
        _options: &MaskOptions,
        crop_options: &CropOptions,
    ) -> Result<Box<dyn SourceReport>> {
        // What would stop `compute` (a scale some class lacks, arrays that disagree) is a
        // warning here.
        let groupings = groupings
            .map(|g| g.into_classes(Path::new(node.name())))
            .transpose()?;
        let crop = CropGroup::open_node(node)?;
        Ok(Box::new(CropReport::new(
            &crop,
            groupings.as_ref(),
            crop_options,
        )))
    }
}

/// An opened crop group: the crop, its plan, the scale and the class arrays the plan reads.
#[derive(Debug)]
pub struct CropSource {
    crop: CropGroup,
    groupings: ClassGroupings,
    plan: CropPlan,
    scale: String,
    /// The arrays of `plan.classes()`, in order; when the plan reads none, the array of the
    /// crop's first class, for the geometry alone.
    volumes: Vec<LabelVolume>,
}

impl CropSource {
    /// Builds the plan of `groupings` for `crop` and opens the arrays of the classes it reads
    /// at `crop_options.scale` (they must share shape, voxel size and offset:
    /// [`CropError::GeometryMismatch`]), or, when every channel is zeroed, the crop's first
    /// class array for the geometry.
    pub fn new(
        crop: CropGroup,
        groupings: ClassGroupings,
        crop_options: &CropOptions,
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
            let first = crop.classes().first().ok_or_else(|| CropError::NoClasses {
                path: crop.name().to_string(),
            })?;
            read.push(first.name());
        }
        let volumes = crop.open_classes(&read, &scale)?;
        Ok(Self {
            crop,
            groupings,
            plan,
            scale,
            volumes,
        })
    }

    /// The crop group.
    pub fn crop(&self) -> &CropGroup {
        &self.crop
    }

    /// The class groupings.
    pub fn groupings(&self) -> &ClassGroupings {
        &self.groupings
    }

    /// The plan (SPEC 1.4).
    pub fn plan(&self) -> &CropPlan {
        &self.plan
    }

    /// The scale it is read at.
    pub fn scale(&self) -> &str {
        &self.scale
    }

    /// The class arrays the plan reads, in plan order.
    pub fn class_volumes(&self) -> &[LabelVolume] {
        &self.volumes[..self.plan.classes().len()]
    }
}

impl SourcePlan for CropPlan {
    fn num_channels(&self) -> usize {
        CropPlan::num_channels(self)
    }

    fn zeroed(&self, c: usize) -> bool {
        CropPlan::zeroed(self, c)
    }

    fn first_equal_channels(&self) -> Vec<Option<usize>> {
        CropPlan::first_equal_channels(self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl SourceReport for CropReport {
    fn to_json(&self) -> String {
        serde_json::to_string_pretty(&CropReport::to_json(self)).expect("JSON values serialise")
    }
}

impl MaskSource for CropSource {
    fn format(&self) -> &'static str {
        CropFormat.name()
    }

    fn path(&self) -> &Path {
        self.crop.path()
    }

    fn name(&self) -> &str {
        self.crop.name()
    }

    fn describe(&self) -> Option<String> {
        Some(format!("CellMap crop group, scale {}", self.scale))
    }

    fn input_paths(&self) -> Vec<&Path> {
        std::iter::once(self.crop.path())
            .chain(self.volumes.iter().map(LabelVolume::path))
            .collect()
    }

    fn volume(&self) -> &LabelVolume {
        &self.volumes[0]
    }

    fn channels(&self) -> Vec<&str> {
        self.groupings.names().collect()
    }

    fn plan(&self) -> &dyn SourcePlan {
        &self.plan
    }

    /// Not zeroed, and some class of the channel has present voxels by its
    /// `complement_counts` (voxels minus the `absent` and `unknown` counts, which count the
    /// finest scale: read at another scale, or without counts, a class counts as present).
    fn channel_presence(&self) -> Vec<bool> {
        let voxels: u64 = self
            .volumes
            .first()
            .map_or(0, |v| v.shape().iter().product());
        let present = |class: &crate::cellmap::ClassPlan| {
            let Some(group) = self.crop.class(&class.name) else {
                return true;
            };
            let finest = group.scales.first().is_none_or(|s| *s == self.scale);
            match &group.annotation.complement_counts {
                Some(counts) if finest => counts.values().sum::<u64>() < voxels,
                _ => true,
            }
        };
        (0..self.plan.num_channels())
            .map(|c| {
                !self.plan.zeroed(c)
                    && self
                        .plan
                        .class_set(c)
                        .iter()
                        .filter_map(|i| self.plan.classes().get(i))
                        .any(present)
            })
            .collect()
    }

    fn attrs(&self) -> &Map<String, Value> {
        self.crop.attributes()
    }

    fn read_block(&self, region: &VoxelRegion) -> Result<SourceBlock> {
        let volumes = self.class_volumes();
        if volumes.is_empty() {
            self.volumes[0].check_region(region)?;
        }
        let classes = volumes
            .iter()
            .map(|v| v.read_region(region))
            .collect::<Result<Vec<_>>>()?;
        let names = self.plan.classes().iter().map(|c| c.name.clone()).collect();
        let shape = region.shape.iter().map(|&s| s as usize).collect();
        Ok(SourceBlock::named(shape, names, classes))
    }

    fn compute_block(
        &self,
        engine: &Engine,
        block: &SourceBlock,
        mask: &mut [u8],
        targets: Option<&mut [u8]>,
        verify: bool,
    ) -> Result<()> {
        let read_here = block
            .names()
            .is_some_and(|names| names.iter().eq(self.plan.classes().iter().map(|c| &c.name)));
        assert!(
            read_here,
            "{}: compute_block was given a block of another source kind",
            self.crop.name()
        );
        let slices: Vec<LabelSlice<'_>> = block.arrays().iter().map(LabelArray::as_slice).collect();
        let out = Outputs {
            mask,
            layout: MaskLayout::Bytes,
            targets,
        };
        engine.run(&self.plan, &slices, block.shape(), out, verify)
    }

    fn output_attributes(&self) -> Map<String, Value> {
        // A channel is off where a class is unknown, or everywhere when the crop lacks one of
        // its classes (SPEC 1.4).
        let channels = self.plan.channels();
        let lacking: Map<String, Value> = channels
            .iter()
            .map(|c| (c.name.clone(), json!(c.missing)))
            .collect();
        let classes: Map<String, Value> = channels
            .iter()
            .map(|c| (c.name.clone(), json!(c.members)))
            .collect();
        let mut attrs = Map::new();
        attrs.insert("lacking_classes".into(), Value::Object(lacking));
        attrs.insert("classes".into(), Value::Object(classes));
        attrs.insert("policy".into(), json!("cellmap-known"));
        attrs.insert("scale".into(), json!(self.scale));
        attrs
    }

    fn channel_rules(&self) -> (&'static str, Vec<(String, String)>) {
        let plan = &self.plan;
        let rules = plan
            .channels()
            .iter()
            .enumerate()
            .map(|(c, ch)| {
                let rule = if ch.zeroed {
                    format!(
                        "off everywhere: not annotated in this crop: {}",
                        ch.missing.join(", ")
                    )
                } else {
                    let known: Vec<String> = plan
                        .class_set(c)
                        .iter()
                        .map(|k| {
                            let class = &plan.classes()[k];
                            match class.encoding.unknown {
                                Some(u) => format!("{} != {u}", class.name),
                                None => format!("{} (always known)", class.name),
                            }
                        })
                        .collect();
                    format!("on where {}", known.join(" and "))
                };
                (format!("[{}]", ch.members.join(", ")), rule)
            })
            .collect();
        ("classes", rules)
    }

    fn source_bytes_per_voxel(&self) -> u64 {
        self.class_volumes()
            .iter()
            .map(|v| v.dtype().size() as u64)
            .sum()
    }

    fn cache_chunks(&self, bytes: u64) {
        let volumes = self.class_volumes();
        let each = bytes / volumes.len().max(1) as u64;
        for v in volumes {
            v.cache_chunks(each);
        }
    }

    fn set_chunk_limit(&mut self, bytes: u64) {
        for volume in &mut self.volumes {
            volume.set_chunk_limit(bytes);
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
