//! The `inspect` report of a crop group: a table of its classes (and of the grouping classes it
//! lacks), the plan per channel, and warnings; as text and as JSON.
//!
//! ```
//! use annomask::cellmap::{report::CropReport, synth, CropGroup, CropOptions};
//! let dir = tempfile::tempdir()?;
//! let crop = CropGroup::open(synth::write_demo_crop(dir.path(), 8, annomask::ZarrFormat::V2)?)?;
//! let report = CropReport::new(&crop, Some(&synth::demo_groupings()), &CropOptions::default());
//! let text = report.to_string();
//! assert!(text.contains("er_lum") && text.contains("not in the crop"));
//! let json = report.to_json();
//! assert_eq!(json["classes"][0]["name"], "mito_mem");
//! assert_eq!(json["plan"]["channels"][1]["zeroed"], true);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Value, json};

use super::attrs::{self, AnnotationKind, Encoding};
use super::crop::{CropGroup, CropOptions};
use super::plan::CropPlan;
use crate::groupings::ClassGroupings;
use crate::label::LabelDtype;

/// One row of the class table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassRow {
    /// Class name.
    pub name: String,
    /// Whether the crop lists it in `class_names` (a grouping class it lacks is not).
    pub in_crop: bool,
    /// Semantic or instance (classes in the crop).
    pub kind: Option<AnnotationKind>,
    /// Its codes (classes in the crop).
    pub encoding: Option<Encoding>,
    /// `complement_counts` of its array at the scale, else of its group, where given.
    pub complement_counts: Option<BTreeMap<String, u64>>,
    /// dtype of its array at the scale, where it opens.
    pub dtype: Option<LabelDtype>,
    /// Shape of its array at the scale, where it opens.
    pub shape: Option<Vec<u64>>,
    /// The channels that group it.
    pub channels: Vec<String>,
    /// Whether the mask reads it (a channel that is not zeroed groups it).
    pub read: bool,
}

/// The report; see the module docs.
#[derive(Clone, Debug, PartialEq)]
pub struct CropReport {
    /// The crop's path.
    pub crop: String,
    /// `cellmap.annotation.version`.
    pub version: Option<String>,
    /// The scale the arrays are described at.
    pub scale: String,
    /// The crop's classes in `class_names` order, then the grouping classes it lacks.
    pub classes: Vec<ClassRow>,
    /// The plan, when groupings are given.
    pub plan: Option<CropPlan>,
    /// Problems worth a look: grouping classes the crop lacks, arrays that do not open at the
    /// scale or disagree in geometry, codes the dtype cannot hold, a semantic class without a
    /// `present` code, an unexpected version.
    pub warnings: Vec<String>,
}

impl CropReport {
    /// The report of `crop` at `options.scale`, with the plan of `groupings` where given. It
    /// never fails: what would stop a mask (a missing scale, mismatched arrays) is a warning.
    pub fn new(
        crop: &CropGroup,
        groupings: Option<&ClassGroupings>,
        options: &CropOptions,
    ) -> Self {
        let scale = options.scale.clone();
        let mut warnings = Vec::new();
        match crop.version() {
            Some(v) if v.starts_with("0.1.") => {}
            Some(v) => warnings.push(format!(
                "cellmap.annotation.version is {v:?}; annomask reads cellmap-schemas 0.1.x"
            )),
            None => warnings.push("cellmap.annotation.version is not given".into()),
        }
        let annotations: Vec<_> = crop
            .classes()
            .iter()
            .map(|c| c.annotation.clone())
            .collect();
        let plan = groupings.map(|g| CropPlan::new(g, &annotations));
        let channels_of = |class: &str| -> Vec<String> {
            groupings.map_or_else(Vec::new, |g| {
                g.channels()
                    .iter()
                    .filter(|c| c.classes.iter().any(|k| k == class))
                    .map(|c| c.name.clone())
                    .collect()
            })
        };
        let read = |class: &str| {
            plan.as_ref()
                .is_some_and(|p| p.classes().iter().any(|c| c.name == class))
        };
        let mut rows = Vec::new();
        let mut read_volumes = Vec::new();
        for class in crop.classes() {
            let name = class.name();
            let mut row = ClassRow {
                name: name.to_string(),
                in_crop: true,
                kind: Some(class.annotation.kind),
                encoding: Some(class.annotation.encoding),
                complement_counts: class.annotation.complement_counts.clone(),
                dtype: None,
                shape: None,
                channels: channels_of(name),
                read: read(name),
            };
            match crop.open_class(name, &scale) {
                Ok(volume) => {
                    row.dtype = Some(volume.dtype());
                    row.shape = Some(volume.shape().to_vec());
                    match attrs::array_complement_counts(volume.name(), name, volume.attributes()) {
                        Ok(Some(counts)) => row.complement_counts = Some(counts),
                        Ok(None) => {}
                        Err(e) => warnings.push(e.to_string()),
                    }
                    for (key, code) in class.annotation.encoding.codes() {
                        if !fits(volume.dtype(), code) {
                            warnings.push(format!(
                                "class {name:?}: {key} code {code} cannot occur in its {} array: \
                                 it matches no voxel",
                                volume.dtype()
                            ));
                        }
                    }
                    if row.read {
                        read_volumes.push(volume);
                    }
                }
                Err(e) => warnings.push(e.to_string()),
            }
            if row.read
                && class.annotation.kind == AnnotationKind::Semantic
                && class.annotation.encoding.present.is_none()
            {
                warnings.push(format!(
                    "class {name:?} is semantic without a present code: it is never a positive target"
                ));
            }
            rows.push(row);
        }
        if let Some(g) = groupings {
            for class in g.classes() {
                if crop.class(class).is_some() {
                    continue;
                }
                let channels = channels_of(class);
                warnings.push(format!(
                    "class {class:?} of the groupings is not in this crop (not annotated): \
                     channel(s) {} zeroed",
                    channels.join(", ")
                ));
                rows.push(ClassRow {
                    name: class.to_string(),
                    in_crop: false,
                    kind: None,
                    encoding: None,
                    complement_counts: None,
                    dtype: None,
                    shape: None,
                    channels,
                    read: false,
                });
            }
        }
        if let Some((first, rest)) = read_volumes.split_first() {
            let mismatch = rest
                .iter()
                .find_map(|other| crop.check_same_geometry(first, other).err());
            warnings.extend(mismatch.map(|e| e.to_string()));
        }
        Self {
            crop: crop.name().to_string(),
            version: crop.version().map(str::to_string),
            scale,
            classes: rows,
            plan,
            warnings,
        }
    }

    /// The report as JSON: `crop`, `version`, `scale`, `classes` (one object per row), `plan`
    /// (`channels` with `name`, `classes`, `zeroed`, `lacking`; `classes_read`), `plan_text`,
    /// `warnings`.
    pub fn to_json(&self) -> Value {
        let classes: Vec<Value> = self
            .classes
            .iter()
            .map(|r| {
                let encoding = r.encoding.map(|e| {
                    e.codes()
                        .map(|(k, v)| (k.to_string(), json!(v)))
                        .collect::<serde_json::Map<_, _>>()
                });
                json!({
                    "name": r.name,
                    "in_crop": r.in_crop,
                    "type": r.kind.map(AnnotationKind::name),
                    "encoding": encoding,
                    "complement_counts": r.complement_counts,
                    "dtype": r.dtype.map(LabelDtype::name),
                    "shape": r.shape,
                    "channels": r.channels,
                    "read": r.read,
                })
            })
            .collect();
        let plan = self.plan.as_ref().map(|p| {
            let channels: Vec<Value> = p
                .channels()
                .iter()
                .map(|c| {
                    json!({"name": c.name, "classes": c.members, "zeroed": c.zeroed,
                           "lacking": c.missing})
                })
                .collect();
            let read: Vec<&str> = p.classes().iter().map(|c| c.name.as_str()).collect();
            json!({"channels": channels, "classes_read": read})
        });
        json!({
            "crop": self.crop,
            "version": self.version,
            "scale": self.scale,
            "classes": classes,
            "plan": plan,
            "plan_text": self.plan.as_ref().map(ToString::to_string),
            "warnings": self.warnings,
        })
    }
}

/// Whether some voxel of `dtype` reads as the 64-bit pattern `code`.
fn fits(dtype: LabelDtype, code: u64) -> bool {
    let bits = 8 * dtype.size() as u32;
    if bits == 64 {
        return true;
    }
    let high = code >> (bits - 1);
    match dtype.is_signed() {
        // Sign-extended: the bits above the value's sign bit are all 0 or all 1.
        true => high == 0 || high == u64::MAX >> (bits - 1),
        false => code >> bits == 0,
    }
}

impl fmt::Display for CropReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let version = self
            .version
            .as_deref()
            .map_or_else(String::new, |v| format!(", cellmap-schemas {v}"));
        writeln!(
            f,
            "crop group: {}{version}, scale {}",
            self.crop, self.scale
        )?;
        let dash = || "-".to_string();
        let rows: Vec<[String; 8]> = self
            .classes
            .iter()
            .map(|r| {
                let counts = r.complement_counts.as_ref().map_or_else(dash, |c| {
                    c.iter()
                        .map(|(k, v)| format!("{k} {v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                });
                [
                    r.name.clone(),
                    r.kind.map_or_else(dash, |k| k.to_string()),
                    r.dtype.map_or_else(dash, |d| d.to_string()),
                    r.shape.as_ref().map_or_else(dash, |s| format!("{s:?}")),
                    r.encoding.map_or_else(dash, |e| e.to_string()),
                    counts,
                    match (r.in_crop, r.read) {
                        (false, _) => "no (not in the crop)".to_string(),
                        (true, true) => "yes, read".to_string(),
                        (true, false) => "yes".to_string(),
                    },
                    r.channels.join(", "),
                ]
            })
            .collect();
        let header = [
            "class",
            "type",
            "dtype",
            "shape",
            "encoding",
            "complement counts",
            "in crop",
            "channels",
        ];
        f.write_str(&crate::report::table(&header, &rows, &[]))?;
        if let Some(plan) = &self.plan {
            write!(f, "\n{plan}")?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_that_fit_a_dtype() {
        assert!(fits(LabelDtype::U8, 255) && !fits(LabelDtype::U8, 256));
        assert!(fits(LabelDtype::I8, u64::MAX) && fits(LabelDtype::I8, 127));
        assert!(!fits(LabelDtype::I8, 255) && !fits(LabelDtype::I8, 128));
        assert!(
            fits(LabelDtype::I8, 0xFFFF_FFFF_FFFF_FF80)
                && !fits(LabelDtype::I8, 0xFFFF_FFFF_FFFF_FF7F)
        );
        assert!(fits(LabelDtype::U64, u64::MAX) && fits(LabelDtype::I64, 1 << 63));
        assert!(fits(LabelDtype::U32, u32::MAX as u64) && !fits(LabelDtype::U32, 1 << 32));
    }
}
