//! End to end against the independent numpy reference (`../shared/reference/reference_mask.py`,
//! DaCapo's algorithm) and zarr-python 3: `annomask compute` output, read by zarr-python, equals
//! the reference mask computed by numpy from the same zarr crop, for v2 and v3 crops and both
//! policies; an OME-NGFF output group is followed to its array by zarr-python. Where the Python
//! also has tensorstore, the outputs are read through tensorstore too.
//!
//! Needs Python with numpy and zarr >= 3: `ANNOMASK_REF_PYTHON`, else the venv that
//! `../shared/reference/setup.sh` makes (`/tmp/annomask-ref/bin/python`), else `python3`.
//! Without them the test prints why and passes as skipped, unless `REQUIRE_REFERENCE=1`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use annomask::{LabelDtype, ZarrFormat};
use common::{labels_attr, read_mask, write_crop};
use serde_json::json;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/reference/reference_mask.py")
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

#[test]
fn output_read_by_zarr_python_equals_the_numpy_reference() {
    let python = match python() {
        Ok(p) => p,
        Err(why) if std::env::var("REQUIRE_REFERENCE").is_ok_and(|v| v == "1") => {
            panic!("REQUIRE_REFERENCE=1 but no reference Python: {why}")
        }
        Err(why) => {
            eprintln!(
                "skipping the reference test: no Python with numpy and zarr >= 3 ({why}); \
                 run `bash ../shared/reference/setup.sh` to make one"
            );
            return;
        }
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
            run(Command::new(&python)
                .arg(script())
                .args(["mask", "--policy", policy, "--labels"])
                .arg(&labels)
                .arg("--groupings")
                .arg(&groupings)
                .arg("--out")
                .arg(&reference));
            let by_zarr_python = dir.path().join(format!("zp{i}_{policy}.npy"));
            read_with(&python, "zarr", &out, &by_zarr_python);
            let attrs = annomask::volume::node_attributes(&out).unwrap();
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
