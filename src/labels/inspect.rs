//! `inspect`: what annomask sees in a label array — layout, geometry, the annotation metadata
//! (each id: name, present, annotated, missing or not and why), the plan per channel, and
//! warnings — as text for people ([`std::fmt::Display`]) or JSON for machines ([`serde`]).
//!
//! ```
//! use annomask::{labels::inspect::Inspection, synth, LabelVolume, MaskOptions, ZarrFormat};
//! let dir = tempfile::tempdir()?;
//! let crop = synth::write_demo_crop(dir.path(), 8, ZarrFormat::V3)?;
//! let volume = LabelVolume::open(&crop)?;
//! let report = Inspection::of(&volume, Some(&synth::demo_groupings()), &MaskOptions::default())?;
//! let mito_ribo = report.ids.iter().find(|i| i.id == 5).unwrap();
//! assert!(mito_ribo.missing && mito_ribo.channels == ["mito"]);
//! // id 30 (ves) is listed as not present, so no channel needing it is a warning
//! assert!(report.warnings.iter().all(|w| !w.contains("id 30")));
//! println!("{report}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

use serde::Serialize;

use crate::error::Error;
use crate::groupings::Groupings;
use crate::labels::metadata::LabelMetadata;
use crate::labels::plan::MaskPlan;
use crate::options::{MaskOptions, MaskPolicy};
use crate::volume::LabelVolume;

/// What one metadata entry says.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IdReport {
    /// The label id.
    pub id: u64,
    /// The class name, where given.
    pub name: Option<String>,
    /// The entry format that was detected.
    pub format: String,
    /// `annotationState.present`.
    pub present: bool,
    /// `annotationState.annotated` as written (`true`, `"sparse"`, ...).
    pub annotated: String,
    /// `annotationState.sparse` (Airtable format), where given.
    pub sparse: Option<bool>,
    /// Whether the id is missing under the sparse policy.
    pub missing: bool,
    /// Why, in words.
    pub why: String,
    /// The channels that group this id.
    pub channels: Vec<String>,
}

/// The plan of one channel.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChannelReport {
    /// Channel name.
    pub name: String,
    /// The ids it groups (empty: any foreground).
    pub ids: Vec<u64>,
    /// Its ids that are missing.
    pub missing: Vec<u64>,
    /// Whether it is 0 everywhere.
    pub zeroed: bool,
    /// The rule it is computed by, in words.
    pub rule: String,
}

/// Everything `inspect` reports about a label array.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Inspection {
    /// The array's path.
    pub path: String,
    /// 2 or 3.
    pub zarr_format: u8,
    /// Whether the array is N5 (read through `zarrs_n5`, axes in zarr order).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub n5: bool,
    /// Label dtype.
    pub dtype: String,
    /// Shape in voxels.
    pub shape: Vec<u64>,
    /// Chunk shape in voxels.
    pub chunks: Vec<u64>,
    /// Voxel size in world units.
    pub voxel_size: Vec<f64>,
    /// World offset of the first voxel.
    pub offset: Vec<f64>,
    /// Axis names.
    pub axis_names: Vec<String>,
    /// Units per axis (empty where unknown).
    pub units: Vec<String>,
    /// Where voxel size and offset came from: `ome-ngff`, `funlib` or `default`.
    pub geometry_source: String,
    /// Whether the array has a `labels` attribute.
    pub metadata_found: bool,
    /// The metadata entries, one per id, in list order.
    pub ids: Vec<IdReport>,
    /// Mask policy used for the plan.
    pub policy: String,
    /// Sparse policy used for `missing`.
    pub sparse_policy: String,
    /// Background value.
    pub background: u64,
    /// The plan per channel, when groupings were given.
    pub channels: Option<Vec<ChannelReport>>,
    /// Things worth knowing before computing.
    pub warnings: Vec<String>,
}

impl Inspection {
    /// Inspects `volume`; with `groupings`, also the plan and the grouping warnings. A missing
    /// `labels` attribute is a warning here (not an error): the report says what `compute` will
    /// need. Malformed metadata is an error, as in `compute`.
    pub fn of(
        volume: &LabelVolume,
        groupings: Option<&Groupings>,
        options: &MaskOptions,
    ) -> Result<Self, Error> {
        let metadata = LabelMetadata::from_attributes(volume.name(), volume.attributes(), true)?;
        let sparse = options.sparse;
        let mut warnings = Vec::new();
        if !metadata.attribute_found() {
            warnings.push(if options.allow_missing_metadata {
                "no `labels` attribute (annotation metadata): nothing is missing, every channel is labels != background".to_string()
            } else {
                "no `labels` attribute (annotation metadata): compute fails unless --allow-missing-metadata is given".to_string()
            });
        }
        let channels_of = |id: u64| -> Vec<String> {
            groupings.map_or_else(Vec::new, |g| {
                g.channels()
                    .iter()
                    .filter(|c| c.ids.contains(&id))
                    .map(|c| c.name.clone())
                    .collect()
            })
        };
        let ids: Vec<IdReport> = metadata
            .entries()
            .iter()
            .map(|e| {
                let status = e.state.status(sparse);
                IdReport {
                    id: e.value,
                    name: e.name.clone(),
                    format: e.format.name().to_string(),
                    present: e.state.present,
                    annotated: e.state.annotated.to_string(),
                    sparse: e.state.sparse,
                    missing: status.is_missing(),
                    why: status.explain().to_string(),
                    channels: channels_of(e.value),
                }
            })
            .collect();

        let channels = groupings.map(|g| {
            let plan = MaskPlan::from_metadata(g, &metadata, options);
            if metadata.attribute_found() {
                for ch in g.channels() {
                    for &id in &ch.ids {
                        if metadata.entry(id).is_none() {
                            warnings.push(format!(
                                "channel {}: id {id} is not in the metadata (treated as not missing)",
                                ch.name
                            ));
                        }
                    }
                }
                for e in metadata.entries() {
                    if e.state.present
                        && e.value != options.background
                        && !g.channels().iter().any(|c| c.ids.contains(&e.value))
                    {
                        warnings.push(format!(
                            "class {}{} is present in the crop but in no channel",
                            e.value,
                            e.name
                                .as_ref()
                                .map_or_else(String::new, |n| format!(" ({n})"))
                        ));
                    }
                }
            }
            plan.channels()
                .iter()
                .map(|ch| {
                    if ch.zeroed {
                        warnings.push(format!(
                            "channel {} is 0 everywhere: missing {:?}",
                            ch.name, ch.missing
                        ));
                    }
                    ChannelReport {
                        name: ch.name.clone(),
                        ids: ch.members.clone(),
                        missing: ch.missing.clone(),
                        zeroed: ch.zeroed,
                        rule: rule(ch.zeroed, &ch.missing, &plan),
                    }
                })
                .collect()
        });

        let g = volume.geometry();
        Ok(Self {
            path: volume.name().to_string(),
            zarr_format: volume.format().number(),
            n5: volume.is_n5(),
            dtype: volume.dtype().name().to_string(),
            shape: volume.shape().to_vec(),
            chunks: volume.chunk_shape().to_vec(),
            voxel_size: g.voxel_size.as_slice().to_vec(),
            offset: g.offset.as_slice().to_vec(),
            axis_names: g.axis_names.clone(),
            units: g.units.clone(),
            geometry_source: g.source.to_string(),
            metadata_found: metadata.attribute_found(),
            ids,
            policy: options.policy.name().to_string(),
            sparse_policy: sparse.name().to_string(),
            background: options.background,
            channels,
            warnings,
        })
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the report serialises")
    }
}

fn rule(zeroed: bool, missing: &[u64], plan: &MaskPlan) -> String {
    if zeroed {
        format!("0 everywhere (missing {missing:?})")
    } else if plan.policy() == MaskPolicy::PerVoxel && !missing.is_empty() {
        format!("labels != {} except missing {missing:?}", plan.background())
    } else {
        format!("labels != {}", plan.background())
    }
}

fn list<T: fmt::Display>(items: &[T]) -> String {
    let parts: Vec<String> = items.iter().map(ToString::to_string).collect();
    format!("[{}]", parts.join(", "))
}

/// Left-aligned columns, two spaces apart.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, &w)| format!("{c:<w$}"))
            .collect();
        out.push_str("  ");
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

impl fmt::Display for Inspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.path)?;
        writeln!(
            f,
            "  {}, {}, shape {}, chunks {}",
            match self.n5 {
                true => "N5 (axes in zarr order)".to_string(),
                false => format!("zarr v{}", self.zarr_format),
            },
            self.dtype,
            list(&self.shape),
            list(&self.chunks)
        )?;
        let units: Vec<&str> = self
            .units
            .iter()
            .filter(|u| !u.is_empty())
            .map(String::as_str)
            .collect();
        let unit = if units.len() == self.units.len() && units.windows(2).all(|w| w[0] == w[1]) {
            units.first().map_or(String::new(), |u| format!(" {u}"))
        } else {
            format!(" {}", list(&self.units))
        };
        writeln!(
            f,
            "  voxel size {}{unit}, offset {}, axes {} (geometry from {})",
            list(&self.voxel_size),
            list(&self.offset),
            list(&self.axis_names),
            self.geometry_source
        )?;
        writeln!(f)?;
        if self.metadata_found {
            writeln!(
                f,
                "annotation metadata ({} ids; sparse policy {}):",
                self.ids.len(),
                self.sparse_policy
            )?;
            let rows: Vec<Vec<String>> = self
                .ids
                .iter()
                .map(|i| {
                    vec![
                        i.id.to_string(),
                        i.name.clone().unwrap_or_default(),
                        i.present.to_string(),
                        match i.sparse {
                            Some(s) => format!("{} (sparse: {s})", i.annotated),
                            None => i.annotated.clone(),
                        },
                        if i.missing { "missing" } else { "-" }.to_string(),
                        i.why.trim_start_matches("missing: ").to_string(),
                        i.channels.join(", "),
                    ]
                })
                .collect();
            f.write_str(&table(
                &[
                    "id",
                    "name",
                    "present",
                    "annotated",
                    "->",
                    "why",
                    "channels",
                ],
                &rows,
            ))?;
        } else {
            writeln!(f, "annotation metadata: none (no `labels` attribute)")?;
        }
        if let Some(channels) = &self.channels {
            writeln!(
                f,
                "\nplan: {} channel(s), policy {}, background {}:",
                channels.len(),
                self.policy,
                self.background
            )?;
            let rows: Vec<Vec<String>> = channels
                .iter()
                .enumerate()
                .map(|(c, ch)| {
                    vec![
                        format!("[{c}]"),
                        ch.name.clone(),
                        if ch.ids.is_empty() {
                            "[] (any foreground)".to_string()
                        } else {
                            list(&ch.ids)
                        },
                        ch.rule.clone(),
                    ]
                })
                .collect();
            f.write_str(&table(&["", "channel", "ids", "mask"], &rows))?;
        }
        if !self.warnings.is_empty() {
            writeln!(f, "\nwarnings:")?;
            for w in &self.warnings {
                writeln!(f, "  - {w}")?;
            }
        }
        Ok(())
    }
}
