//! End to end against the independent numpy reference (`reference/reference_mask.py`, written
//! from docs/contract.md) and zarr-python 3: `annomask compute` output, read by zarr-python,
//! equals the reference mask computed by numpy from the same zarr crop, for v2 and v3 crops and
//! both policies; an OME-NGFF output group is followed to its array by zarr-python. Where the
//! Python also has tensorstore, the outputs are read through tensorstore too.
//!
//! Needs Python with numpy and zarr >= 3: `ANNOMASK_REF_PYTHON`, else the venv that
//! `reference/setup.sh` makes (`/tmp/annomask-ref/bin/python`), else `python3`.
//! Without them the test prints why and passes as skipped, unless `REQUIRE_REFERENCE=1`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use annomask::{
    EngineChoice, Groupings, LabelDtype, MaskOptions, MissingAnnotationsMask, ZarrFormat,
};
use common::{labels_attr, read_mask, write_crop};
use serde_json::json;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("reference/reference_mask.py")
}

/// A Python that has numpy and zarr >= 3, or why there is none.
fn python() -> Result<String, String> {
    if !script().exists() {
        return Err(format!("{} not found", script().display()));
    }
    let candidates: Vec<String> = std::env::var("ANNOMASK_REF_PYTHON")
        .into_iter()
        .chain(["/tmp/annomask-ref/bin/python".into(), "python3".into()])
        .collect();
    let mut why = Vec::new();
    for python in candidates {
        let probe = Command::new(&python)
            .args([
                "-c",
                "import numpy, zarr; assert int(zarr.__version__.split('.')[0]) >= 3, zarr.__version__",
            ])
            .output();
        match probe {
            Ok(o) if o.status.success() => return Ok(python),
            Ok(o) => why.push(format!(
                "{python}: {}",
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("failed")
            )),
            Err(e) => why.push(format!("{python}: {e}")),
        }
    }
    Err(why.join("; "))
}

/// Reads a C-order `|u1` .npy file: shape and data.
fn read_npy(path: &Path) -> (Vec<u64>, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(
        &bytes[..6],
        b"\x93NUMPY",
        "{} is not a .npy file",
        path.display()
    );
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        _ => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
    };
    let header = std::str::from_utf8(&bytes[start..start + header_len]).unwrap();
    assert!(header.contains("'descr': '|u1'"), "{header}");
    assert!(header.contains("'fortran_order': False"), "{header}");
    let shape_text = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .unwrap();
    let shape: Vec<u64> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    (shape, bytes[start + header_len..].to_vec())
}

/// Saves what zarr-python (`zarr`) or tensorstore (`ts`) reads at `array` (an array, or an
/// OME-NGFF group: its first dataset) as a .npy file: `python -c READER reader path out.npy`.
const READER: &str = r#"
import os, sys
import numpy as np
reader, path, out = sys.argv[1:]
if reader == "zarr":
    import zarr
    node = zarr.open(path, mode="r")
    if isinstance(node, zarr.Group):
        attrs = dict(node.attrs)
        ms = attrs["ome"]["multiscales"] if "ome" in attrs else attrs["multiscales"]
        assert ms[0]["axes"][0] == {"name": "c", "type": "channel"}, ms
        node = node[ms[0]["datasets"][0]["path"]]
    assert node.dtype == np.uint8, node.dtype
    data = node[...]
else:
    import tensorstore as ts
    driver = "zarr3" if os.path.exists(os.path.join(path, "zarr.json")) else "zarr"
    spec = {"driver": driver, "kvstore": {"driver": "file", "path": path}}
    data = ts.open(spec, read=True).result().read().result()
np.save(out, np.ascontiguousarray(data))
"#;

fn read_with(python: &str, reader: &str, array: &Path, npy: &Path) {
    run(Command::new(python)
        .args(["-c", READER, reader])
        .arg(array)
        .arg(npy));
}

fn has_tensorstore(python: &str) -> bool {
    let ok = Command::new(python)
        .args(["-c", "import tensorstore"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("tensorstore is not installed for {python}: reading through it is skipped");
    }
    ok
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}{}",
        cmd,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The reference Python, or `None` (after saying why) when the test should skip.
fn python_or_skip() -> Option<String> {
    match python() {
        Ok(p) => Some(p),
        Err(why) if std::env::var("REQUIRE_REFERENCE").is_ok_and(|v| v == "1") => {
            panic!("REQUIRE_REFERENCE=1 but no reference Python: {why}")
        }
        Err(why) => {
            eprintln!(
                "skipping the reference test: no Python with numpy and zarr >= 3 ({why}); \
                 run `bash reference/setup.sh` to make one"
            );
            None
        }
    }
}

/// Fails with the shape or the first differing element (not the whole arrays) unless `got`
/// equals `want`.
fn assert_same(got: &(Vec<u64>, Vec<u8>), want: &(Vec<u64>, Vec<u8>), what: &str) {
    assert_eq!(got.0, want.0, "{what}: shapes differ");
    if let Some(i) = (0..got.1.len()).find(|&i| got.1[i] != want.1[i]) {
        panic!(
            "{what}: element {i} (C order) is {}, the reference has {}",
            got.1[i], want.1[i]
        );
    }
}

/// `array` (channels first, C order) as `read_npy` gives a .npy file: shape and data.
fn as_npy(array: &ndarray::ArrayD<u8>) -> (Vec<u64>, Vec<u8>) {
    (
        array.shape().iter().map(|&s| s as u64).collect(),
        array.iter().copied().collect(),
    )
}

#[test]
fn output_read_by_zarr_python_equals_the_numpy_reference() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let tensorstore = has_tensorstore(&python);
    let dir = tempfile::tempdir().unwrap();
    let groupings = dir.path().join("g.json");
    std::fs::write(
        &groupings,
        r#"[["mito", [3, 4, 5]], ["er", [16, 17]], ["big", [1099511627776]], ["nuc", [20]], ["fg", []]]"#,
    )
    .unwrap();
    let meta = labels_attr(&[
        (3, 0, 0),
        (4, 0, 0),
        (5, 0, 1),
        (16, 1, 0),
        (17, 1, 2),
        (1 << 40, 2, 0),
        (20, 2, 2),
        (21, 0, 3),
    ]);
    let palette = [0u64, 0, 3, 4, 5, 16, 17, 20, 1 << 40, 9];
    let crops = [
        (ZarrFormat::V2, LabelDtype::U64),
        (ZarrFormat::V3, LabelDtype::U64),
        (ZarrFormat::V3, LabelDtype::I64),
    ];
    for (i, (format, dtype)) in crops.into_iter().enumerate() {
        let labels = write_crop(
            &dir.path().join(format!("crop{i}.zarr/labels")),
            &[19, 23, 30],
            &[8, 16, 16],
            dtype,
            format,
            &palette,
            meta.clone(),
            json!({"voxel_size": [8, 8, 8]}),
        );
        for policy in ["whole-channel", "per-voxel"] {
            let out = dir.path().join(format!("mask{i}_{policy}.zarr"));
            run(Command::new(env!("CARGO_BIN_EXE_annomask"))
                .args(["compute", "--engine", "cpu", "--quiet", "--policy", policy])
                .arg(&labels)
                .arg("--groupings")
                .arg(&groupings)
                .arg("--out")
                .arg(&out));
            let reference = dir.path().join(format!("ref{i}_{policy}.npy"));
            let targets = dir.path().join(format!("targets{i}_{policy}.npy"));
            run(Command::new(&python)
                .arg(script())
                .args(["mask", "--policy", policy, "--labels"])
                .arg(&labels)
                .arg("--groupings")
                .arg(&groupings)
                .arg("--out")
                .arg(&reference)
                .arg("--targets-out")
                .arg(&targets));
            let by_zarr_python = dir.path().join(format!("zp{i}_{policy}.npy"));
            read_with(&python, "zarr", &out, &by_zarr_python);
            let attrs = annomask::node::Node::local(&out)
                .unwrap()
                .attributes()
                .unwrap();
            assert_eq!(attrs["channels"], json!(["mito", "er", "big", "nuc", "fg"]));
            let reference = read_npy(&reference);
            assert_eq!(reference.0, [5, 19, 23, 30]);
            assert!(reference.1.contains(&1) && reference.1.contains(&0));
            assert_eq!(read_npy(&by_zarr_python), reference, "crop {i} {policy}");
            assert_eq!(
                read_mask(&out),
                reference,
                "crop {i} {policy} through zarrs"
            );
            // The library's targets (DaCapo's BinarizeArray) equal the reference's too.
            let mask = MissingAnnotationsMask::open(
                &labels,
                Groupings::from_file(&groupings).unwrap(),
                MaskOptions::default()
                    .policy(policy.parse().unwrap())
                    .engine(EngineChoice::Cpu),
            )
            .unwrap();
            let (m, t) = mask.get_with_targets(&mask.roi()).unwrap();
            assert_same(
                &as_npy(&m),
                &reference,
                &format!("crop {i} {policy} library mask"),
            );
            assert_same(
                &as_npy(&t),
                &read_npy(&targets),
                &format!("crop {i} {policy} targets"),
            );
            if tensorstore {
                let by_tensorstore = dir.path().join(format!("ts{i}_{policy}.npy"));
                read_with(&python, "ts", &out, &by_tensorstore);
                assert_eq!(
                    read_npy(&by_tensorstore),
                    reference,
                    "crop {i} {policy} tensorstore"
                );
            }
        }
    }

    // OME-NGFF inputs: the output is a multiscale group; zarr-python follows it to the array.
    for format in [ZarrFormat::V2, ZarrFormat::V3] {
        let group = dir
            .path()
            .join(format!("ome{}.zarr/labels", format.number()));
        let multiscale = json!({"axes": [{"name": "z", "type": "space", "unit": "nanometer"},
            {"name": "y", "type": "space", "unit": "nanometer"},
            {"name": "x", "type": "space", "unit": "nanometer"}],
            "datasets": [{"path": "s0", "coordinateTransformations": [
                {"type": "scale", "scale": [8.0, 8.0, 8.0]}]}]});
        let attrs = match format {
            ZarrFormat::V2 => {
                let mut m = multiscale;
                m["version"] = json!("0.4");
                json!({"multiscales": [m]})
            }
            ZarrFormat::V3 => json!({"ome": {"version": "0.5", "multiscales": [multiscale]}}),
        };
        annomask::zarr_array::create_group(&group, format, attrs.as_object().unwrap()).unwrap();
        let labels = write_crop(
            &group.join("s0"),
            &[10, 12, 14],
            &[8, 8, 8],
            LabelDtype::U16,
            format,
            &[0, 3, 5, 17, 20],
            meta.clone(),
            json!({}),
        );
        let out = dir.path().join(format!("ome_mask{}.zarr", format.number()));
        run(Command::new(env!("CARGO_BIN_EXE_annomask"))
            .args(["compute", "--engine", "cpu", "--quiet"])
            .arg(&labels)
            .arg("--groupings")
            .arg(&groupings)
            .arg("--out")
            .arg(&out));
        let reference = dir.path().join(format!("ome_ref{}.npy", format.number()));
        run(Command::new(&python)
            .arg(script())
            .args(["mask", "--labels"])
            .arg(&labels)
            .arg("--groupings")
            .arg(&groupings)
            .arg("--out")
            .arg(&reference));
        let by_zarr_python = dir.path().join(format!("ome_zp{}.npy", format.number()));
        read_with(&python, "zarr", &out, &by_zarr_python);
        assert_eq!(
            read_npy(&by_zarr_python),
            read_npy(&reference),
            "OME v{}",
            format.number()
        );
    }
}

/// Deterministic values for a class array: `palette[hash(i) % len]` per voxel.
fn palette_values<T: Copy>(n: usize, seed: u64, palette: &[T]) -> Vec<T> {
    (0..n as u64)
        .map(|i| {
            let mut x = (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed;
            x ^= x >> 31;
            x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
            palette[(x >> 17) as usize % palette.len()]
        })
        .collect()
}

/// CellMap crop groups (contract 1.4): `annomask compute` on a crop group, read by zarr-python,
/// and the library's mask and targets equal `reference_mask.py crop`, for v2 and v3 crops at
/// two scales; classes of four dtypes, a negative `unknown` code in a signed array, a code the
/// dtype cannot hold, a class without `unknown`, and a channel with a class the crop lacks.
#[test]
fn crop_group_output_equals_the_numpy_reference() {
    use annomask::cellmap::attrs::{AnnotationKind, Encoding};
    use annomask::cellmap::synth::{ClassSpec, CropSpec, SEMANTIC, write_crop};
    use annomask::{ClassGroupings, CropOptions, LabelArray};
    use ndarray::{ArrayD, IxDyn};

    let Some(python) = python_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let groupings = dir.path().join("classes.json");
    std::fs::write(
        &groupings,
        r#"[["mito", ["mito_mem", "mito"]], ["lacking", ["mito_mem", "er_lum"]],
            ["signed", ["signed"]], ["wide", ["wide"]], ["ecs", ["ecs"]],
            ["mixed", ["wide", "signed", "mito"]]]"#,
    )
    .unwrap();
    let shape = [9usize, 10, 12];
    let n: usize = shape.iter().product();
    let u8s = |seed, p: &[u8]| {
        LabelArray::from(ArrayD::from_shape_vec(IxDyn(&shape), palette_values(n, seed, p)).unwrap())
    };
    let classes = [
        (
            "mito_mem",
            AnnotationKind::Semantic,
            SEMANTIC,
            u8s(1, &[0, 1, 1, 255, 7]),
        ),
        (
            "mito",
            AnnotationKind::Instance,
            Encoding {
                absent: Some(0),
                present: None,
                unknown: Some(u64::MAX),
            },
            LabelArray::from(
                ArrayD::from_shape_vec(
                    IxDyn(&shape),
                    palette_values(n, 2, &[0u64, u64::MAX, 5, 1 << 40, 255]),
                )
                .unwrap(),
            ),
        ),
        (
            // -1 in the metadata is 2^64-1: it matches -1 in an int8 array
            "signed",
            AnnotationKind::Instance,
            Encoding {
                absent: Some(0),
                present: None,
                unknown: Some(u64::MAX),
            },
            LabelArray::from(
                ArrayD::from_shape_vec(IxDyn(&shape), palette_values(n, 3, &[0i8, -1, 3, -5, 127]))
                    .unwrap(),
            ),
        ),
        (
            // 70000 does not fit uint16: no voxel is unknown
            "wide",
            AnnotationKind::Semantic,
            Encoding {
                absent: Some(0),
                present: Some(1),
                unknown: Some(70000),
            },
            LabelArray::from(
                ArrayD::from_shape_vec(
                    IxDyn(&shape),
                    palette_values(n, 4, &[0u16, 1, 2, 65535, 4464]),
                )
                .unwrap(),
            ),
        ),
        (
            "ecs",
            AnnotationKind::Semantic,
            Encoding {
                absent: Some(0),
                present: Some(1),
                unknown: None,
            },
            u8s(5, &[0, 1, 9]),
        ),
    ];
    for format in [ZarrFormat::V2, ZarrFormat::V3] {
        let specs = classes
            .iter()
            .map(|(name, kind, encoding, values)| {
                let mut spec = ClassSpec::new(*name, *kind, *encoding, values.clone());
                spec.scales = 2;
                spec.chunks = vec![4, 5, 6];
                spec
            })
            .collect();
        let mut spec = CropSpec::new(specs);
        spec.format = format;
        let crop = write_crop(&dir.path().join(format!("crop{}", format.number())), &spec).unwrap();
        for scale in ["s0", "s1"] {
            let tag = format!("v{} {scale}", format.number());
            let out = dir
                .path()
                .join(format!("crop_mask{}_{scale}.zarr", format.number()));
            run(Command::new(env!("CARGO_BIN_EXE_annomask"))
                .args(["compute", "--engine", "cpu", "--quiet", "--scale", scale])
                .arg(&crop)
                .arg("--groupings")
                .arg(&groupings)
                .arg("--out")
                .arg(&out));
            let reference = dir
                .path()
                .join(format!("crop_ref{}_{scale}.npy", format.number()));
            let targets = dir
                .path()
                .join(format!("crop_targets{}_{scale}.npy", format.number()));
            run(Command::new(&python)
                .arg(script())
                .args(["crop", "--scale", scale, "--crop"])
                .arg(&crop)
                .arg("--groupings")
                .arg(&groupings)
                .arg("--out")
                .arg(&reference)
                .arg("--targets-out")
                .arg(&targets));
            let reference = read_npy(&reference);
            let targets = read_npy(&targets);
            assert_eq!(reference.0[0], 6, "{tag}");
            assert!(
                reference.1.contains(&1) && reference.1.contains(&0),
                "{tag}"
            );
            assert!(targets.1.contains(&1), "{tag}");
            let by_zarr_python = dir
                .path()
                .join(format!("crop_zp{}_{scale}.npy", format.number()));
            read_with(&python, "zarr", &out, &by_zarr_python);
            assert_same(
                &read_npy(&by_zarr_python),
                &reference,
                &format!("{tag}: compute"),
            );
            let mask = MissingAnnotationsMask::open_with(
                &crop,
                ClassGroupings::from_file(&groupings).unwrap(),
                MaskOptions::default().engine(EngineChoice::Cpu),
                &CropOptions::default().scale(scale),
            )
            .unwrap();
            let (m, t) = mask.get_with_targets(&mask.roi()).unwrap();
            assert_same(&as_npy(&m), &reference, &format!("{tag}: library mask"));
            assert_same(&as_npy(&t), &targets, &format!("{tag}: library targets"));
        }
    }
}
