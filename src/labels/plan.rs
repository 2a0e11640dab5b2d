//! [`MaskPlan`]: the one description of the work that both engines consume (SPEC 2).
//!
//! Computed once from metadata, groupings and options. An engine sees only the plan and the
//! labels, and computes, for channel `c` and voxel label `l`:
//!
//! ```text
//! mask[c, v] = !zeroed[c]  &&  l != background  &&  !(c in voxel_table[l])
//! ```
//!
//! where `voxel_table` is the sorted missing-id table under the per-voxel policy and empty under
//! the whole-channel policy (there a channel with a missing id is `zeroed` instead).
//!
//! ```
//! use std::collections::BTreeSet;
//! use annomask::{Groupings, MaskOptions, MaskPlan, MaskPolicy};
//! let groupings = Groupings::new([("mito", vec![3, 4]), ("er", vec![16])])?;
//! let missing = BTreeSet::from([4]);
//! let plan = MaskPlan::new(&groupings, &missing, &MaskOptions::default());
//! assert!(plan.zeroed(0) && !plan.zeroed(1));
//! let per_voxel = MaskPlan::new(&groupings, &missing,
//!     &MaskOptions::default().policy(MaskPolicy::PerVoxel));
//! assert!(!per_voxel.zeroed(0));
//! assert_eq!(per_voxel.voxel_table()[0].id, 4);
//! assert!(per_voxel.voxel_table()[0].channels.contains(0));
//! # Ok::<(), annomask::GroupingsError>(())
//! ```

use std::collections::BTreeSet;
use std::fmt;

use crate::groupings::Groupings;
use crate::labels::metadata::LabelMetadata;
use crate::options::{MaskOptions, MaskPolicy};

/// A set of channels as a bitmask of `u32` words (bit `c % 32` of word `c / 32`), the layout the
/// GPU table uses.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ChannelSet {
    words: Vec<u32>,
}

impl ChannelSet {
    /// An empty set able to hold `num_channels` channels.
    pub fn new(num_channels: usize) -> Self {
        Self {
            words: vec![0; words_for(num_channels)],
        }
    }

    /// Adds channel `c`.
    pub fn insert(&mut self, c: usize) {
        self.words[c / 32] |= 1 << (c % 32);
    }

    /// Whether channel `c` is in the set.
    pub fn contains(&self, c: usize) -> bool {
        self.words
            .get(c / 32)
            .is_some_and(|w| w >> (c % 32) & 1 == 1)
    }

    /// The channels in the set, ascending.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.words.len() * 32).filter(|&c| self.contains(c))
    }

    /// The bitmask words.
    pub fn words(&self) -> &[u32] {
        &self.words
    }
}

/// Number of `u32` words of a [`ChannelSet`] for `num_channels` channels (at least 1).
pub fn words_for(num_channels: usize) -> usize {
    num_channels.div_ceil(32).max(1)
}

/// A label id and a set of channels: in the missing table, the channels the id switches off;
/// in the target table, the channels whose targets it turns on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdChannels {
    /// The label id.
    pub id: u64,
    /// The channels.
    pub channels: ChannelSet,
}

pub use crate::source::ChannelPlan;

/// The complete description of a mask computation (SPEC 2); see the module docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaskPlan {
    channels: Vec<ChannelPlan<u64>>,
    background: u64,
    policy: MaskPolicy,
    table: Vec<IdChannels>,
    targets: Vec<IdChannels>,
    any_foreground: ChannelSet,
}

impl MaskPlan {
    /// The plan for `groupings` given the set of missing ids.
    pub fn new(groupings: &Groupings, missing: &BTreeSet<u64>, options: &MaskOptions) -> Self {
        let n = groupings.len();
        let mut table: Vec<IdChannels> = Vec::new();
        let channels = groupings
            .channels()
            .iter()
            .enumerate()
            .map(|(c, ch)| {
                let mut missing_here: Vec<u64> = ch
                    .ids
                    .iter()
                    .copied()
                    .filter(|id| missing.contains(id))
                    .collect();
                missing_here.sort_unstable();
                missing_here.dedup();
                for &id in &missing_here {
                    insert_sorted(&mut table, id, n).channels.insert(c);
                }
                ChannelPlan {
                    name: ch.name.clone(),
                    members: ch.ids.clone(),
                    zeroed: options.policy == MaskPolicy::WholeChannel && !missing_here.is_empty(),
                    missing: missing_here,
                }
            })
            .collect();
        let mut targets: Vec<IdChannels> = Vec::new();
        let mut any_foreground = ChannelSet::new(n);
        for (c, ch) in groupings.channels().iter().enumerate() {
            if ch.ids.is_empty() {
                any_foreground.insert(c);
            }
            for &id in &ch.ids {
                insert_sorted(&mut targets, id, n).channels.insert(c);
            }
        }
        Self {
            channels,
            background: options.background,
            policy: options.policy,
            table,
            targets,
            any_foreground,
        }
    }

    /// The plan for `groupings` given a label array's metadata.
    pub fn from_metadata(
        groupings: &Groupings,
        metadata: &LabelMetadata,
        options: &MaskOptions,
    ) -> Self {
        Self::new(groupings, &metadata.missing_ids(options.sparse), options)
    }

    /// Number of channels.
    pub fn num_channels(&self) -> usize {
        self.channels.len()
    }

    /// The channels' plans.
    pub fn channels(&self) -> &[ChannelPlan<u64>] {
        &self.channels
    }

    /// Whether channel `c` is 0 everywhere.
    pub fn zeroed(&self, c: usize) -> bool {
        self.channels[c].zeroed
    }

    /// The background value.
    pub fn background(&self) -> u64 {
        self.background
    }

    /// The policy.
    pub fn policy(&self) -> MaskPolicy {
        self.policy
    }

    /// Every missing id that some channel groups, sorted, with its channels.
    pub fn missing_table(&self) -> &[IdChannels] {
        &self.table
    }

    /// The table an engine applies per voxel: the missing table under the per-voxel policy,
    /// empty under the whole-channel policy.
    pub fn voxel_table(&self) -> &[IdChannels] {
        match self.policy {
            MaskPolicy::PerVoxel => &self.table,
            MaskPolicy::WholeChannel => &[],
        }
    }

    /// The target table (the fused targets of the feeder, DaCapo's `BinarizeArray`): every id
    /// some channel groups, sorted, with the channels that group it. The target of channel `c`
    /// at a voxel with label `l` is 1 iff `c` is in the entry of `l`, or `c` is in
    /// [`MaskPlan::any_foreground`] and `l != background`.
    pub fn target_table(&self) -> &[IdChannels] {
        &self.targets
    }

    /// Channels with an empty id list: their target is `labels != background`.
    pub fn any_foreground(&self) -> &ChannelSet {
        &self.any_foreground
    }

    /// `u32` words per channel set in the table.
    pub fn words_per_set(&self) -> usize {
        words_for(self.num_channels())
    }

    /// Per channel, the first channel whose mask is the same by construction (the channel
    /// itself when no earlier one is), or `None` for a zeroed channel: a channel that is not
    /// zeroed is `labels != background` with its missing ids knocked out under the per-voxel
    /// policy (none under the whole-channel policy), so channels with the same knock-outs are
    /// equal.
    ///
    /// ```
    /// use std::collections::BTreeSet;
    /// use annomask::{Groupings, MaskOptions, MaskPlan};
    /// let g = Groupings::new([("mito", vec![3, 4]), ("er", vec![7]), ("all", vec![])])?;
    /// let plan = MaskPlan::new(&g, &BTreeSet::from([4]), &MaskOptions::default());
    /// assert_eq!(plan.first_equal_channels(), [None, Some(1), Some(1)]);
    /// # Ok::<(), annomask::GroupingsError>(())
    /// ```
    pub fn first_equal_channels(&self) -> Vec<Option<usize>> {
        first_equal(
            self.channels
                .iter()
                .map(|c| (!c.zeroed).then_some(&c.missing)),
        )
    }
}

/// Per item, the index of the first item with an equal key (`None` where the key is `None`).
pub(crate) fn first_equal<K: PartialEq>(
    keys: impl Iterator<Item = Option<K>>,
) -> Vec<Option<usize>> {
    let mut seen: Vec<(K, usize)> = Vec::new();
    keys.enumerate()
        .map(|(c, key)| {
            let key = key?;
            Some(match seen.iter().find(|(k, _)| *k == key) {
                Some(&(_, first)) => first,
                None => {
                    seen.push((key, c));
                    c
                }
            })
        })
        .collect()
}

/// The entry of `id` in a table sorted by id, inserted with an empty channel set if absent.
fn insert_sorted(table: &mut Vec<IdChannels>, id: u64, num_channels: usize) -> &mut IdChannels {
    let at = match table.binary_search_by_key(&id, |m| m.id) {
        Ok(i) => i,
        Err(i) => {
            table.insert(
                i,
                IdChannels {
                    id,
                    channels: ChannelSet::new(num_channels),
                },
            );
            i
        }
    };
    &mut table[at]
}

impl fmt::Display for MaskPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "mask plan: {} channel(s), background {}, policy {}",
            self.num_channels(),
            self.background,
            self.policy
        )?;
        if self.table.is_empty() {
            writeln!(f, "missing ids: none in any channel")?;
        } else {
            let entries: Vec<String> = self
                .table
                .iter()
                .map(|m| {
                    let names: Vec<&str> = m
                        .channels
                        .iter()
                        .map(|c| self.channels[c].name.as_str())
                        .collect();
                    format!("{} -> [{}]", m.id, names.join(", "))
                })
                .collect();
            writeln!(f, "missing ids: {}", entries.join("; "))?;
        }
        let ids: Vec<String> = self
            .channels
            .iter()
            .map(|ch| match ch.members.is_empty() {
                true => "ids [] (any foreground)".to_string(),
                false => format!("ids {:?}", ch.members),
            })
            .collect();
        let name_width = self
            .channels
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(0);
        let ids_width = ids.iter().map(String::len).max().unwrap_or(0);
        for (c, (ch, ids)) in self.channels.iter().zip(&ids).enumerate() {
            let rule = if ch.zeroed {
                format!("zeroed: missing {:?}", ch.missing)
            } else if self.policy == MaskPolicy::PerVoxel && !ch.missing.is_empty() {
                format!(
                    "labels != {} except missing {:?}",
                    self.background, ch.missing
                )
            } else {
                format!("labels != {}", self.background)
            };
            writeln!(
                f,
                "  [{c}] {:<name_width$}  {ids:<ids_width$}  -> {rule}",
                ch.name
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groupings() -> Groupings {
        Groupings::new([
            ("mito", vec![3, 4, 5]),
            ("er", vec![16, 17, 4]),
            ("nuc", vec![20]),
            ("fg", vec![]),
        ])
        .unwrap()
    }

    #[test]
    fn whole_channel_zeroes_channels_with_a_missing_id() {
        let plan = MaskPlan::new(
            &groupings(),
            &BTreeSet::from([4, 17, 99]),
            &MaskOptions::default(),
        );
        let zeroed: Vec<bool> = (0..4).map(|c| plan.zeroed(c)).collect();
        assert_eq!(zeroed, [true, true, false, false]);
        assert!(plan.voxel_table().is_empty());
        let ids: Vec<u64> = plan.missing_table().iter().map(|m| m.id).collect();
        assert_eq!(ids, [4, 17]);
        assert_eq!(
            plan.missing_table()[0].channels.iter().collect::<Vec<_>>(),
            [0, 1]
        );
        assert_eq!(plan.channels()[1].missing, [4, 17]);
        let targets: Vec<(u64, Vec<usize>)> = plan
            .target_table()
            .iter()
            .map(|t| (t.id, t.channels.iter().collect()))
            .collect();
        assert_eq!(
            targets,
            [
                (3, vec![0]),
                (4, vec![0, 1]),
                (5, vec![0]),
                (16, vec![1]),
                (17, vec![1]),
                (20, vec![2])
            ]
        );
        assert_eq!(plan.any_foreground().iter().collect::<Vec<_>>(), [3]);
    }

    #[test]
    fn per_voxel_keeps_channels_and_lists_ids() {
        let opts = MaskOptions::default()
            .policy(MaskPolicy::PerVoxel)
            .background(7);
        let plan = MaskPlan::new(&groupings(), &BTreeSet::from([4, 17]), &opts);
        assert!((0..4).all(|c| !plan.zeroed(c)));
        assert_eq!(plan.voxel_table().len(), 2);
        assert_eq!(plan.background(), 7);
        let text = plan.to_string();
        assert!(text.contains("4 -> [mito, er]"), "{text}");
        assert!(
            text.contains("labels != 7 except missing [4, 17]"),
            "{text}"
        );
        assert!(text.contains("ids [] (any foreground)"), "{text}");
    }

    #[test]
    fn channel_sets_span_words() {
        let mut s = ChannelSet::new(70);
        assert_eq!(s.words().len(), 3);
        for c in [0, 31, 32, 69] {
            s.insert(c);
        }
        assert_eq!(s.iter().collect::<Vec<_>>(), [0, 31, 32, 69]);
        assert!(!s.contains(33) && !s.contains(1000));
        assert_eq!(words_for(0), 1);
    }
}
