//! `annomask bench` (issue 6): the kernel table and its JSON, the end-to-end `--pipeline`
//! table, and bad options. Tiny sizes: these check that every row is there and well formed,
//! never how fast anything is.

mod common;

use std::path::{Path, PathBuf};

use common::annomask;
use serde_json::Value;

/// Whether the reference venv is where `bench` looks by default (then its rows must be there):
/// `$ANNOMASK_REFERENCE_PYTHON` or the venv of `reference/setup.sh`, and
/// `$ANNOMASK_REFERENCE_SCRIPT` or this crate's `reference/reference_mask.py`.
fn reference_found() -> bool {
    let python = std::env::var_os("ANNOMASK_REFERENCE_PYTHON").is_some()
        || Path::new("/tmp/annomask-ref/bin/python").exists();
    let script = std::env::var_os("ANNOMASK_REFERENCE_SCRIPT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("reference/reference_mask.py")
        });
    python && script.is_file()
}

fn stdout(args: &[&str]) -> String {
    let assert = annomask().args(args).assert().success();
    String::from_utf8_lossy(&assert.get_output().stdout).into_owned()
}

/// The first number of the row named `name` in a table (its time).
fn row_time(text: &str, name: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no row {name:?} in\n{text}"));
    line[name.len()..]
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no time in {line:?}"))
}

#[test]
fn bench_prints_every_row() {
    let text = stdout(&["bench", "--size", "16", "--repeat", "1", "--engine", "cpu"]);
    assert!(
        text.starts_with("16^3 uint64 labels, 8 channels, policy whole-channel, best of 1"),
        "{text}"
    );
    for header in ["time ms", "Gvox/s", "GB/s", "% memcpy", "x numpy"] {
        assert!(text.contains(header), "{header:?} not in\n{text}");
    }
    for row in ["memcpy (same bytes, all threads)", "cpu ", "cpu bit-packed"] {
        assert!(row_time(&text, row) > 0.0, "{row}");
    }
    if reference_found() {
        for row in ["numpy dacapo (released code)", "numpy whole-channel"] {
            assert!(row_time(&text, row) > 0.0, "{row}");
        }
    } else {
        assert!(text.contains("note: numpy reference skipped"), "{text}");
    }
    let skipped = stdout(&[
        "bench",
        "--size",
        "8",
        "--repeat",
        "1",
        "--engine",
        "cpu",
        "--no-reference",
        "--dtype",
        "int16",
        "--policy",
        "per-voxel",
        "--channels",
        "3",
    ]);
    assert!(
        skipped.starts_with("8^3 int16 labels, 3 channels, policy per-voxel"),
        "{skipped}"
    );
    assert!(skipped.contains("numpy reference skipped"), "{skipped}");
}

#[test]
fn bench_json_has_the_fields() {
    let text = stdout(&[
        "bench", "--size", "16", "--repeat", "2", "--engine", "cpu", "--json",
    ]);
    let report: Value = serde_json::from_str(&text).unwrap();
    assert!(report["config"].as_str().unwrap().contains("best of 2"));
    assert!(report["machine"].as_str().is_some());
    let engines = report["engines"].as_array().unwrap();
    let names: Vec<&str> = engines
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cpu", "cpu bit-packed"]);
    let reference = report["reference"].as_array().unwrap();
    assert_eq!(reference.len(), if reference_found() { 2 } else { 0 });
    for row in engines.iter().chain(reference).chain([&report["memcpy"]]) {
        for field in [
            "seconds",
            "gvoxels_per_s",
            "gbytes_per_s",
            "of_memcpy",
            "voxels",
            "bytes",
        ] {
            let v = row[field]
                .as_f64()
                .unwrap_or_else(|| panic!("{field} in {row}"));
            assert!(v > 0.0 && v.is_finite(), "{field} in {row}");
        }
        assert_eq!(row["voxels"], 4096);
        let speedup = &row["speedup_vs_best_numpy"];
        if reference_found() {
            assert!(speedup.as_f64().unwrap() > 0.0, "{row}");
        } else {
            assert!(speedup.is_null(), "{row}");
        }
    }
    assert!(report["notes"].is_array());
}

#[test]
fn bench_on_the_gpu_engine_times_kernels_and_transfers() {
    if let Err(e) = annomask::gpu::GpuEngine::new() {
        if std::env::var("REQUIRE_GPU").is_ok_and(|v| v == "1") {
            panic!("REQUIRE_GPU=1 but no GPU engine: {e}");
        }
        eprintln!("skipping: no GPU adapter ({e})");
        return;
    }
    let text = stdout(&[
        "bench",
        "--size",
        "16",
        "--repeat",
        "1",
        "--engine",
        "gpu",
        "--no-reference",
    ]);
    for row in [
        "gpu ",
        "gpu bit-packed",
        "gpu kernel ",
        "gpu kernel bit-packed",
        "gpu transfers only (upload + readback)",
    ] {
        assert!(row_time(&text, row) > 0.0, "{row}");
    }
    assert!(text.contains("; GPU "), "{text}");
}

#[test]
fn bench_pipeline_runs_every_row_and_checks_the_python_mask() {
    let dir = tempfile::tempdir().unwrap();
    let assert = annomask()
        .args([
            "bench",
            "--pipeline",
            "--size",
            "32",
            "--repeat",
            "2",
            "--engine",
            "cpu",
            "--dir",
        ])
        .arg(dir.path())
        .assert()
        .success();
    let text = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(
        text.starts_with(
            "32^3 uint64 crop (zarr v3, blosc-lz4, 32^3 chunks, 1 chunks), 8 channels, best of 2"
        ),
        "{text}"
    );
    assert!(stderr.contains("bench: round 2/2"), "{stderr}");
    for row in [
        "annomask compute (library pipeline)",
        "  same, --writers 0 (readers write)",
        "zarrs read + write, no compute (ceiling)",
        "  same, atomic store (temp + fsync + rename)",
    ] {
        assert!(row_time(&text, row) > 0.0, "{row}");
    }
    assert!(
        text.contains("annomask compute / plain zarrs read + write: "),
        "{text}"
    );
    if reference_found() {
        assert!(row_time(&text, "python: zarr-python + DaCapo numpy (process)") > 0.0);
        assert!(row_time(&text, "  same, job only (no start-up, imports)") > 0.0);
        assert!(
            text.contains("note: checked: the Python pipeline's mask equals annomask's"),
            "{text}"
        );
    } else {
        assert!(text.contains("note: Python pipeline skipped"), "{text}");
    }
    // Everything it wrote is removed.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    let text = stdout(&[
        "bench",
        "--pipeline",
        "--size",
        "20",
        "--channels",
        "11",
        "--repeat",
        "1",
        "--engine",
        "cpu",
        "--no-reference",
        "--json",
    ]);
    let report: Value = serde_json::from_str(&text).unwrap();
    assert!(report["config"].as_str().unwrap().contains("11 channels"));
    assert_eq!(report["voxels"], 8000);
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "no Python rows: {report}");
    for row in rows {
        for field in [
            "best_seconds",
            "median_seconds",
            "mvoxels_per_s",
            "vs_annomask",
        ] {
            let v = row[field]
                .as_f64()
                .unwrap_or_else(|| panic!("{field} in {row}"));
            assert!(v > 0.0 && v.is_finite(), "{field} in {row}");
        }
        assert_eq!(row["seconds"].as_array().unwrap().len(), 1);
    }
    assert!(report["annomask_over_zarrs"].as_f64().unwrap() > 0.0);
    assert!(report["annomask_inline_over_zarrs"].as_f64().unwrap() > 0.0);
    assert!(report["python_over_annomask"].is_null());
}

#[test]
fn bench_feeder_runs_both_feeders_and_checks_the_numpy_one() {
    let text = stdout(&[
        "bench",
        "--feeder",
        "--size",
        "24",
        "--roi",
        "8",
        "--batches",
        "3",
        "--repeat",
        "2",
        "--engine",
        "cpu",
    ]);
    assert!(
        text.starts_with("8^3 ROIs of a 24^3 uint64 zarr crop"),
        "{text}"
    );
    assert!(
        row_time(&text, "annomask feeder (fused, prefetched)") > 0.0,
        "{text}"
    );
    if reference_found() {
        assert!(
            row_time(&text, "numpy DaCapo-style feeder (job only)") > 0.0,
            "{text}"
        );
        assert!(
            text.contains(
                "note: checked: the numpy feeder's first ROI has annomask's per-channel sums"
            ),
            "{text}"
        );
        assert!(text.contains("annomask feeder / numpy feeder: "), "{text}");
    } else {
        assert!(text.contains("note: numpy feeder skipped"), "{text}");
    }
    let json: Value = serde_json::from_str(&stdout(&[
        "bench",
        "--feeder",
        "--size",
        "16",
        "--roi",
        "8",
        "--batches",
        "2",
        "--repeat",
        "1",
        "--engine",
        "cpu",
        "--no-reference",
        "--json",
    ]))
    .unwrap();
    assert!(
        json["annomask"]["batches_per_s"].as_f64().unwrap() > 0.0,
        "{json}"
    );
    assert!(
        json["numpy"].is_null() && json["speedup_vs_numpy"].is_null(),
        "{json}"
    );
}

#[test]
fn bad_bench_options_are_errors() {
    // A reference given explicitly must exist.
    let assert = annomask()
        .args(["bench", "--size", "8", "--reference", "/nonexistent/python"])
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert_eq!(
        stderr.trim(),
        "error: --reference /nonexistent/python: no such file"
    );
    // Options of the kernel benchmark do not apply to --pipeline (clap: exit 2).
    for extra in [["--dtype", "uint8"], ["--policy", "per-voxel"]] {
        let assert = annomask()
            .args(["bench", "--pipeline", "--size", "8"])
            .args(extra)
            .assert()
            .code(2);
        let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
        assert!(stderr.contains("cannot be used with"), "{stderr}");
    }
    for extra in [["--roi", "8"], ["--batches", "2"]] {
        annomask().arg("bench").args(extra).assert().code(2); // need --feeder
    }
    annomask()
        .args(["bench", "--feeder", "--pipeline"])
        .assert()
        .code(2);
    for extra in [["--size", "0"], ["--repeat", "0"], ["--engine", "tpu"]] {
        annomask().arg("bench").args(extra).assert().code(2);
    }
}
