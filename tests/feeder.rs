//! The training feeder: deterministic ROI sequences, batches equal to the oracle (mask and
//! targets) for label arrays, equal to the array API for crop groups, crop weighting, errors,
//! and the GPU paths (host and device-resident outputs).

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use annomask::feeder::{CropWeighting, Feeder, FeederConfig, RoiSampler, compute_batch};
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
    let too_big = Feeder::new(masks.clone(), FeederConfig::new(vec![30, 8, 8]))
        .err()
        .unwrap();
    assert!(
        matches!(&too_big, Error::Feeder { crop, .. } if crop.contains("labels")),
        "{too_big}"
    );
    assert!(too_big.to_string().contains("[30, 8, 8]"), "{too_big}");
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
