//! N5 input: label arrays written by zarr-python 2's `N5Store` (edge blocks padded) and by z5py
//! (edge blocks truncated, as Java N5 writes them), in `tests/fixtures/n5/`, must open as the
//! same data written as zarr v2 does: the same shape, chunks and geometry (funlib's reversed
//! `resolution`/`offset`), the same labels voxel for voxel, and the same mask; and the numbers
//! `make_fixtures.py` recorded (`expected.json`) must hold.

use std::path::{Path, PathBuf};

use annomask::{
    EngineChoice, Groupings, LabelVolume, MaskOptions, MaskPolicy, MissingAnnotationsMask,
    SparsePolicy, VoxelRegion,
};
use serde_json::Value;

const ARRAYS: [&str; 4] = ["u64_gzip", "u16_raw", "u32_blosc", "u8_2d"];
const N5_CONTAINERS: [&str; 2] = ["labels.n5", "labels_z5.n5"];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/n5")
}

fn expected() -> Value {
    serde_json::from_slice(&std::fs::read(fixtures().join("expected.json")).unwrap()).unwrap()
}

fn whole(volume: &LabelVolume) -> VoxelRegion {
    VoxelRegion {
        start: vec![0; volume.shape().len()],
        shape: volume.shape().to_vec(),
    }
}

fn groupings() -> Groupings {
    Groupings::new([
        ("a", vec![1, 2]),
        ("b", vec![3]),
        ("c", vec![7]),
        ("d", vec![255, 2]),
    ])
    .unwrap()
}

#[test]
fn n5_arrays_read_as_their_zarr_twins() {
    let expected = expected();
    for name in ARRAYS {
        let zarr = LabelVolume::open(fixtures().join("labels.zarr").join(name)).unwrap();
        let want = &expected[name];
        let numbers = |key: &str| -> Vec<f64> {
            want[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect()
        };
        for container in N5_CONTAINERS {
            let path = fixtures().join(container).join(name);
            let n5 = LabelVolume::open(&path).unwrap();
            assert!(n5.is_n5() && !zarr.is_n5(), "{container}/{name}");
            assert_eq!(n5.shape(), zarr.shape(), "{container}/{name}");
            let shape: Vec<u64> = numbers("shape_zyx").iter().map(|&v| v as u64).collect();
            assert_eq!(n5.shape(), &shape[..], "{container}/{name}");
            assert_eq!(n5.chunk_shape(), zarr.chunk_shape(), "{container}/{name}");
            assert_eq!(n5.dtype(), zarr.dtype(), "{container}/{name}");
            let g = n5.geometry();
            assert_eq!(
                g.voxel_size.as_slice(),
                &numbers("voxel_size_zyx")[..],
                "{container}/{name}"
            );
            assert_eq!(
                g.offset.as_slice(),
                &numbers("offset_zyx")[..],
                "{container}/{name}"
            );
            assert_eq!(g.voxel_size, zarr.geometry().voxel_size);
            assert_eq!(g.offset, zarr.geometry().offset);
            let got = n5.read_region(&whole(&n5)).unwrap();
            assert_eq!(
                got,
                zarr.read_region(&whole(&zarr)).unwrap(),
                "{container}/{name}"
            );
            // Regions that cut blocks, edge blocks included.
            let region = VoxelRegion {
                start: n5.shape().iter().map(|&s| s / 3).collect(),
                shape: n5.shape().iter().map(|&s| s - s / 3).collect(),
            };
            assert_eq!(
                n5.read_region(&region).unwrap(),
                zarr.read_region(&region).unwrap(),
                "{container}/{name} {region:?}"
            );
        }
    }
}

#[test]
fn n5_voxel_counts_match_the_writer() {
    let expected = expected();
    for container in N5_CONTAINERS {
        for name in ARRAYS {
            let n5 = LabelVolume::open(fixtures().join(container).join(name)).unwrap();
            let labels = n5.read_region(&whole(&n5)).unwrap();
            let mut counts = std::collections::BTreeMap::<u64, u64>::new();
            let slice = labels.as_slice();
            for i in 0..slice.len() {
                *counts.entry(slice.bits_at(i)).or_default() += 1;
            }
            for (id, count) in expected[name]["voxels_per_id"].as_object().unwrap() {
                let id: u64 = id.parse().unwrap();
                assert_eq!(
                    counts.get(&id).copied().unwrap_or(0),
                    count.as_u64().unwrap(),
                    "{container}/{name} id {id}"
                );
            }
        }
    }
}

#[test]
fn n5_masks_equal_zarr_masks() {
    let expected = expected();
    for name in ARRAYS {
        for (sparse, key) in [
            (SparsePolicy::Missing, "missing_ids_sparse_missing"),
            (SparsePolicy::Annotated, "missing_ids_sparse_annotated"),
        ] {
            for policy in [MaskPolicy::WholeChannel, MaskPolicy::PerVoxel] {
                let options = MaskOptions::default()
                    .engine(EngineChoice::Cpu)
                    .sparse(sparse)
                    .policy(policy);
                let zarr = MissingAnnotationsMask::open(
                    fixtures().join("labels.zarr").join(name),
                    groupings(),
                    options,
                )
                .unwrap();
                let want = zarr.get(&zarr.roi()).unwrap();
                // The writer's missing ids, as the plan of the zarr twin reads them.
                let plan = zarr.plan().to_string();
                for id in expected[name][key].as_array().unwrap() {
                    assert!(
                        plan.contains(&id.to_string()),
                        "{name} {sparse:?}: {id} in {plan}"
                    );
                }
                for container in N5_CONTAINERS {
                    let n5 = MissingAnnotationsMask::open(
                        fixtures().join(container).join(name),
                        groupings(),
                        options,
                    )
                    .unwrap();
                    assert_eq!(n5.roi(), zarr.roi(), "{container}/{name}");
                    assert_eq!(
                        n5.get(&n5.roi()).unwrap(),
                        want,
                        "{container}/{name} {sparse:?} {policy:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn a_block_header_larger_than_the_block_is_refused_by_name() {
    // A hostile or corrupt block: its header claims 60000^3 voxels (what it would decode to),
    // its payload is a few bytes. Refused before anything is allocated for it, naming it.
    let dir = tempfile::tempdir().unwrap();
    let array = dir.path().join("u64_gzip");
    std::fs::create_dir_all(array.join("0/0")).unwrap();
    let src = fixtures().join("labels_z5.n5/u64_gzip");
    std::fs::copy(src.join("attributes.json"), array.join("attributes.json")).unwrap();
    let mut block = vec![0u8, 0, 0, 3];
    for _ in 0..3 {
        block.extend_from_slice(&60000u32.to_be_bytes());
    }
    block.extend_from_slice(&[0x1f, 0x8b, 0, 0]);
    std::fs::write(array.join("0/0/0"), block).unwrap();
    let volume = LabelVolume::open(&array).unwrap();
    let err = volume.read_region(&whole(&volume)).unwrap_err().to_string();
    assert!(
        err.contains("0/0/0")
            && err.contains("[60000, 60000, 60000]")
            && err.contains("block size"),
        "{err}"
    );
}
