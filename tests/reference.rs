//! End to end against the independent numpy reference (`../shared/reference/reference_mask.py`,
//! DaCapo's algorithm) and zarr-python 3: `annomask compute` output, read by zarr-python, equals
//! the reference mask computed by numpy from the same zarr crop, for v2 and v3 crops and both
//! policies.
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
            run(Command::new(&python)
                .args([
                    "-c",
                    "import sys, numpy as np, zarr\n\
                     a = zarr.open_array(sys.argv[1], mode='r')\n\
                     assert a.dtype == np.uint8, a.dtype\n\
                     assert list(a.attrs['channels']) == ['mito', 'er', 'big', 'nuc', 'fg'], dict(a.attrs)\n\
                     np.save(sys.argv[2], np.ascontiguousarray(a[...]))",
                ])
                .arg(&out)
                .arg(&by_zarr_python));
            let reference = read_npy(&reference);
            assert_eq!(reference.0, [5, 19, 23, 30]);
            assert!(reference.1.contains(&1) && reference.1.contains(&0));
            assert_eq!(read_npy(&by_zarr_python), reference, "crop {i} {policy}");
            assert_eq!(
                read_mask(&out),
                reference,
                "crop {i} {policy} through zarrs"
            );
        }
    }
}
