//! The GPU engine and its CPU twin equal the CPU engine and the oracle, bit for bit.
//!
//! The twin runs everywhere. The GPU tests need an adapter (Mesa lavapipe in CI:
//! `apt-get install mesa-vulkan-drivers libvulkan1`); without one they print why and skip,
//! unless `REQUIRE_GPU=1`, which turns a missing adapter into a failure.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use annomask::bits::MaskLayout;
use annomask::engine::Outputs;
use annomask::gpu::GpuEngine;
use annomask::gpu::twins::mask as twin;
use annomask::{Engine, LabelArray, LabelSlice, MaskOptions, MaskPlan, MaskPolicy};
use common::{Case, case, gpus, groupings, labels_of, pack_channels};
use proptest::prelude::*;

fn plan_of(c: &Case) -> MaskPlan {
    let policy = if c.per_voxel {
        MaskPolicy::PerVoxel
    } else {
        MaskPolicy::WholeChannel
    };
    MaskPlan::new(
        &groupings(&c.channels),
        &c.missing,
        &MaskOptions::default()
            .background(c.background)
            .policy(policy),
    )
}

fn expected(c: &Case, labels: &LabelArray) -> Vec<u8> {
    common::oracle(
        &common::bits(labels),
        &c.channels,
        &c.missing,
        c.background,
        c.per_voxel,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn twin_equals_oracle(c in case(), block in 1usize..200) {
        let labels = labels_of(c.dtype, &c.shape, &c.raw);
        let plan = plan_of(&c);
        let want = expected(&c, &labels);
        let n = labels.as_slice().len();
        let mut out = vec![7u8; want.len()];
        twin::compute_into(&plan, labels.as_slice(), &mut out, MaskLayout::Bytes, block);
        prop_assert_eq!(&out, &want);
        let want_bits = pack_channels(&want, n);
        let mut packed = vec![7u8; want_bits.len()];
        twin::compute_into(&plan, labels.as_slice(), &mut packed, MaskLayout::Bits, block);
        prop_assert_eq!(packed, want_bits);
        let want_targets = common::target_oracle(&common::bits(&labels), &c.channels, c.background);
        let (mut mask, mut targets) = (vec![7u8; want.len()], vec![7u8; want.len()]);
        twin::compute_fused_into(&plan, labels.as_slice(), &mut mask, &mut targets, block);
        prop_assert_eq!(&mask, &want);
        prop_assert_eq!(&targets, &want_targets);
    }

    #[test]
    fn gpu_equals_cpu_and_oracle(c in case()) {
        let Some((whole, small_blocks)) = gpus() else { return Ok(()) };
        let labels = labels_of(c.dtype, &c.shape, &c.raw);
        let plan = plan_of(&c);
        let want = expected(&c, &labels);
        let on_cpu = common::cpu_mask(&plan, &labels);
        prop_assert_eq!(&on_cpu, &want);
        let want_bits = pack_channels(&want, labels.as_slice().len());
        let want_targets = common::target_oracle(&common::bits(&labels), &c.channels, c.background);
        for gpu in [whole, small_blocks] {
            let mut out = vec![7u8; want.len()];
            gpu.run(&plan, &[labels.as_slice()], Outputs::bytes(&mut out)).unwrap();
            prop_assert_eq!(&out, &want);
            let mut packed = vec![7u8; want_bits.len()];
            gpu.run(&plan, &[labels.as_slice()], Outputs::bits(&mut packed)).unwrap();
            prop_assert_eq!(&packed, &want_bits);
            let (mut mask, mut targets) = (vec![7u8; want.len()], vec![7u8; want.len()]);
            gpu.run(&plan, &[labels.as_slice()], Outputs::bytes(&mut mask).with_targets(&mut targets)).unwrap();
            prop_assert_eq!(&mask, &want);
            prop_assert_eq!(&targets, &want_targets);
        }
    }
}

/// Every dtype, sizes that are not multiples of 4 or of the workgroup size, 1 and 64 channels,
/// empty groupings, and ids that need both words.
#[test]
fn gpu_edge_shapes_and_channel_counts() {
    let Some((gpu, small)) = gpus() else { return };
    for dtype in annomask::LabelDtype::ALL {
        for n in [1usize, 2, 3, 5, 255, 257, 1023, 4097] {
            for channels in [0usize, 1, 64] {
                let raw: Vec<u64> = (0..n as u64)
                    .map(|i| match i % 7 {
                        0 => 0,
                        1 => u64::MAX,
                        2 => 1 << 32,
                        3 => (1 << 32) + 3,
                        _ => i % 5,
                    })
                    .collect();
                let labels = labels_of(dtype, &[1, n], &raw);
                let ids: Vec<Vec<u64>> = (0..channels)
                    .map(|c| vec![c as u64 % 5, 1 << 32, u64::MAX][..1 + c % 3].to_vec())
                    .collect();
                let missing = BTreeSet::from([3, 1 << 32, u64::MAX]);
                for per_voxel in [false, true] {
                    let policy = if per_voxel {
                        MaskPolicy::PerVoxel
                    } else {
                        MaskPolicy::WholeChannel
                    };
                    let plan = MaskPlan::new(
                        &groupings(&ids),
                        &missing,
                        &MaskOptions::default().policy(policy),
                    );
                    let want = common::oracle(&common::bits(&labels), &ids, &missing, 0, per_voxel);
                    let want_bits = pack_channels(&want, n);
                    let want_targets = common::target_oracle(&common::bits(&labels), &ids, 0);
                    for engine in [gpu, small] {
                        let what =
                            format!("{dtype} n={n} channels={channels} per_voxel={per_voxel}");
                        let mut out = vec![9u8; want.len()];
                        engine
                            .run(&plan, &[labels.as_slice()], Outputs::bytes(&mut out))
                            .unwrap();
                        assert_eq!(out, want, "{what}");
                        let mut packed = vec![9u8; want_bits.len()];
                        engine
                            .run(&plan, &[labels.as_slice()], Outputs::bits(&mut packed))
                            .unwrap();
                        assert_eq!(packed, want_bits, "packed {what}");
                        let (mut mask, mut targets) =
                            (vec![9u8; want.len()], vec![9u8; want.len()]);
                        let out = Outputs::bytes(&mut mask).with_targets(&mut targets);
                        engine.run(&plan, &[labels.as_slice()], out).unwrap();
                        assert_eq!(
                            (mask, targets),
                            (want.clone(), want_targets.clone()),
                            "fused {what}"
                        );
                    }
                }
            }
        }
    }
}

/// Volumes whose labels (u64) or output (64 channels) exceed lavapipe's 128 MiB storage binding
/// limit: the engine must split them into blocks by the device limit alone.
#[test]
fn gpu_splits_blocks_larger_than_the_binding_limit() {
    let Some((gpu, _)) = gpus() else { return };
    let limit = gpu.context().max_binding() as usize;
    let unbounded = Arc::new(GpuEngine::new().unwrap().with_max_block_voxels(usize::MAX));
    for (label_bytes, channels) in [(8usize, 1usize), (1, 64)] {
        let per_voxel = label_bytes.max(channels);
        let n = limit / per_voxel + limit / per_voxel / 4 + 3;
        assert!(n * per_voxel > limit, "the volume must exceed one binding");
        assert!(unbounded.block_voxels(channels, label_bytes) < n);
        let raw: Vec<u64> = (0..n as u64).map(|i| (i * 2654435761) % 11).collect();
        let dtype = if label_bytes == 8 {
            annomask::LabelDtype::U64
        } else {
            annomask::LabelDtype::U8
        };
        let labels = labels_of(dtype, &[n], &raw[..]);
        let ids: Vec<Vec<u64>> = (0..channels).map(|c| vec![(c % 10) as u64 + 1]).collect();
        let missing = BTreeSet::from([2, 7]);
        let plan = MaskPlan::new(
            &groupings(&ids),
            &missing,
            &MaskOptions::default().policy(MaskPolicy::PerVoxel),
        );
        let want = common::cpu_mask(&plan, &labels);
        let mut got = vec![9u8; n * channels];
        unbounded
            .run(&plan, &[labels.as_slice()], Outputs::bytes(&mut got))
            .unwrap();
        assert!(got == want, "{dtype} x {channels} channels, {n} voxels");
    }
}

#[test]
fn engine_verify_passes_on_the_gpu() {
    let Some((gpu, _)) = gpus() else { return };
    let engine = Engine::gpu(gpu.clone());
    let labels: Vec<i32> = vec![-1, 0, 3, 5, 3, 1 << 20, 7];
    let plan = MaskPlan::new(
        &groupings(&[vec![3], vec![]]),
        &BTreeSet::from([3]),
        &MaskOptions::default().policy(MaskPolicy::PerVoxel),
    );
    let mut out = vec![0u8; 14];
    engine
        .run(
            &plan,
            &[LabelSlice::from(&labels[..])],
            &[7],
            Outputs::bytes(&mut out),
            true,
        )
        .unwrap();
    assert_eq!(out, [1, 0, 0, 1, 0, 1, 1, 1, 0, 1, 1, 1, 1, 1]);
}
