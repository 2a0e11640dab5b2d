//! [`CropPlan`]: the one description of a crop-group mask that both engines consume (SPEC 1.4).
//!
//! Computed once from the class groupings and the crop's class annotations. For channel `c`,
//! voxel `v` and `value_k(v)` the value of class `k`'s array:
//!
//! ```text
//! mask[c, v]   = !zeroed[c] && for every class k of c: value_k(v) != unknown_k
//! target[c, v] = !zeroed[c] && for some class k of c:  positive_k(value_k(v))
//! positive_k(x) = x == present_k                        (semantic; never without a present code)
//!               = x not in {absent_k, present_k, unknown_k} (instance)
//! ```
//!
//! A channel is **zeroed** (mask and targets 0 everywhere) when one of its classes is not in
//! the crop's `class_names`: that class was not annotated at all. A class without an `unknown`
//! code is known everywhere; `absent` is a known negative, trained on. Only the classes of
//! channels that are not zeroed are read ([`CropPlan::classes`]); each carries the set of those
//! channels, and each channel the set of its classes, as bitmasks.
//!
//! ```
//! use annomask::cellmap::attrs::{AnnotationKind, ClassAnnotation, Encoding};
//! use annomask::cellmap::CropPlan;
//! use annomask::ClassGroupings;
//! let encoding = Encoding { absent: Some(0), present: Some(1), unknown: Some(255) };
//! let semantic = |name: &str| ClassAnnotation::new(name, AnnotationKind::Semantic, encoding);
//! let groupings = ClassGroupings::new([
//!     ("mito", vec!["mito_mem", "mito_lum"]),
//!     ("er", vec!["er_mem", "er_lum"]),
//! ])?;
//! let plan = CropPlan::new(&groupings, &[semantic("mito_lum"), semantic("mito_mem"), semantic("er_mem")]);
//! assert!(!plan.zeroed(0) && plan.zeroed(1)); // er_lum is not in the crop
//! let read: Vec<&str> = plan.classes().iter().map(|c| c.name.as_str()).collect();
//! assert_eq!(read, ["mito_lum", "mito_mem"]); // crop order; er_mem is not needed
//! println!("{plan}");
//! # Ok::<(), annomask::GroupingsError>(())
//! ```

use std::fmt;

use super::attrs::{AnnotationKind, ClassAnnotation, Encoding};
use crate::groupings::ClassGroupings;
use crate::labels::plan::{ChannelSet, words_for};
use crate::source::ChannelPlan;

/// A class the engines read, with its codes and the channels it feeds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassPlan {
    /// The class name.
    pub name: String,
    /// Semantic or instance.
    pub kind: AnnotationKind,
    /// Its codes.
    pub encoding: Encoding,
    /// The channels (not zeroed) that group it.
    pub channels: ChannelSet,
}

impl ClassPlan {
    /// Whether a voxel of value `value` (as its 64-bit bit pattern) is known: not `unknown`.
    pub fn known(&self, value: u64) -> bool {
        self.encoding.unknown != Some(value)
    }

    /// Whether a voxel of value `value` holds the class: `value == present` (semantic), or
    /// `value` is none of the codes (instance). `unknown` is never positive.
    pub fn positive(&self, value: u64) -> bool {
        match self.kind {
            AnnotationKind::Semantic => self.encoding.present == Some(value),
            AnnotationKind::Instance => self.encoding.codes().all(|(_, c)| c != value),
        }
    }
}

/// The complete description of a crop-group mask computation; see the module docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CropPlan {
    channels: Vec<ChannelPlan<String>>,
    /// Per channel, its classes as indices into `classes`; empty when zeroed.
    class_sets: Vec<ChannelSet>,
    classes: Vec<ClassPlan>,
}

impl CropPlan {
    /// The plan for `groupings` on a crop whose `class_names` are `crop_classes` (in the
    /// crop's order). The classes to read are those of channels that are not zeroed, in the
    /// crop's order.
    pub fn new(groupings: &ClassGroupings, crop_classes: &[ClassAnnotation]) -> Self {
        let n = groupings.len();
        let in_crop = |name: &str| crop_classes.iter().position(|c| c.class_name == name);
        let channels: Vec<ChannelPlan<String>> = groupings
            .channels()
            .iter()
            .map(|ch| {
                let lacking: Vec<String> = ch
                    .classes
                    .iter()
                    .filter(|c| in_crop(c).is_none())
                    .cloned()
                    .collect();
                ChannelPlan {
                    name: ch.name.clone(),
                    members: ch.classes.clone(),
                    zeroed: !lacking.is_empty(),
                    missing: lacking,
                }
            })
            .collect();
        let classes: Vec<ClassPlan> = crop_classes
            .iter()
            .filter_map(|annotation| {
                let mut set = ChannelSet::new(n);
                let mut used = false;
                for (c, ch) in channels.iter().enumerate() {
                    if !ch.zeroed && ch.members.contains(&annotation.class_name) {
                        set.insert(c);
                        used = true;
                    }
                }
                used.then(|| ClassPlan {
                    name: annotation.class_name.clone(),
                    kind: annotation.kind,
                    encoding: annotation.encoding,
                    channels: set,
                })
            })
            .collect();
        let class_sets = (0..channels.len())
            .map(|c| {
                let mut set = ChannelSet::new(classes.len());
                for (k, class) in classes.iter().enumerate() {
                    if class.channels.contains(c) {
                        set.insert(k);
                    }
                }
                set
            })
            .collect();
        Self {
            channels,
            class_sets,
            classes,
        }
    }

    /// Number of channels.
    pub fn num_channels(&self) -> usize {
        self.channels.len()
    }

    /// The channels' plans.
    pub fn channels(&self) -> &[ChannelPlan<String>] {
        &self.channels
    }

    /// The classes of channel `c` as indices into [`CropPlan::classes`]; empty when zeroed.
    pub fn class_set(&self, c: usize) -> &ChannelSet {
        &self.class_sets[c]
    }

    /// Whether channel `c` is 0 everywhere.
    pub fn zeroed(&self, c: usize) -> bool {
        self.channels[c].zeroed
    }

    /// The classes to read, in the crop's order; engines take one array per entry.
    pub fn classes(&self) -> &[ClassPlan] {
        &self.classes
    }

    /// `u32` words of a channel set ([`ClassPlan::channels`]).
    pub fn words_per_set(&self) -> usize {
        words_for(self.num_channels())
    }

    /// Per channel, the first channel whose mask is the same by construction (the channel
    /// itself when no earlier one is), or `None` for a zeroed channel: channels reading the
    /// same classes are equal.
    pub fn first_equal_channels(&self) -> Vec<Option<usize>> {
        crate::labels::plan::first_equal(
            self.channels
                .iter()
                .zip(&self.class_sets)
                .map(|(c, set)| (!c.zeroed).then_some(set)),
        )
    }
}

/// `name: rule` text of a class: when it is known, and when positive.
fn describe_class(class: &ClassPlan) -> String {
    let known = match class.encoding.unknown {
        Some(u) => format!("known where != {u}"),
        None => "known everywhere".to_string(),
    };
    let positive = match (class.kind, class.encoding.present) {
        (AnnotationKind::Semantic, Some(p)) => format!("positive where == {p}"),
        (AnnotationKind::Semantic, None) => "never positive (no present code)".to_string(),
        (AnnotationKind::Instance, _) => {
            let codes: Vec<String> = class.encoding.codes().map(|(_, v)| v.to_string()).collect();
            if codes.is_empty() {
                "positive everywhere (no codes)".to_string()
            } else {
                format!("positive where not in [{}]", codes.join(", "))
            }
        }
    };
    format!(
        "{} ({}, {}): {known}, {positive}",
        class.name, class.kind, class.encoding
    )
}

impl fmt::Display for CropPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "crop plan: {} channel(s), {} class array(s) to read",
            self.num_channels(),
            self.classes.len()
        )?;
        for (k, class) in self.classes.iter().enumerate() {
            writeln!(f, "  class [{k}] {}", describe_class(class))?;
        }
        let name_width = self
            .channels
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(0);
        let lists: Vec<String> = self
            .channels
            .iter()
            .map(|ch| format!("[{}]", ch.members.join(", ")))
            .collect();
        let list_width = lists.iter().map(String::len).max().unwrap_or(0);
        for (c, (ch, list)) in self.channels.iter().zip(&lists).enumerate() {
            let rule = if ch.zeroed {
                format!("zeroed: not in the crop: {}", ch.missing.join(", "))
            } else {
                let classes: Vec<&ClassPlan> = self.class_sets[c]
                    .iter()
                    .map(|k| &self.classes[k])
                    .collect();
                let known: Vec<String> = classes
                    .iter()
                    .filter_map(|c| c.encoding.unknown.map(|u| format!("{} != {u}", c.name)))
                    .collect();
                let positive: Vec<String> = classes
                    .iter()
                    .filter_map(|c| match c.kind {
                        AnnotationKind::Semantic => {
                            c.encoding.present.map(|p| format!("{} == {p}", c.name))
                        }
                        AnnotationKind::Instance => {
                            let codes: Vec<String> =
                                c.encoding.codes().map(|(_, v)| v.to_string()).collect();
                            Some(match codes.is_empty() {
                                true => format!("{} (any value)", c.name),
                                false => format!("{} not in [{}]", c.name, codes.join(", ")),
                            })
                        }
                    })
                    .collect();
                let rule = |what: &str, parts: Vec<String>, join: &str, constant: &str| match parts
                    .is_empty()
                {
                    true => format!("{what} {constant}"),
                    false => format!("{what} = 1 where {}", parts.join(join)),
                };
                format!(
                    "{}; {}",
                    rule("mask", known, " and ", "= 1 everywhere (no unknown code)"),
                    rule(
                        "target",
                        positive,
                        " or ",
                        "= 0 everywhere (no present code)"
                    )
                )
            };
            writeln!(
                f,
                "  [{c}] {:<name_width$}  {list:<list_width$}  -> {rule}",
                ch.name
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_link_channels_and_classes() {
        let g = ClassGroupings::new([
            ("a", vec!["x", "y"]),
            ("b", vec!["y"]),
            ("c", vec!["y", "missing"]),
            ("d", vec!["z"]),
        ])
        .unwrap();
        let e = Encoding::default();
        let crop = [
            ClassAnnotation::new("z", AnnotationKind::Instance, e),
            ClassAnnotation::new("unused", AnnotationKind::Semantic, e),
            ClassAnnotation::new("y", AnnotationKind::Semantic, e),
            ClassAnnotation::new("x", AnnotationKind::Semantic, e),
        ];
        let plan = CropPlan::new(&g, &crop);
        let names: Vec<&str> = plan.classes().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["z", "y", "x"]);
        assert_eq!(
            plan.classes()[1].channels.iter().collect::<Vec<_>>(),
            [0, 1]
        );
        assert_eq!(plan.class_set(0).iter().collect::<Vec<_>>(), [1, 2]);
        assert!(plan.zeroed(2) && plan.class_set(2).iter().count() == 0);
        assert_eq!(plan.channels()[2].missing, ["missing"]);
        let text = plan.to_string();
        assert!(text.contains("zeroed: not in the crop: missing"), "{text}");
        assert!(
            text.contains(
                "[3] d  [z]           -> mask = 1 everywhere (no unknown code); \
                 target = 1 where z (any value)"
            ),
            "{text}"
        );
        assert!(
            text.contains("z (instance, {}): known everywhere, positive everywhere"),
            "{text}"
        );
    }

    #[test]
    fn known_and_positive() {
        let sem = ClassPlan {
            name: "s".into(),
            kind: AnnotationKind::Semantic,
            encoding: Encoding {
                absent: Some(0),
                present: Some(1),
                unknown: Some(255),
            },
            channels: ChannelSet::new(1),
        };
        assert!(sem.positive(1) && !sem.positive(255) && !sem.positive(7));
        assert!(!sem.known(255) && sem.known(0));
        let inst = ClassPlan {
            kind: AnnotationKind::Instance,
            ..sem
        };
        assert!(inst.positive(7) && !inst.positive(1) && !inst.positive(0) && !inst.positive(255));
    }
}
