//! Zarr round trips: small v2 and v3 crops (blosc, zstd, gzip, raw, sharded) of every dtype and
//! every metadata format, opened through the array API; the mask must equal the oracle, for the
//! whole array and for random ROIs.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use annomask::synth::write_labels;
use annomask::zarr_array::Compression;
use annomask::{
    EngineChoice, Groupings, LabelArray, LabelDtype, MaskOptions, MaskPolicy,
    MissingAnnotationsMask, Roi, SparsePolicy, ZarrFormat,
};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const IDS: [u64; 8] = [0, 1, 2, 3, 5, 8, 200, 1 << 40];

fn attrs(labels: Value, extra: Value) -> Map<String, Value> {
    let mut m = extra.as_object().cloned().unwrap_or_default();
    m.insert("labels".into(), labels);
    m
}

/// Labels over `IDS` (cut to the dtype) plus a few negative values for signed dtypes.
fn crop_labels(dtype: LabelDtype, shape: &[usize], seed: u64) -> LabelArray {
    let n: usize = shape.iter().product();
    let raw: Vec<u64> = (0..n as u64)
        .map(|i| {
            let h = annomask::synth::splitmix64(seed ^ i);
            if h.is_multiple_of(13) {
                u64::MAX - h % 3
            } else {
                IDS[(h % IDS.len() as u64) as usize]
            }
        })
        .collect();
    common::labels_of(dtype, shape, &raw)
}

fn cpu() -> MaskOptions {
    MaskOptions::default().engine(EngineChoice::Cpu)
}

fn groupings() -> Groupings {
    Groupings::new([
        ("a", vec![1, 2]),
        ("b", vec![3]),
        ("c", vec![5, 8, 1 << 40]),
        ("d", vec![200, u64::MAX]),
        ("fg", vec![]),
    ])
    .unwrap()
}

fn check_full(path: &Path, labels: &LabelArray, meta: &Value, options: MaskOptions) {
    let mask = MissingAnnotationsMask::open(path, groupings(), options).unwrap();
    let got = mask.get(&mask.roi()).unwrap();
    let missing = common::naive_missing(meta, options.sparse == SparsePolicy::Missing);
    let want = common::oracle(
        &common::bits(labels),
        &common::channel_ids(&groupings()),
        &missing,
        options.background,
        options.policy == MaskPolicy::PerVoxel,
    );
    assert_eq!(
        got.as_slice().unwrap(),
        &want[..],
        "{} {:?}",
        path.display(),
        options
    );
}

#[test]
fn every_format_codec_dtype_and_metadata_format() {
    let dir = tempfile::tempdir().unwrap();
    let shape = [9usize, 10, 7];
    let codecs: [(ZarrFormat, Compression, bool); 8] = [
        (ZarrFormat::V2, Compression::BloscLz4, false),
        (ZarrFormat::V2, Compression::Zstd, false),
        (ZarrFormat::V2, Compression::Gzip, false),
        (ZarrFormat::V2, Compression::Raw, false),
        (ZarrFormat::V3, Compression::BloscZstd, false),
        (ZarrFormat::V3, Compression::Zstd, false),
        (ZarrFormat::V3, Compression::Raw, false),
        (ZarrFormat::V3, Compression::BloscLz4, true),
    ];
    let mut n = 0;
    for (ci, &(format, compression, sharded)) in codecs.iter().enumerate() {
        for (di, dtype) in LabelDtype::ALL.into_iter().enumerate() {
            let meta_format = (ci + di) % 3;
            let meta = common::labels_attr(&[
                (1, meta_format, 0),
                (2, meta_format, 2),
                (3, meta_format, 1),
                (5, meta_format, 0),
                (8, meta_format, 3),
                (200, meta_format, 1),
                (1 << 40, meta_format, 1),
            ]);
            let labels = crop_labels(dtype, &shape, (ci * 8 + di) as u64);
            let path: PathBuf = dir.path().join(format!("crop{ci}_{dtype}.zarr"));
            let chunks = [4u64, 4, 3];
            if sharded {
                let shape64: Vec<u64> = shape.iter().map(|&s| s as u64).collect();
                let mut spec = annomask::zarr_array::ArraySpec::new(
                    shape64,
                    vec![8, 8, 6],
                    dtype.name(),
                    format,
                );
                spec.shard_inner = Some(chunks.to_vec());
                spec.compression = compression;
                spec.attributes = attrs(meta.clone(), json!({}));
                let array = annomask::zarr_array::create_array(&path, &spec).unwrap();
                let subset = zarrs::array::ArraySubset::new_with_shape(array.shape().to_vec());
                annomask::with_labels!(&labels, LabelArray, a => array.store_array_subset(&subset, a).unwrap());
            } else {
                write_labels(
                    &path,
                    &labels,
                    &chunks,
                    format,
                    compression,
                    attrs(meta.clone(), json!({})),
                )
                .unwrap();
            }
            for options in [
                cpu(),
                cpu().policy(MaskPolicy::PerVoxel),
                cpu().sparse(SparsePolicy::Annotated).background(3),
            ] {
                check_full(&path, &labels, &meta, options);
            }
            let vol = annomask::LabelVolume::open(&path).unwrap();
            assert_eq!((vol.format(), vol.dtype()), (format, dtype));
            n += 1;
        }
    }
    assert_eq!(n, 64);
}

#[test]
fn ome_ngff_geometry_and_roi_reads() {
    let dir = tempfile::tempdir().unwrap();
    let group = dir.path().join("crop.zarr/labels");
    annomask::zarr_array::create_group(
        &group,
        ZarrFormat::V2,
        json!({"multiscales": [{"version": "0.4",
            "axes": [{"name": "z", "type": "space", "unit": "nanometer"},
                     {"name": "y", "type": "space", "unit": "nanometer"},
                     {"name": "x", "type": "space", "unit": "nanometer"}],
            "datasets": [{"path": "s0", "coordinateTransformations": [
                {"type": "scale", "scale": [4.0, 4.0, 4.0]},
                {"type": "translation", "translation": [40.0, 80.0, 0.0]}]}]}]})
        .as_object()
        .unwrap(),
    )
    .unwrap();
    let labels = crop_labels(LabelDtype::U16, &[8, 8, 8], 1);
    let meta = common::labels_attr(&[(3, 1, 1)]);
    write_labels(
        &group.join("s0"),
        &labels,
        &[4, 4, 4],
        ZarrFormat::V2,
        Compression::BloscLz4,
        attrs(meta.clone(), json!({"resolution": [1, 1, 1]})),
    )
    .unwrap();
    let mask = MissingAnnotationsMask::open(group.join("s0"), groupings(), cpu()).unwrap();
    assert_eq!(mask.voxel_size().as_slice(), &[4.0, 4.0, 4.0]);
    assert_eq!(mask.roi(), Roi::new([40.0, 80.0, 0.0], [32.0, 32.0, 32.0]));
    assert_eq!(mask.axes(), ["c", "z", "y", "x"]);
    assert_eq!(
        (
            mask.dims(),
            mask.num_channels(),
            mask.writable(),
            mask.dtype()
        ),
        (3, 5, false, "uint8")
    );
    assert_eq!(mask.channels(), ["a", "b", "c", "d", "fg"]);
    assert_eq!(mask.name(), "s0_missing_annotations_mask");
    assert!(mask.attrs().contains_key("labels"));
    let roi = Roi::new([44.0, 88.0, 8.0], [8.0, 12.0, 24.0]);
    let got = mask.get(&roi).unwrap();
    assert_eq!(got.shape(), &[5, 2, 3, 6]);
    let sub = annomask::with_labels!(&labels, LabelArray, a =>
        LabelArray::from(a.slice(ndarray::s![1..3, 2..5, 2..8]).to_owned().into_dyn()));
    let want = common::oracle(
        &common::bits(&sub),
        &common::channel_ids(&groupings()),
        &BTreeSet::from([3]),
        0,
        false,
    );
    assert_eq!(got.as_slice().unwrap(), &want[..]);
}

/// One crop per dtype, written once, shared by the ROI property test.
fn shared_crops() -> &'static (tempfile::TempDir, Vec<(PathBuf, LabelArray)>) {
    static CROPS: OnceLock<(tempfile::TempDir, Vec<(PathBuf, LabelArray)>)> = OnceLock::new();
    CROPS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let crops = LabelDtype::ALL
            .into_iter()
            .enumerate()
            .map(|(i, dtype)| {
                let labels = crop_labels(dtype, &[11, 6, 9], 100 + i as u64);
                let format = if i % 2 == 0 {
                    ZarrFormat::V2
                } else {
                    ZarrFormat::V3
                };
                let path = dir.path().join(format!("{dtype}.zarr"));
                let meta =
                    common::labels_attr(&[(1, 0, 1), (2, 1, 2), (200, 2, 1), (1 << 40, 1, 1)]);
                write_labels(
                    &path,
                    &labels,
                    &[4, 4, 4],
                    format,
                    Compression::BloscLz4,
                    attrs(
                        meta,
                        json!({"voxel_size": [2, 3, 4], "offset": [10, 0, -8]}),
                    ),
                )
                .unwrap();
                (path, labels)
            })
            .collect();
        (dir, crops)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn random_rois_groupings_and_policies(
        crop in 0usize..8,
        a in prop::collection::vec(0usize..12, 3),
        b in prop::collection::vec(0usize..12, 3),
        channels in prop::collection::vec(prop::collection::vec(prop::sample::select(IDS.to_vec()), 0..4), 0..7),
        per_voxel in any::<bool>(),
        sparse_missing in any::<bool>(),
    ) {
        let (_, crops) = shared_crops();
        let (path, labels) = &crops[crop];
        let shape = labels.shape().to_vec();
        let (lo, hi): (Vec<usize>, Vec<usize>) = (0..3)
            .map(|d| { let (x, y) = (a[d] % (shape[d] + 1), b[d] % (shape[d] + 1)); (x.min(y), x.max(y)) })
            .unzip();
        let vs = [2.0, 3.0, 4.0];
        let off = [10.0, 0.0, -8.0];
        let roi = Roi::new(
            (0..3).map(|d| off[d] + lo[d] as f64 * vs[d]).collect::<Vec<_>>(),
            (0..3).map(|d| (hi[d] - lo[d]) as f64 * vs[d]).collect::<Vec<_>>(),
        );
        let g = Groupings::new(channels.iter().enumerate().map(|(i, c)| (format!("ch{i}"), c.clone()))).unwrap();
        let policy = if per_voxel { MaskPolicy::PerVoxel } else { MaskPolicy::WholeChannel };
        let sparse = if sparse_missing { SparsePolicy::Missing } else { SparsePolicy::Annotated };
        let mask = MissingAnnotationsMask::open(path, g.clone(), cpu().policy(policy).sparse(sparse)).unwrap();
        let got = mask.get(&roi).unwrap();
        let (fused_mask, targets) = mask.get_with_targets(&roi).unwrap();
        prop_assert_eq!(&fused_mask, &got);
        let sub = annomask::with_labels!(labels, LabelArray, arr => LabelArray::from(
            arr.slice(ndarray::s![lo[0]..hi[0], lo[1]..hi[1], lo[2]..hi[2]]).to_owned().into_dyn()).standard());
        let meta = &mask.attrs()["labels"];
        let want = common::oracle(&common::bits(&sub), &common::channel_ids(&g),
            &common::naive_missing(meta, sparse_missing), 0, per_voxel);
        let mut want_shape = vec![channels.len()];
        want_shape.extend((0..3).map(|d| hi[d] - lo[d]));
        prop_assert_eq!(got.shape(), &want_shape[..]);
        prop_assert_eq!(got.as_slice().unwrap(), &want[..]);
        let want_targets = common::target_oracle(&common::bits(&sub), &common::channel_ids(&g), 0);
        prop_assert_eq!(targets.as_slice().unwrap(), &want_targets[..]);
    }
}
