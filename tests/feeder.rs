//! The training feeder: deterministic ROI sequences, batches equal to the oracle (mask and
//! targets) for label arrays, equal to the array API for crop groups, crop weighting, errors,
//! and the GPU paths (host and device-resident outputs).

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use annomask::feeder::{CropWeighting, Feeder, FeederConfig, RoiSampler, augment, compute_batch};
use annomask::raw::RawVolume;
use annomask::{
    Engine, EngineChoice, Error, Groupings, LabelArray, LabelVolume, MaskOptions,
    MissingAnnotationsMask, SourceBlock, ZarrFormat, synth,
};
use ndarray::{Axis, Slice};

fn cpu() -> MaskOptions {
    MaskOptions::default().engine(EngineChoice::Cpu)
}

fn region_of(labels: &LabelArray, start: &[u64], shape: &[u64]) -> LabelArray {
    annomask::with_labels!(labels, LabelArray, a => {
        let mut v = a.view();
        for d in 0..start.len() {
            v.slice_axis_inplace(Axis(d), Slice::from(start[d] as usize..(start[d] + shape[d]) as usize));
        }
        LabelArray::from(v.to_owned()).standard()
    })
}

/// Two demo crops of different sizes (v2 and v3), their full labels, and masks over them.
fn crops(
    engine: &Engine,
) -> (
    tempfile::TempDir,
    Vec<(Arc<MissingAnnotationsMask>, LabelArray)>,
) {
    let dir = tempfile::tempdir().unwrap();
    let out = [(24, ZarrFormat::V2, "a"), (40, ZarrFormat::V3, "b")]
        .into_iter()
        .map(|(size, format, name)| {
            let path = synth::write_demo_crop(&dir.path().join(name), size, format).unwrap();
            let volume = LabelVolume::open(&path).unwrap();
            let labels = volume
                .read_region(&annomask::VoxelRegion {
                    start: vec![0; 3],
                    shape: volume.shape().to_vec(),
                })
                .unwrap();
            let mask = MissingAnnotationsMask::from_volume(
                volume,
                synth::demo_groupings(),
                cpu(),
                engine.clone(),
            )
            .unwrap();
            (Arc::new(mask), labels)
        })
        .collect();
    (dir, out)
}

#[test]
fn batches_equal_the_oracle_and_repeat_for_a_seed() {
    let (_dir, sources) = crops(&Engine::cpu());
    let masks: Vec<_> = sources.iter().map(|(m, _)| m.clone()).collect();
    let config = FeederConfig::new(vec![8, 5, 11])
        .seed(42)
        .batch_size(3)
        .batches(6)
        .with_labels(true);
    let first: Vec<_> = Feeder::new(masks.clone(), config.clone())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let again: Vec<_> = Feeder::new(masks.clone(), config.clone())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let other: Vec<_> = Feeder::new(masks.clone(), config.clone().seed(43))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    // Without the decoded-chunk cache, the same batches (the masks above already cache).
    let (_dir2, fresh) = crops(&Engine::cpu());
    let fresh: Vec<_> = fresh.iter().map(|(m, _)| m.clone()).collect();
    let uncached: Vec<_> = Feeder::new(fresh, config.clone().chunk_cache(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (a, b) in first.iter().zip(&uncached) {
        assert_eq!(
            (&a.samples, &a.mask, &a.targets),
            (&b.samples, &b.mask, &b.targets)
        );
    }
    assert_eq!(first.len(), 6);
    assert_eq!(
        first.iter().map(|b| b.index).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4, 5]
    );
    for (a, b) in first.iter().zip(&again) {
        assert_eq!(
            (&a.samples, &a.mask, &a.targets),
            (&b.samples, &b.mask, &b.targets)
        );
    }
    assert_ne!(
        first.iter().map(|b| b.samples.clone()).collect::<Vec<_>>(),
        other.iter().map(|b| b.samples.clone()).collect::<Vec<_>>()
    );
    let missing = BTreeSet::from([5, 17]); // the demo crop's missing ids
    let channels = common::channel_ids(&synth::demo_groupings());
    let mut used = BTreeSet::new();
    for batch in &first {
        assert_eq!(batch.mask.shape(), &[3, 5, 8, 5, 11]);
        for (i, sample) in batch.samples.iter().enumerate() {
            used.insert(sample.crop);
            let labels = region_of(
                &sources[sample.crop].1,
                &sample.region.start,
                &sample.region.shape,
            );
            let bits = common::bits(&labels);
            let want_mask = common::oracle(&bits, &channels, &missing, 0, false);
            let want_targets = common::target_oracle(&bits, &channels, 0);
            let got_mask = batch.mask.index_axis(Axis(0), i);
            let got_targets = batch.targets.index_axis(Axis(0), i);
            assert_eq!(got_mask.iter().copied().collect::<Vec<_>>(), want_mask);
            assert_eq!(
                got_targets.iter().copied().collect::<Vec<_>>(),
                want_targets
            );
            let block: &SourceBlock = &batch.labels.as_ref().expect("labels were asked for")[i];
            let l = block
                .labels()
                .expect("a label array's block is one label array");
            assert_eq!(l, &labels);
            // The world ROI maps back onto the region.
            let mask = &sources[sample.crop].0;
            assert_eq!(mask.get(&sample.roi).unwrap(), got_mask.to_owned());
        }
    }
    assert_eq!(used, BTreeSet::from([0, 1]), "both crops are drawn");
}

#[test]
fn weighting_by_size_follows_the_voxel_counts() {
    let shapes = vec![vec![10, 10, 10], vec![20, 20, 10]]; // 1000 and 4000 voxels
    for (weighting, expected) in [(CropWeighting::Uniform, 0.5), (CropWeighting::BySize, 0.2)] {
        let config = FeederConfig::new(vec![4, 4, 4])
            .seed(1)
            .weighting(weighting);
        let mut sampler = RoiSampler::new(shapes.clone(), &config);
        let draws = 4000;
        let mut first = 0;
        for _ in 0..draws {
            let (crop, region) = sampler.next_region();
            let fits = region
                .start
                .iter()
                .zip(&shapes[crop])
                .all(|(&s, &len)| s + 4 <= len);
            assert!(fits, "{region:?} fits crop {crop}");
            first += (crop == 0) as usize;
        }
        let share = first as f64 / draws as f64;
        assert!(
            (share - expected).abs() < 0.03,
            "{weighting:?}: share of crop 0 is {share}"
        );
    }
}

#[test]
fn bad_feeder_inputs_are_errors() {
    let (_dir, both) = crops(&Engine::cpu());
    let masks: Vec<_> = both.iter().map(|(m, _)| m.clone()).collect();
    let zero = Feeder::new(masks.clone(), FeederConfig::new(vec![0, 8, 8]))
        .err()
        .unwrap();
    assert!(zero.to_string().contains("[0, 8, 8]"), "{zero}");
    for bad in [
        FeederConfig::new(vec![8, 8, 8]).shard(2, 2),
        FeederConfig::new(vec![8, 8, 8]).mirror(vec![3]),
        FeederConfig::new(vec![8, 8, 8]).transpose(vec![1, 1]),
        FeederConfig::new(vec![8, 8, 4]).transpose(vec![1, 2]),
        FeederConfig::new(vec![8, 8, 8]).context(vec![1, 1]),
    ] {
        let err = Feeder::new(masks.clone(), bad.clone()).err().unwrap();
        assert!(matches!(err, Error::Feeder { .. }), "{bad:?}: {err}");
    }
    let wrong_dims = Feeder::new(masks.clone(), FeederConfig::new(vec![8, 8]))
        .err()
        .unwrap();
    assert!(matches!(wrong_dims, Error::Feeder { .. }));
    let none = Feeder::new(vec![], FeederConfig::new(vec![8, 8, 8]))
        .err()
        .unwrap();
    assert!(none.to_string().contains("no crops"), "{none}");
    let (_dir2, other) = crops(&Engine::cpu());
    let renamed = Groupings::new([("x", vec![1])]).unwrap();
    let path = other[0].0.volume().path().to_path_buf();
    let odd = Arc::new(MissingAnnotationsMask::open(path, renamed, cpu()).unwrap());
    let err = Feeder::new(
        vec![masks[0].clone(), odd],
        FeederConfig::new(vec![4, 4, 4]),
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("channels"), "{err}");
}

#[test]
fn dropping_an_endless_feeder_stops_it() {
    let (_dir, crops) = crops(&Engine::cpu());
    let masks: Vec<_> = crops.iter().map(|(m, _)| m.clone()).collect();
    let mut feeder = Feeder::new(masks, FeederConfig::new(vec![4, 4, 4]).prefetch(2)).unwrap();
    for _ in 0..5 {
        feeder.next().unwrap().unwrap();
    }
    drop(feeder); // joins the producer, which is blocked on a full queue
}

#[test]
fn crop_groups_feed_like_their_array_api() {
    let dir = tempfile::tempdir().unwrap();
    let path = annomask::cellmap::synth::write_demo_crop(dir.path(), 24, ZarrFormat::V2).unwrap();
    let mask = Arc::new(
        MissingAnnotationsMask::open(&path, annomask::cellmap::synth::demo_groupings(), cpu())
            .unwrap(),
    );
    let config = FeederConfig::new(vec![6, 7, 8])
        .seed(3)
        .batch_size(2)
        .batches(4);
    for batch in Feeder::new(vec![mask.clone()], config).unwrap() {
        let batch = batch.unwrap();
        for (i, sample) in batch.samples.iter().enumerate() {
            let (m, t) = mask.get_with_targets(&sample.roi).unwrap();
            assert_eq!(batch.mask.index_axis(Axis(0), i), m);
            assert_eq!(batch.targets.index_axis(Axis(0), i), t);
        }
    }
}

#[test]
fn gpu_feeds_the_same_batches_and_can_keep_them_on_the_device() {
    let Some((gpu, small)) = common::gpus() else {
        return;
    };
    let (_dir, cpu_crops) = crops(&Engine::cpu());
    let config = FeederConfig::new(vec![9, 16, 7])
        .seed(11)
        .batch_size(2)
        .batches(4);
    let want: Vec<_> = Feeder::new(
        cpu_crops.iter().map(|(m, _)| m.clone()).collect(),
        config.clone(),
    )
    .unwrap()
    .map(Result::unwrap)
    .collect();
    let (_dir2, gpu_crops) = crops(&Engine::gpu(gpu.clone()));
    let got: Vec<_> = Feeder::new(gpu_crops.iter().map(|(m, _)| m.clone()).collect(), config)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (a, b) in want.iter().zip(&got) {
        assert_eq!(
            (&a.samples, &a.mask, &a.targets),
            (&b.samples, &b.mask, &b.targets)
        );
    }
    // Device-resident outputs equal the host ones, with one block or many.
    let (_, labels) = &cpu_crops[1];
    let region = region_of(labels, &[3, 1, 2], &[20, 33, 17]);
    let plan = cpu_crops[1]
        .0
        .source_as::<annomask::LabelSource>()
        .unwrap()
        .plan();
    let n = region.as_slice().len();
    let (mut mask, mut targets) = (vec![0u8; n * 5], vec![0u8; n * 5]);
    let out = annomask::engine::Outputs::bytes(&mut mask).with_targets(&mut targets);
    let inputs = [region.as_slice()];
    let engine = annomask::Engine::cpu();
    engine
        .run(plan, &inputs, region.shape(), out, false)
        .unwrap();
    for engine in [gpu, small] {
        let device = engine
            .compute_fused_on_device(plan, region.as_slice())
            .unwrap();
        assert_eq!((device.channels, device.voxels), (5, n));
        assert_eq!(
            device.read(engine.context()).unwrap(),
            (mask.clone(), targets.clone())
        );
    }
    let _ = compute_batch; // the batch step is public for pipelines without the thread
}

#[test]
fn crops_smaller_than_the_roi_are_padded_with_untrained_zeros() {
    let (_dir, both) = crops(&Engine::cpu());
    let (mask, _) = &both[0]; // 24^3
    let config = FeederConfig::new(vec![30, 8, 8])
        .seed(5)
        .batch_size(3)
        .batches(4);
    for batch in Feeder::new(vec![mask.clone()], config).unwrap() {
        let batch = batch.unwrap();
        for (i, sample) in batch.samples.iter().enumerate() {
            let pad = (-sample.start[0]) as usize;
            assert!(
                sample.start[0] <= 0 && sample.start[0] >= -6,
                "{:?}",
                sample.start
            );
            assert_eq!(sample.region.shape, [24, 8, 8]);
            let got_mask = batch.mask.index_axis(Axis(0), i);
            let got_targets = batch.targets.index_axis(Axis(0), i);
            // Inside the crop: the array API on the region; outside: 0 in both.
            let inner = annomask::Roi::new(
                mask.roi().offset().add(&annomask::Coordinate::new(
                    sample
                        .region
                        .start
                        .iter()
                        .map(|&v| v as f64 * 8.0)
                        .collect::<Vec<_>>(),
                )),
                annomask::Coordinate::new(vec![24.0 * 8.0, 64.0, 64.0]),
            );
            let (m, t) = mask.get_with_targets(&inner).unwrap();
            let inside = Slice::from(pad..pad + 24);
            assert_eq!(got_mask.slice_axis(Axis(1), inside), m);
            assert_eq!(got_targets.slice_axis(Axis(1), inside), t);
            let outside = got_mask.iter().count() - m.len();
            let trained: usize = got_mask.iter().map(|&v| v as usize).sum();
            let trained_inside: usize = m.iter().map(|&v| v as usize).sum();
            assert_eq!(trained, trained_inside, "padding is never trained");
            assert_eq!(outside, 5 * (30 - 24) * 64);
            let world_start = sample.roi.offset().as_slice()[0];
            assert_eq!(world_start, sample.start[0] as f64 * 8.0);
        }
    }
}

#[test]
fn shards_and_starts_reassemble_the_one_process_sequence() {
    let (_dir, both) = crops(&Engine::cpu());
    let masks: Vec<_> = both.iter().map(|(m, _)| m.clone()).collect();
    let config = FeederConfig::new(vec![6, 6, 6])
        .seed(9)
        .batch_size(2)
        .batches(7);
    let whole: Vec<_> = Feeder::new(masks.clone(), config.clone())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(whole.len(), 7);
    let shards: Vec<Vec<_>> = (0..3)
        .map(|i| {
            Feeder::new(masks.clone(), config.clone().shard(i, 3))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        })
        .collect();
    assert_eq!(shards.iter().map(Vec::len).collect::<Vec<_>>(), [3, 2, 2]);
    for (b, want) in whole.iter().enumerate() {
        let got = &shards[b % 3][b / 3];
        assert_eq!(got.index, b);
        assert_eq!(
            (&got.samples, &got.mask, &got.targets),
            (&want.samples, &want.mask, &want.targets)
        );
    }
    let resumed: Vec<_> = Feeder::new(masks, config.start(4))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        resumed.iter().map(|b| b.index).collect::<Vec<_>>(),
        [4, 5, 6]
    );
    assert_eq!(resumed[0].samples, whole[4].samples);
}

/// The demo crop group: masks at `scale`, and a class's multiscale group as stand-in raw data.
fn crop_group_with_raw(scale: &str) -> (tempfile::TempDir, Arc<MissingAnnotationsMask>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = annomask::cellmap::synth::write_demo_crop(dir.path(), 24, ZarrFormat::V2).unwrap();
    let mask = MissingAnnotationsMask::open_with(
        &path,
        annomask::cellmap::synth::demo_groupings(),
        cpu(),
        &annomask::CropOptions::default().scale(scale),
    )
    .unwrap();
    let raw = path.join("mito").to_string_lossy().into_owned();
    (dir, Arc::new(mask), raw)
}

#[test]
fn raw_data_comes_at_the_matching_level_with_context() {
    for scale in ["s0", "s1"] {
        let (_dir, mask, raw_path) = crop_group_with_raw(scale);
        let raw =
            Arc::new(RawVolume::open(&raw_path, mask.voxel_size(), Default::default()).unwrap());
        assert_eq!(raw.geometry().voxel_size, *mask.voxel_size(), "{scale}");
        assert!(raw.name().ends_with(scale), "{}", raw.name());
        let roi = if scale == "s0" { 8 } else { 4 };
        let config = FeederConfig::new(vec![roi; 3])
            .context(vec![2, 3, 0])
            .seed(2)
            .batch_size(2)
            .batches(3);
        let feeder = Feeder::with_raw(vec![mask.clone()], vec![raw.clone()], config).unwrap();
        for batch in feeder {
            let batch = batch.unwrap();
            let got = batch.raw.expect("raw was given");
            assert_eq!(
                got.shape(),
                &[2, roi as usize + 4, roi as usize + 6, roi as usize]
            );
            for (i, sample) in batch.samples.iter().enumerate() {
                let v = mask.voxel_size().as_slice().to_vec();
                let grown = annomask::Roi::new(
                    sample.roi.offset().sub(&annomask::Coordinate::new(vec![
                        2.0 * v[0],
                        3.0 * v[1],
                        0.0,
                    ])),
                    annomask::Coordinate::new(vec![
                        (roi + 4) as f64 * v[0],
                        (roi + 6) as f64 * v[1],
                        roi as f64 * v[2],
                    ]),
                );
                let want = raw.read_roi(&grown).unwrap();
                annomask::with_labels!(&got, LabelArray, a => {
                    let mine = a.index_axis(Axis(0), i).to_owned();
                    assert_eq!(LabelArray::from(mine), want);
                });
            }
        }
    }
    // A voxel size no level has is an error naming the levels there are.
    let (_dir, _mask, raw_path) = crop_group_with_raw("s0");
    let err = RawVolume::open(
        &raw_path,
        &annomask::Coordinate::splat(3.0, 3),
        Default::default(),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("no raw level") && text.contains("s0") && text.contains("s1"),
        "{text}"
    );
}

#[test]
fn augmentations_move_raw_targets_and_mask_together() {
    let (_dir, mask, raw_path) = crop_group_with_raw("s0");
    let raw = Arc::new(RawVolume::open(&raw_path, mask.voxel_size(), Default::default()).unwrap());
    let config = FeederConfig::new(vec![6, 6, 6])
        .mirror(vec![0, 1, 2])
        .transpose(vec![0, 1, 2])
        .seed(4)
        .batch_size(4)
        .batches(5);
    let mut augmented = 0;
    for batch in Feeder::with_raw(vec![mask.clone()], vec![raw.clone()], config).unwrap() {
        let batch = batch.unwrap();
        let got_raw = batch.raw.unwrap();
        for (i, sample) in batch.samples.iter().enumerate() {
            let d = &sample.draw;
            augmented += d.augments() as usize;
            let (m, t) = mask.get_with_targets(&sample.roi).unwrap();
            let want_m = augment::transform(m.view(), 1, &d.flips, &d.order);
            let want_t = augment::transform(t.view(), 1, &d.flips, &d.order);
            assert_eq!(batch.mask.index_axis(Axis(0), i), want_m);
            assert_eq!(batch.targets.index_axis(Axis(0), i), want_t);
            let want_raw = augment::transform_raw(raw.read_roi(&sample.roi).unwrap(), d);
            annomask::with_labels!(&got_raw, LabelArray, a => {
                assert_eq!(LabelArray::from(a.index_axis(Axis(0), i).to_owned()), want_raw);
            });
        }
    }
    assert!(augmented > 10, "most samples are augmented: {augmented}");
}

#[test]
fn class_weighting_runs_over_real_crops() {
    let (_dir, both) = crops(&Engine::cpu());
    let masks: Vec<_> = both.iter().map(|(m, _)| m.clone()).collect();
    let presence = masks[0].source().channel_presence();
    // The demo: mito is zeroed (id 5 not annotated), others present.
    assert_eq!(presence.len(), 5);
    assert!(!presence[0], "{presence:?}");
    let config = FeederConfig::new(vec![4, 4, 4])
        .weighting(CropWeighting::ByClass)
        .batches(3);
    assert_eq!(Feeder::new(masks, config).unwrap().count(), 3);
}
