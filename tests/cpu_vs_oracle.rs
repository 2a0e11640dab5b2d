//! Property tests: the CPU engine equals the naive oracle on random label volumes of every dtype,
//! random id tables (ids >= 2^32, u64::MAX, negative signed labels), groupings (0 to 70
//! channels), backgrounds and both policies.

mod common;

use std::collections::BTreeSet;

use annomask::{Groupings, LabelArray, LabelDtype, MaskOptions, MaskPlan, MaskPolicy, cpu};
use common::labels_of;
use proptest::prelude::*;

/// Ids that stress the comparisons: small, dtype borders, >= 2^32, >= 2^63, all ones.
const SPECIAL: [u64; 12] = [
    0,
    1,
    2,
    127,
    128,
    255,
    256,
    65535,
    1 << 32,
    (1 << 32) + 1,
    1 << 63,
    u64::MAX,
];

fn id() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => prop::sample::select(SPECIAL.to_vec()),
        3 => 0u64..12,
        1 => any::<u64>(),
        1 => (0u64..4).prop_map(|k| u64::MAX - k),
    ]
}

fn dtype() -> impl Strategy<Value = LabelDtype> {
    prop::sample::select(LabelDtype::ALL.to_vec())
}

#[derive(Debug, Clone)]
struct Case {
    dtype: LabelDtype,
    shape: Vec<usize>,
    raw: Vec<u64>,
    channels: Vec<Vec<u64>>,
    missing: BTreeSet<u64>,
    background: u64,
    per_voxel: bool,
}

fn case() -> impl Strategy<Value = Case> {
    let shape = prop::collection::vec(1usize..9, 2..=5).prop_filter("at most 4096 voxels", |s| {
        s.iter().product::<usize>() <= 4096
    });
    let channel_count = prop_oneof![4 => 0usize..6, 1 => 6usize..70];
    (
        dtype(),
        shape,
        channel_count,
        prop::collection::vec(id(), 1..10),
    )
        .prop_flat_map(|(dtype, shape, nch, pool)| {
            let n: usize = shape.iter().product();
            // Negative signed values come from raw draws with the top bit set.
            let voxel = prop_oneof![
                4 => prop::sample::select(pool.clone()),
                1 => any::<u64>(),
                1 => (0u64..3).prop_map(|k| u64::MAX - k),
            ];
            let member = prop_oneof![3 => prop::sample::select(pool.clone()), 1 => id()];
            (
                Just(dtype),
                Just(shape),
                prop::collection::vec(voxel, n),
                prop::collection::vec(prop::collection::vec(member.clone(), 0..5), nch),
                prop::collection::btree_set(member, 0..6),
                prop_oneof![3 => Just(0u64), 1 => prop::sample::select(pool), 1 => any::<u64>()],
                any::<bool>(),
            )
        })
        .prop_map(
            |(dtype, shape, raw, channels, missing, background, per_voxel)| Case {
                dtype,
                shape,
                raw,
                channels,
                missing,
                background,
                per_voxel,
            },
        )
}

fn groupings(channels: &[Vec<u64>]) -> Groupings {
    Groupings::new(
        channels
            .iter()
            .enumerate()
            .map(|(i, ids)| (format!("c{i}"), ids.clone())),
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn cpu_engine_equals_oracle(c in case()) {
        let labels = labels_of(c.dtype, &c.shape, &c.raw);
        let policy = if c.per_voxel { MaskPolicy::PerVoxel } else { MaskPolicy::WholeChannel };
        let options = MaskOptions::default().background(c.background).policy(policy);
        let plan = MaskPlan::new(&groupings(&c.channels), &c.missing, &options);
        let mask = cpu::compute(&plan, &labels);
        let mut want_shape = vec![c.channels.len()];
        want_shape.extend(&c.shape);
        prop_assert_eq!(mask.shape(), &want_shape[..]);
        let want = common::oracle(&common::bits(&labels), &c.channels, &c.missing, c.background, c.per_voxel);
        prop_assert_eq!(mask.as_slice().unwrap(), &want[..]);
    }
}

#[test]
fn negative_signed_labels_are_not_background_and_match_only_their_bit_pattern() {
    let labels = LabelArray::from(ndarray::arr2(&[[-1i16, 0], [5, -32768]]).into_dyn());
    let channels = vec![vec![u64::MAX], vec![0xFFFF], vec![]];
    let plan = MaskPlan::new(
        &groupings(&channels),
        &BTreeSet::from([u64::MAX, 0xFFFF]),
        &MaskOptions::default().policy(MaskPolicy::PerVoxel),
    );
    let mask = cpu::compute(&plan, &labels);
    // -1 sign-extends to u64::MAX: knocked out of channel 0; 0xFFFF (65535) matches no i16.
    assert_eq!(
        mask.as_slice().unwrap(),
        &[0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 1, 1]
    );
}
