//! Property tests: the CPU engine equals the naive oracle on random label volumes of every dtype,
//! random id tables (ids >= 2^32, u64::MAX, negative signed labels), groupings (0 to 70
//! channels), backgrounds and both policies.

mod common;

use std::collections::BTreeSet;

use annomask::{LabelArray, MaskOptions, MaskPlan, MaskPolicy, cpu};
use common::{case, groupings, labels_of};
use proptest::prelude::*;

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
