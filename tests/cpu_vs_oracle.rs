//! Property tests: the CPU engine equals the naive oracle on random label volumes of every dtype,
//! random id tables (ids >= 2^32, u64::MAX, negative signed labels), groupings (0 to 70
//! channels), backgrounds and both policies.

mod common;

use std::collections::BTreeSet;

use annomask::engine::Outputs;
use annomask::{LabelArray, MaskOptions, MaskPlan, MaskPolicy, cpu};
use common::{case, groupings, labels_of, pack_channels};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn cpu_engine_equals_oracle(c in case()) {
        let labels = labels_of(c.dtype, &c.shape, &c.raw);
        let policy = if c.per_voxel { MaskPolicy::PerVoxel } else { MaskPolicy::WholeChannel };
        let options = MaskOptions::default().background(c.background).policy(policy);
        let plan = MaskPlan::new(&groupings(&c.channels), &c.missing, &options);
        let mask = common::cpu_mask(&plan, &labels);
        let want = common::oracle(&common::bits(&labels), &c.channels, &c.missing, c.background, c.per_voxel);
        prop_assert_eq!(&mask, &want);
        // Channels the plan calls zeroed or equal (the pipeline counts one of each) are.
        let n = labels.as_slice().len();
        let equal = plan.first_equal_channels();
        prop_assert_eq!(equal.len(), c.channels.len());
        if let Err(e) = common::check_equal_channels(&want, n, &equal) {
            prop_assert!(false, "{}", e);
        }
        // Every store mode and instruction set this CPU has gives the same bytes.
        // Bit-packed: each channel's bytes packed LSB first.
        let want_bits = pack_channels(&want, n);
        let want_targets = common::target_oracle(&common::bits(&labels), &c.channels, c.background);
        for tuning in cpu::Tuning::all() {
            let (mut mask, mut targets) = (vec![9u8; want.len()], vec![9u8; want.len()]);
            cpu::run_tuned(&plan, labels.as_slice(), Outputs::bytes(&mut mask).with_targets(&mut targets), tuning);
            prop_assert_eq!(&mask, &want, "fused mask {:?}", tuning);
            prop_assert_eq!(&targets, &want_targets, "fused targets {:?}", tuning);
            let mut out = vec![9u8; want.len()];
            cpu::run_tuned(&plan, labels.as_slice(), Outputs::bytes(&mut out), tuning);
            prop_assert_eq!(&out, &want, "{:?}", tuning);
            let mut packed = vec![9u8; want_bits.len()];
            cpu::run_tuned(&plan, labels.as_slice(), Outputs::bits(&mut packed), tuning);
            prop_assert_eq!(&packed, &want_bits, "packed {:?}", tuning);
        }
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
    let mask = common::cpu_mask(&plan, &labels);
    // -1 sign-extends to u64::MAX: knocked out of channel 0; 0xFFFF (65535) matches no i16.
    assert_eq!(mask, [0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 1, 1]);
}

/// An output above the streaming threshold, with small (<= 8 ids) and large per-voxel tables,
/// in every tuning: the fast paths cover many blocks and unaligned channel starts.
#[test]
fn large_outputs_in_every_tuning() {
    let n = 800_013; // channel starts are not 16-byte aligned; 11 channels pass 8 MiB
    let raw: Vec<u64> = (0..n as u64)
        .map(|i| annomask::synth::splitmix64(i) % 40)
        .collect();
    for dtype in [annomask::LabelDtype::U64, annomask::LabelDtype::I16] {
        let labels = labels_of(dtype, &[n], &raw);
        // Nine channels of three ids, one of twelve ids (the searched target path), one empty.
        let mut channels: Vec<Vec<u64>> = (0..9)
            .map(|c| vec![3 * c + 1, 3 * c + 2, 3 * c + 3])
            .collect();
        channels.push((1..=12).collect());
        channels.push(vec![]);
        let want_targets = common::target_oracle(&common::bits(&labels), &channels, 0);
        for missing in [
            BTreeSet::from([4, 11, 0]),
            (1..30).step_by(2).collect::<BTreeSet<u64>>(),
        ] {
            for per_voxel in [false, true] {
                let policy = if per_voxel {
                    MaskPolicy::PerVoxel
                } else {
                    MaskPolicy::WholeChannel
                };
                let plan = MaskPlan::new(
                    &groupings(&channels),
                    &missing,
                    &MaskOptions::default().policy(policy),
                );
                let want =
                    common::oracle(&common::bits(&labels), &channels, &missing, 0, per_voxel);
                assert!(want.len() >= annomask::cpu::stream::STREAM_MIN_BYTES);
                let want_bits = pack_channels(&want, n);
                for tuning in cpu::Tuning::all() {
                    let (mut mask, mut targets) = (vec![9u8; want.len()], vec![9u8; want.len()]);
                    let out = Outputs::bytes(&mut mask).with_targets(&mut targets);
                    cpu::run_tuned(&plan, labels.as_slice(), out, tuning);
                    assert!(
                        mask == want && targets == want_targets,
                        "fused {dtype} {tuning:?}"
                    );
                    let mut out = vec![9u8; want.len()];
                    cpu::run_tuned(&plan, labels.as_slice(), Outputs::bytes(&mut out), tuning);
                    assert!(
                        out == want,
                        "{dtype} {tuning:?} per_voxel={per_voxel} table={}",
                        missing.len()
                    );
                    let mut packed = vec![9u8; want_bits.len()];
                    cpu::run_tuned(&plan, labels.as_slice(), Outputs::bits(&mut packed), tuning);
                    assert!(
                        packed == want_bits,
                        "packed {dtype} {tuning:?} per_voxel={per_voxel}"
                    );
                }
            }
        }
    }
}
