//! Crop groups (SPEC 1.4): the CPU engine, the shader twin and the GPU engine equal the naive
//! oracle, bit for bit, for masks and targets, on random crops (every dtype per class, codes that
//! the dtype can or cannot hold, encodings with and without each code, classes the crop lacks,
//! 0 to 40 channels), with and without targets, with blocks split small.
//!
//! The GPU tests need an adapter (lavapipe in CI); without one they print why and skip, unless
//! `REQUIRE_GPU=1`.

mod common;

use annomask::cellmap::CropPlan;
use annomask::engine::Outputs;
use annomask::gpu::GpuEngine;
use annomask::gpu::twins::cellmap as twin;
use annomask::{Engine, LabelArray, LabelSlice};
use common::crop::{CropCase, crop_case};
use common::gpus;
use proptest::prelude::*;

fn slices(arrays: &[LabelArray]) -> Vec<LabelSlice<'_>> {
    arrays.iter().map(LabelArray::as_slice).collect()
}

/// The outputs of one request: the mask, and the targets when asked.
fn outputs<'a>(mask: &'a mut [u8], targets: Option<&'a mut [u8]>) -> Outputs<'a> {
    Outputs {
        targets,
        ..Outputs::bytes(mask)
    }
}

/// The CPU engine's request (the shape matters only to `verify`, which is off).
fn on_cpu(
    plan: &CropPlan,
    classes: &[LabelSlice<'_>],
    mask: &mut [u8],
    targets: Option<&mut [u8]>,
) {
    let n = classes.first().map_or(0, LabelSlice::len);
    Engine::cpu()
        .run(plan, classes, &[n], outputs(mask, targets), false)
        .unwrap()
}

/// Runs `f` with fresh (mask, targets) buffers filled with garbage, with or without targets,
/// and returns what it wrote.
fn run(
    case: &CropCase,
    targets: bool,
    f: impl FnOnce(&mut [u8], Option<&mut [u8]>),
) -> (Vec<u8>, Option<Vec<u8>>) {
    let len = case.voxels() * case.channels.len();
    let mut mask = vec![7u8; len];
    let mut t = targets.then(|| vec![7u8; len]);
    f(&mut mask, t.as_deref_mut());
    (mask, t)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn cpu_equals_oracle(case in crop_case(), targets in any::<bool>()) {
        let plan = case.plan();
        let arrays = case.plan_arrays(&plan);
        let (want_mask, want_targets) = case.oracle();
        let (mask, t) = run(&case, targets, |m, t| on_cpu(&plan, &slices(&arrays), m, t));
        prop_assert_eq!(&mask, &want_mask);
        // Channels the plan calls zeroed or equal (the pipeline counts one of each) are.
        if let Err(e) = common::check_equal_channels(&want_mask, case.voxels(), &plan.first_equal_channels()) {
            prop_assert!(false, "{}", e);
        }
        if let Some(t) = t {
            prop_assert_eq!(t, want_targets);
        }
    }

    #[test]
    fn twin_equals_oracle(case in crop_case(), block in 1usize..40, targets in any::<bool>()) {
        let plan = case.plan();
        let arrays = case.plan_arrays(&plan);
        let (want_mask, want_targets) = case.oracle();
        let (mask, t) = run(&case, targets, |m, t| twin::compute_into(&plan, &slices(&arrays), m, t, block));
        prop_assert_eq!(mask, want_mask);
        if let Some(t) = t {
            prop_assert_eq!(t, want_targets);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    #[test]
    fn gpu_equals_twin_cpu_and_oracle(case in crop_case(), targets in any::<bool>()) {
        let Some((whole, small_blocks)) = gpus() else { return Ok(()) };
        let plan = case.plan();
        let arrays = case.plan_arrays(&plan);
        let classes = slices(&arrays);
        let (want_mask, want_targets) = case.oracle();
        let on_cpu = run(&case, targets, |m, t| on_cpu(&plan, &classes, m, t));
        let on_twin = run(&case, targets, |m, t| twin::compute_into(&plan, &classes, m, t, 64));
        prop_assert_eq!(&on_cpu, &on_twin);
        prop_assert_eq!(&on_cpu.0, &want_mask);
        for gpu in [whole, small_blocks] {
            let got = run(&case, targets, |m, t| gpu.run(&plan, &classes, outputs(m, t)).unwrap());
            prop_assert_eq!(&got, &on_cpu);
        }
        if let Some(t) = on_cpu.1 {
            prop_assert_eq!(t, want_targets);
        }
    }
}

/// A case with fixed classes: `k` classes of every dtype, `channels` channels over them.
fn fixed_case(n: usize, channels: usize) -> CropCase {
    use annomask::LabelDtype;
    use common::crop::OracleClass;
    let codes = [
        (0, 1, 255),
        (0, 1, u64::MAX),
        (7, 1 << 32, 2),
        (u64::MAX, 0, 1 << 63),
    ];
    let classes: Vec<OracleClass> = LabelDtype::ALL
        .iter()
        .enumerate()
        .map(|(k, &dtype)| {
            let (a, p, u) = codes[k % codes.len()];
            OracleClass {
                name: format!("class{k}"),
                dtype,
                instance: k % 3 == 2,
                absent: Some(a),
                present: (k % 4 != 1).then_some(p),
                unknown: (k % 5 != 3).then_some(u),
                raw: (0..n as u64)
                    .map(|i| match (i + k as u64) % 6 {
                        0 => a,
                        1 => p,
                        2 => u,
                        3 => i,
                        4 => u64::MAX - i,
                        _ => 1 << 32 | i,
                    })
                    .collect(),
            }
        })
        .collect();
    let channel_lists = (0..channels)
        .map(|c| {
            let mut list = vec![
                format!("class{}", c % 8),
                format!("class{}", (c * 3 + 1) % 8),
            ];
            if c % 11 == 10 {
                list.push("lacking".into());
            }
            list
        })
        .collect();
    CropCase {
        shape: vec![1, n],
        classes,
        channels: channel_lists,
    }
}

/// Sizes that are not multiples of 4 or of the workgroup size, 0 to 70 channels (channel sets
/// of several words), eight classes of eight dtypes in one dispatch.
#[test]
fn gpu_edge_sizes_and_channel_counts() {
    let Some((gpu, small)) = gpus() else { return };
    for n in [1usize, 2, 3, 5, 255, 257, 1023, 4097] {
        for channels in [0usize, 1, 33, 70] {
            let case = fixed_case(n, channels);
            let plan = case.plan();
            let arrays = case.plan_arrays(&plan);
            let classes = slices(&arrays);
            let (want_mask, want_targets) = case.oracle();
            for engine in [gpu, small] {
                let (mask, t) = run(&case, true, |m, t| {
                    engine.run(&plan, &classes, outputs(m, t)).unwrap()
                });
                assert_eq!(mask, want_mask, "n={n} channels={channels}");
                assert_eq!(t.unwrap(), want_targets, "n={n} channels={channels}");
            }
        }
    }
}

/// Class arrays whose values exceed lavapipe's 128 MiB storage binding: the engine must split
/// them into blocks by the device limit alone.
#[test]
fn gpu_splits_blocks_larger_than_the_binding_limit() {
    let Some((gpu, _)) = gpus() else { return };
    use annomask::LabelDtype;
    use common::crop::OracleClass;
    let limit = gpu.context().max_binding() as usize;
    let unbounded = GpuEngine::new().unwrap().with_max_block_voxels(usize::MAX);
    // Two u64 classes: 16 bytes per voxel.
    let n = limit / 16 + limit / 64 + 5;
    let class = |name: &str, instance: bool, salt: u64| OracleClass {
        name: name.into(),
        dtype: LabelDtype::U64,
        instance,
        absent: Some(0),
        present: (!instance).then_some(1),
        unknown: Some(u64::MAX),
        raw: (0..n as u64)
            .map(|i| match (i.wrapping_mul(2654435761) ^ salt) % 5 {
                0 => 0,
                1 => 1,
                2 => u64::MAX,
                _ => i,
            })
            .collect(),
    };
    let case = CropCase {
        shape: vec![n],
        classes: vec![class("a", false, 0), class("b", true, 3)],
        channels: vec![vec!["a".into()], vec!["a".into(), "b".into()]],
    };
    let plan = case.plan();
    let dtypes = [LabelDtype::U64; 2];
    assert!(
        unbounded.crop_block_voxels(&plan, &dtypes, true) < n,
        "must take several blocks"
    );
    let arrays = case.plan_arrays(&plan);
    let classes = slices(&arrays);
    let want = run(&case, true, |m, t| on_cpu(&plan, &classes, m, t));
    let got = run(&case, true, |m, t| {
        unbounded.run(&plan, &classes, outputs(m, t)).unwrap()
    });
    assert!(got == want, "{n} voxels of two u64 classes");
}

#[test]
fn engine_verify_passes_on_the_gpu() {
    let Some((gpu, _)) = gpus() else { return };
    let case = fixed_case(103, 5);
    let plan = case.plan();
    let arrays = case.plan_arrays(&plan);
    let engine = Engine::gpu(gpu.clone());
    let (want_mask, want_targets) = case.oracle();
    let (mask, t) = run(&case, true, |m, t| {
        engine
            .run(&plan, &slices(&arrays), &case.shape, outputs(m, t), true)
            .unwrap()
    });
    assert_eq!((mask, t.unwrap()), (want_mask, want_targets));
}
