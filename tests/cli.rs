//! The command line (issue 5): `compute`, `inspect` and `demo`, each checked against the naive
//! oracle or the metadata read the naive way, and every bad input giving one clear error line.

mod common;

use std::path::{Path, PathBuf};

use annomask::{LabelDtype, LabelVolume, ZarrFormat};
use common::{annomask, expected_mask, files, labels_attr, read_mask, write_crop};
use serde_json::{Value, json};

/// ids: 1 annotated, 2 sparse (enum), 3 not annotated, 5 annotated (airtable), 8 not present,
/// 200 not annotated ("empty").
fn meta() -> Value {
    labels_attr(&[
        (1, 0, 0),
        (2, 1, 2),
        (3, 0, 1),
        (5, 2, 0),
        (8, 0, 3),
        (200, 1, 1),
    ])
}

const PALETTE: [u64; 8] = [0, 0, 1, 2, 3, 5, 200, 7];

fn channels() -> Vec<Vec<u64>> {
    vec![vec![1, 2], vec![3, 5], vec![5, 8], vec![200], vec![]]
}

const NAMES: [&str; 5] = ["a", "b", "c", "d", "fg"];

fn groupings_file(dir: &Path) -> PathBuf {
    let path = dir.join("groupings.json");
    let list: Vec<Value> = NAMES
        .iter()
        .zip(channels())
        .map(|(n, ids)| json!([n, ids]))
        .collect();
    std::fs::write(&path, Value::Array(list).to_string()).unwrap();
    path
}

fn geometry() -> Value {
    json!({"voxel_size": [4, 4, 4], "offset": [40, 0, -8], "axis_names": ["z", "y", "x"],
           "units": ["nm", "nm", "nm"]})
}

/// A 20 x 24 x 17 uint16 crop in 8^3 chunks (edge chunks partial).
fn crop(dir: &Path, name: &str, format: ZarrFormat) -> PathBuf {
    write_crop(
        &dir.join(name),
        &[20, 24, 17],
        &[8, 8, 8],
        LabelDtype::U16,
        format,
        &PALETTE,
        meta(),
        geometry(),
    )
}

/// The attributes of the array at `path` (v2 `.zattrs` or v3 `zarr.json`).
fn attributes(path: &Path) -> Value {
    if path.join("zarr.json").exists() {
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(path.join("zarr.json")).unwrap())
                .unwrap();
        v["attributes"].clone()
    } else {
        serde_json::from_str(&std::fs::read_to_string(path.join(".zattrs")).unwrap()).unwrap()
    }
}

fn compute(labels: &[&Path], groupings: &Path, out: &Path) -> assert_cmd::Command {
    let mut cmd = annomask();
    cmd.args(["compute", "--engine", "cpu", "--quiet"])
        .args(labels)
        .arg("--groupings")
        .arg(groupings)
        .arg("--out")
        .arg(out);
    cmd
}

fn temporaries(dir: &Path) -> Vec<String> {
    if !dir.exists() {
        return Vec::new();
    }
    files(dir)
        .into_keys()
        .filter(|k| annomask::store::is_temporary(k))
        .collect()
}

#[test]
fn compute_equals_the_oracle_in_v2_and_v3_under_both_policies() {
    let dir = tempfile::tempdir().unwrap();
    let g = groupings_file(dir.path());
    for format in [ZarrFormat::V2, ZarrFormat::V3] {
        let labels = crop(dir.path(), &format!("crop{}.zarr", format.number()), format);
        for (policy, per_voxel) in [("whole-channel", false), ("per-voxel", true)] {
            for (sparse, sparse_missing) in [("missing", true), ("annotated", false)] {
                let out = dir
                    .path()
                    .join(format!("out{}_{policy}_{sparse}.zarr", format.number()));
                compute(&[&labels], &g, &out)
                    .args(["--policy", policy, "--sparse", sparse])
                    .assert()
                    .success();
                let want = expected_mask(&labels, &channels(), None, 0, per_voxel, sparse_missing);
                assert_eq!(read_mask(&out), want, "{} {policy} {sparse}", out.display());
                let meta_file = match format {
                    ZarrFormat::V2 => ".zarray",
                    ZarrFormat::V3 => "zarr.json",
                };
                assert!(out.join(meta_file).exists(), "same format as the input");
                let attrs = attributes(&out);
                assert_eq!(attrs["channels"], json!(NAMES));
                let expected_missing = if sparse_missing {
                    json!({"a": [2], "b": [3], "c": [], "d": [200], "fg": []})
                } else {
                    json!({"a": [], "b": [3], "c": [], "d": [200], "fg": []})
                };
                assert_eq!(attrs["missing_ids"], expected_missing);
                assert_eq!(attrs["policy"], json!(policy));
                assert_eq!(attrs["sparse_policy"], json!(sparse));
                assert_eq!(
                    attrs["input"],
                    json!(labels.canonicalize().unwrap().display().to_string())
                );
                assert_eq!(attrs["voxel_size"], json!([4, 4, 4]));
                assert_eq!(attrs["offset"], json!([40, 0, -8]));
                assert_eq!(attrs["axis_names"], json!(["c^", "z", "y", "x"]));
                assert_eq!(attrs["units"], json!(["nm", "nm", "nm"]));
                // Every chunk is stored, all-zero ones included (the resume check relies on it).
                let chunk_files = files(&out)
                    .keys()
                    .filter(|k| k.ends_with(char::is_numeric))
                    .count();
                assert_eq!(chunk_files, 3 * 3 * 3);
            }
        }
    }
}

#[test]
fn roi_chunks_and_format_override() {
    let dir = tempfile::tempdir().unwrap();
    let g = groupings_file(dir.path());
    let labels = crop(dir.path(), "crop.zarr", ZarrFormat::V3);
    let out = dir.path().join("roi.zarr");
    // Voxels [2, 3, 1] + [15, 17, 16]; world = offset + voxel * 4.
    compute(&[&labels], &g, &out)
        .args([
            "--roi=48,12,-4:108,80,60",
            "--chunks",
            "2,7,5,6",
            "--zarr-format",
            "2",
            "--background",
            "1",
        ])
        .assert()
        .success();
    let want = expected_mask(
        &labels,
        &channels(),
        Some((&[2, 3, 1], &[15, 17, 16])),
        1,
        false,
        true,
    );
    assert_eq!(read_mask(&out), want);
    let zarray: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join(".zarray")).unwrap()).unwrap();
    assert_eq!(zarray["chunks"], json!([2, 7, 5, 6]));
    assert_eq!(zarray["shape"], json!([5, 15, 17, 16]));
    assert_eq!(attributes(&out)["offset"], json!([48, 12, -4]));
    assert_eq!(attributes(&out)["background"], json!(1));
}

fn ome_group(path: &Path, format: ZarrFormat) {
    let multiscale = json!({
        "axes": [{"name": "z", "type": "space", "unit": "nanometer"},
                 {"name": "y", "type": "space", "unit": "nanometer"},
                 {"name": "x", "type": "space", "unit": "nanometer"}],
        "datasets": [{"path": "s0", "coordinateTransformations": [
            {"type": "scale", "scale": [4.0, 4.0, 4.0]},
            {"type": "translation", "translation": [40.0, 80.0, 0.0]}]}]});
    let attrs = match format {
        ZarrFormat::V2 => {
            let mut m = multiscale;
            m["version"] = json!("0.4");
            json!({"multiscales": [m]})
        }
        ZarrFormat::V3 => json!({"ome": {"version": "0.5", "multiscales": [multiscale]}}),
    };
    annomask::zarr_array::create_group(path, format, attrs.as_object().unwrap()).unwrap();
}

#[test]
fn ome_ngff_input_gives_an_ome_ngff_group_with_a_channel_axis() {
    let dir = tempfile::tempdir().unwrap();
    let g = groupings_file(dir.path());
    for format in [ZarrFormat::V2, ZarrFormat::V3] {
        let group = dir
            .path()
            .join(format!("ome{}.zarr/labels", format.number()));
        ome_group(&group, format);
        let labels = write_crop(
            &group.join("s0"),
            &[12, 10, 9],
            &[8, 8, 8],
            LabelDtype::U64,
            format,
            &PALETTE,
            meta(),
            json!({}),
        );
        let out = dir.path().join(format!("mask{}.zarr", format.number()));
        compute(&[&labels], &g, &out)
            .arg("--roi=44,80,0:88,120,36")
            .assert()
            .success();
        // The array is at OUT/s0, like the input's dataset, and equals the oracle.
        let want = expected_mask(
            &labels,
            &channels(),
            Some((&[1, 0, 0], &[11, 10, 9])),
            0,
            false,
            true,
        );
        assert_eq!(read_mask(&out.join("s0")), want);
        // Our own OME-NGFF reader (SPEC 3) finds the channel axis and the ROI's offset.
        let mask = LabelVolume::open(out.join("s0")).unwrap();
        let geom = mask.geometry();
        assert_eq!(geom.source, "ome-ngff");
        assert_eq!(geom.axis_names, ["c", "z", "y", "x"]);
        assert_eq!(geom.voxel_size.as_slice(), &[1.0, 4.0, 4.0, 4.0]);
        assert_eq!(geom.offset.as_slice(), &[0.0, 44.0, 80.0, 0.0]);
        let root = annomask::node::Node::local(&out)
            .unwrap()
            .attributes()
            .unwrap();
        let ms = match format {
            ZarrFormat::V2 => root["multiscales"][0].clone(),
            ZarrFormat::V3 => root["ome"]["multiscales"][0].clone(),
        };
        assert_eq!(ms["axes"][0], json!({"name": "c", "type": "channel"}));
        assert_eq!(ms["axes"][1]["unit"], json!("nanometer"));
    }
}

#[test]
fn many_crops_by_glob_and_template() {
    let dir = tempfile::tempdir().unwrap();
    let g = groupings_file(dir.path());
    let crops: Vec<PathBuf> = (0..3)
        .map(|i| {
            let format = if i == 1 {
                ZarrFormat::V2
            } else {
                ZarrFormat::V3
            };
            let shape = [9 + i, 7, 5 + 2 * i];
            write_crop(
                &dir.path().join(format!("data/c{i}.zarr/labels")),
                &shape,
                &[4, 4, 4],
                LabelDtype::U32,
                format,
                &PALETTE,
                meta(),
                json!({}),
            )
        })
        .collect();
    let pattern = dir.path().join("data/*.zarr/labels");
    let template = dir.path().join("out/{name}_mask.zarr");
    annomask()
        .args(["compute", "--engine", "cpu"])
        .arg(pattern.to_str().unwrap())
        .arg("--groupings")
        .arg(&g)
        .arg("--out")
        .arg(template.to_str().unwrap())
        .assert()
        .success()
        .stdout(predicates::str::contains("[3/3]"));
    for (i, labels) in crops.iter().enumerate() {
        let out = dir.path().join(format!("out/c{i}_mask.zarr"));
        let want = expected_mask(labels, &channels(), None, 0, false, true);
        assert_eq!(read_mask(&out), want, "{}", out.display());
    }

    // Listed paths and {index}.
    let template = dir.path().join("out2/{index}-{stem}.zarr");
    compute(&[&crops[2], &crops[0]], &g, &template)
        .assert()
        .success();
    assert_eq!(
        read_mask(&dir.path().join("out2/0-labels.zarr")),
        expected_mask(&crops[2], &channels(), None, 0, false, true)
    );
    assert!(dir.path().join("out2/1-labels.zarr").exists());

    // Two crops into one output: refused before anything is written.
    let same = dir.path().join("out3/mask.zarr");
    let assert = compute(&[&crops[0], &crops[1]], &g, &same)
        .assert()
        .failure();
    let err = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(
        err.contains("c0.zarr/labels") && err.contains("c1.zarr/labels") && err.contains("{index}"),
        "{err}"
    );
    assert!(!dir.path().join("out3").exists());
}

#[test]
fn resume_skips_complete_chunks_and_rewrites_missing_ones() {
    let dir = tempfile::tempdir().unwrap();
    let g = groupings_file(dir.path());
    let labels = crop(dir.path(), "crop.zarr", ZarrFormat::V3);
    let out = dir.path().join("mask.zarr");
    compute(&[&labels], &g, &out).assert().success();
    let complete = files(&out);
    let deleted = out.join("c/0/1/2/0");
    let damaged = out.join("c/0/2/0/1");
    std::fs::remove_file(&deleted).unwrap();
    std::fs::write(&damaged, b"not a chunk").unwrap();
    let stale = out.join("c/0/0/0/0.tmp-99999-0-1");
    std::fs::write(&stale, b"half a chunk").unwrap();

    annomask()
        .args(["compute", "--engine", "cpu", "--resume"])
        .arg(&labels)
        .arg("--groupings")
        .arg(&g)
        .arg("--out")
        .arg(&out)
        .assert()
        .success()
        .stdout(predicates::str::contains(
            "wrote 1 block(s), 26 skipped as complete",
        ))
        .stdout(predicates::str::contains("1 stale temporary file(s)"));
    let resumed = files(&out);
    assert_eq!(resumed.len(), complete.len(), "the stale temporary is gone");
    for (name, bytes) in &complete {
        if name == "c/0/2/0/1" {
            // Present, hence taken as complete and skipped: resume does not recompute it.
            assert_eq!(resumed[name], b"not a chunk");
        } else {
            assert_eq!(&resumed[name], bytes, "{name}");
        }
    }
    // A run without --resume recomputes (and atomically replaces) every chunk.
    compute(&[&labels], &g, &out).assert().success();
    assert_eq!(files(&out), complete);
}

#[test]
fn shards_write_disjoint_parts_that_make_up_the_whole() {
    let dir = tempfile::tempdir().unwrap();
    let g = groupings_file(dir.path());
    let labels = crop(dir.path(), "crop.zarr", ZarrFormat::V2);
    let whole = dir.path().join("whole.zarr");
    compute(&[&labels], &g, &whole).assert().success();
    let sharded = dir.path().join("sharded.zarr");
    let mut seen = 0;
    for i in 0..4 {
        compute(&[&labels], &g, &sharded)
            .args(["--shard", &format!("{i}/4")])
            .assert()
            .success();
        let now = files(&sharded).len();
        assert!(now > seen, "shard {i} wrote something");
        seen = now;
    }
    assert_eq!(files(&sharded), files(&whole));
}

#[test]
fn progress_is_logged_when_not_on_a_terminal_and_quiet_silences_everything() {
    let dir = tempfile::tempdir().unwrap();
    let g = groupings_file(dir.path());
    let labels = crop(dir.path(), "crop.zarr", ZarrFormat::V3);
    let out = dir.path().join("mask.zarr");
    let assert = annomask()
        .args(["compute", "--engine", "cpu", "--threads", "1"])
        .arg(&labels)
        .arg("--groupings")
        .arg(&g)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(
        stderr.contains("starting: 27 blocks, 8160 voxels"),
        "{stderr}"
    );
    assert!(stderr.contains("100% 27/27 blocks"), "{stderr}");
    assert!(stdout.contains("engine: cpu (1 threads)"), "{stdout}");
    // The streamed per-channel counts equal the oracle's.
    let (_, want) = expected_mask(&labels, &channels(), None, 0, false, true);
    let voxels = want.len() / NAMES.len();
    for (c, name) in NAMES.iter().enumerate() {
        let trained = want[c * voxels..(c + 1) * voxels]
            .iter()
            .filter(|&&v| v == 1)
            .count();
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no line for {name}: {stdout}"));
        assert!(
            line.contains(&format!(" {trained} (")),
            "{name}: want {trained}: {line}"
        );
    }

    annomask()
        .args(["compute", "--engine", "cpu", "-q", "--resume"])
        .arg(&labels)
        .arg("--groupings")
        .arg(&g)
        .arg("--out")
        .arg(&out)
        .assert()
        .success()
        .stdout("")
        .stderr("");
}

#[test]
fn inspect_reports_metadata_plan_and_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let labels = crop(dir.path(), "crop.zarr", ZarrFormat::V2);
    let g = dir.path().join("g.json");
    std::fs::write(&g, r#"[["a", [1, 2, 99]], ["b", [3]], ["fg", []]]"#).unwrap();
    let assert = annomask()
        .arg("inspect")
        .arg(&labels)
        .arg("--groupings")
        .arg(&g)
        .assert()
        .success();
    let text = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    for want in [
        "zarr v2, uint16, shape [20, 24, 17], chunks [8, 8, 8]",
        "voxel size [4, 4, 4] nm, offset [40, 0, -8], axes [z, y, x]",
        "channel a: id 99 is not in the metadata",
        "class 5 (c5) is present in the crop but in no channel",
        "class 200 (c200) is present in the crop but in no channel",
        "channel a is 0 everywhere: missing [2]",
        "[2]  fg",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    assert!(!text.contains("class 8 "), "id 8 is not present: {text}");

    let assert = annomask()
        .arg("inspect")
        .arg(&labels)
        .args(["--json", "--sparse", "annotated", "--groupings"])
        .arg(&g)
        .assert()
        .success();
    let report: Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
    let missing = common::naive_missing(&meta(), false);
    let ids = report["ids"].as_array().unwrap();
    assert_eq!(ids.len(), 6);
    for entry in ids {
        let id = entry["id"].as_u64().unwrap();
        assert_eq!(entry["missing"], json!(missing.contains(&id)), "id {id}");
    }
    let zeroed: Vec<bool> = report["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["zeroed"].as_bool().unwrap())
        .collect();
    assert_eq!(
        zeroed,
        [false, true, false],
        "sparse id 2 counts as annotated"
    );
    assert_eq!(report["shape"], json!([20, 24, 17]));

    // Without groupings: no plan. Without metadata: a warning, not an error.
    let bare = write_crop(
        &dir.path().join("bare.zarr"),
        &[4, 4],
        &[4, 4],
        LabelDtype::U8,
        ZarrFormat::V2,
        &[0, 1],
        json!([]),
        json!({}),
    );
    std::fs::remove_file(bare.join(".zattrs")).unwrap();
    let assert = annomask()
        .arg("inspect")
        .arg(&bare)
        .arg("--json")
        .assert()
        .success();
    let report: Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
    assert_eq!(report["channels"], Value::Null);
    assert_eq!(report["metadata_found"], json!(false));
    assert_eq!(report["axis_names"], json!(["y", "x"]));
    assert!(
        report["warnings"][0]
            .as_str()
            .unwrap()
            .contains("--allow-missing-metadata"),
        "{report}"
    );
}

#[test]
fn a_closed_stdout_is_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let labels = crop(dir.path(), "crop.zarr", ZarrFormat::V3);
    // A pipe whose reading end is closed before the program starts: every write fails (EPIPE),
    // as in `annomask inspect ... | head -0`.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_annomask"))
        .arg("inspect")
        .arg(&labels)
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && !stderr.contains("panicked"),
        "{stderr}"
    );
}

#[test]
fn demo_runs_the_pipeline_and_summarises_each_channel() {
    let dir = tempfile::tempdir().unwrap();
    let assert = annomask()
        .args([
            "demo",
            "--size",
            "24",
            "--engine",
            "cpu",
            "--zarr-format",
            "2",
            "--out",
        ])
        .arg(dir.path())
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    let labels = dir.path().join("demo_crop.zarr/labels");
    let demo: Vec<Vec<u64>> = annomask::synth::demo_groupings()
        .channels()
        .iter()
        .map(|c| c.ids.clone())
        .collect();
    let want = expected_mask(&labels, &demo, None, 0, false, true);
    assert_eq!(read_mask(&dir.path().join("demo_mask.zarr")), want);
    let voxels = 24 * 24 * 24;
    let nucleus = want.1[2 * voxels..3 * voxels]
        .iter()
        .filter(|&&v| v == 1)
        .count();
    assert!(nucleus > 0);
    assert!(
        stdout.contains(&format!("{nucleus} ("))
            && stdout.contains("off everywhere: id 5 (mito_ribo)"),
        "{stdout}"
    );
    assert!(stdout.contains("wrote 1 block(s)"), "{stdout}");
}

/// Runs `annomask args...`, expects failure with exit code `code` and exactly one stderr line
/// holding every one of `wants`; returns the line.
fn fails(args: &[&str], code: i32, wants: &[&str]) -> String {
    let assert = annomask().args(args).assert().code(code);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let line = lines.first().copied().unwrap_or_default().to_string();
    if code == 1 {
        assert_eq!(lines.len(), 1, "one line: {stderr}");
    }
    assert!(line.starts_with("error: "), "{stderr}");
    for want in wants {
        assert!(line.contains(want), "{want:?} not in {line:?}");
    }
    line
}

#[test]
fn every_bad_input_is_one_clear_error_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = |p: &str| dir.path().join(p).display().to_string();
    let g = groupings_file(dir.path()).display().to_string();
    let labels = crop(dir.path(), "crop.zarr", ZarrFormat::V3)
        .display()
        .to_string();
    let out = d("out.zarr");

    std::fs::create_dir(dir.path().join("plain")).unwrap();
    let mut spec =
        annomask::zarr_array::ArraySpec::new(vec![4, 4], vec![2, 2], "float32", ZarrFormat::V3);
    spec.attributes = json!({"labels": []}).as_object().unwrap().clone();
    annomask::zarr_array::create_array(dir.path().join("float.zarr"), &spec).unwrap();
    write_crop(
        &dir.path().join("nometa.zarr"),
        &[4, 4],
        &[4, 4],
        LabelDtype::U8,
        ZarrFormat::V2,
        &[0, 1],
        json!([]),
        json!({}),
    );
    std::fs::remove_file(dir.path().join("nometa.zarr/.zattrs")).unwrap();
    write_crop(
        &dir.path().join("badmeta.zarr"),
        &[4, 4],
        &[4, 4],
        LabelDtype::U8,
        ZarrFormat::V3,
        &[0, 1],
        json!([{"value": 1, "annotationState": {"present": "yes", "annotated": true}}]),
        json!({}),
    );
    std::fs::write(d("bad.json"), "[[\"a\", [1]").unwrap();
    std::fs::write(d("badid.json"), r#"[["a", [1, -2]]]"#).unwrap();
    std::fs::write(d("empty.json"), "[]").unwrap();
    std::fs::write(d("empty.toml"), "").unwrap();
    std::fs::write(d("none.toml"), "groupings = []\n").unwrap();
    std::fs::write(
        d("bad.toml"),
        "groupings = [\n  [\"a\", [1]],\n  [\"b\" [2]],\n]\n",
    )
    .unwrap();
    std::fs::write(
        d("big.toml"),
        "groupings = [[\"a\", [1, 9223372036854775808]]]\n",
    )
    .unwrap();
    std::fs::write(d("afile"), "x").unwrap();
    std::fs::create_dir(dir.path().join("foreign")).unwrap();
    std::fs::write(dir.path().join("foreign/notes.txt"), "mine").unwrap();

    let compute_args = |labels: &str, g: &str, out: &str, extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "compute",
            "--engine",
            "cpu",
            labels,
            "--groupings",
            g,
            "--out",
            out,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let cases: Vec<(Vec<String>, Vec<String>)> = vec![
        (
            compute_args(&d("nope/labels"), &g, &out, &[]),
            vec![d("nope/labels"), "no such file".into()],
        ),
        (
            compute_args(&d("plain"), &g, &out, &[]),
            vec![d("plain"), "not a zarr array".into()],
        ),
        (
            compute_args(&d("float.zarr"), &g, &out, &[]),
            vec![d("float.zarr"), "unsupported label dtype float32".into()],
        ),
        (
            compute_args(&d("nometa.zarr"), &g, &out, &[]),
            vec![d("nometa.zarr"), "no `labels` attribute".into()],
        ),
        (
            compute_args(&d("badmeta.zarr"), &g, &out, &[]),
            vec![
                d("badmeta.zarr"),
                "labels[0].annotationState.present".into(),
            ],
        ),
        (
            compute_args(&labels, &d("bad.json"), &out, &[]),
            vec![d("bad.json"), "groupings are not valid".into()],
        ),
        (
            compute_args(&labels, &d("missing.json"), &out, &[]),
            vec![d("missing.json"), "cannot read groupings".into()],
        ),
        (
            compute_args(&labels, &d("badid.json"), &out, &[]),
            vec![d("badid.json"), "member 1 is -2".into()],
        ),
        (
            compute_args(&labels, &d("empty.json"), &out, &[]),
            vec![format!(
                "error: {}: the groupings have no channels",
                d("empty.json")
            )],
        ),
        (
            compute_args(&labels, &d("empty.toml"), &out, &[]),
            vec![format!(
                "error: {}: the groupings have no channels",
                d("empty.toml")
            )],
        ),
        (
            compute_args(&labels, &d("none.toml"), &out, &[]),
            vec![format!(
                "error: {}: the groupings have no channels",
                d("none.toml")
            )],
        ),
        (
            compute_args(&labels, &d("bad.toml"), &out, &[]),
            vec![
                d("bad.toml"),
                "groupings are not valid: TOML line 3, column".into(),
            ],
        ),
        (
            compute_args(&labels, &d("big.toml"), &out, &[]),
            vec![
                d("big.toml"),
                "TOML line 1, column 24: integer 9223372036854775808 is out of range".into(),
                "as JSON".into(),
            ],
        ),
        (
            compute_args(&labels, &g, &out, &["--roi=40,0,-8:120,96,100"]),
            vec![
                labels.clone(),
                "is not inside the array".into(),
                "[40:120, 0:96, -8:100]".into(),
            ],
        ),
        (
            compute_args(&labels, &g, &out, &["--roi=42,0,-8:82,96,60"]),
            vec![labels.clone(), "not voxel-aligned".into()],
        ),
        (
            compute_args(&labels, &g, &out, &["--roi=0,0:8,8"]),
            vec![labels.clone(), "has 2 axes".into()],
        ),
        (
            compute_args(&labels, &g, &out, &["--chunks", "8,8"]),
            vec![out.clone(), "--chunks has 2 values".into()],
        ),
        (
            compute_args(&labels, &g, &d("afile/out.zarr"), &[]),
            vec![d("afile/out.zarr"), "cannot write".into()],
        ),
        (
            compute_args(&labels, &g, &d("afile"), &[]),
            vec![d("afile"), "is a file".into()],
        ),
        (
            compute_args(&labels, &g, &d("foreign"), &[]),
            vec![d("foreign"), "not a mask output (found notes.txt)".into()],
        ),
        (
            compute_args(&labels, &g, &d("o/{crop}.zarr"), &[]),
            vec!["unknown placeholder {crop}".into()],
        ),
        (
            compute_args(&d("*.n5"), &g, &out, &[]),
            vec![d("*.n5"), "matches nothing".into()],
        ),
        (
            vec!["inspect".into(), d("nope")],
            vec![d("nope"), "no such file".into()],
        ),
        (
            vec!["inspect".into(), d("float.zarr")],
            vec!["unsupported label dtype".into()],
        ),
    ];
    for (args, wants) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let wants: Vec<&str> = wants.iter().map(String::as_str).collect();
        fails(&args, 1, &wants);
        assert!(!Path::new(&out).exists(), "{args:?} wrote {out}");
        assert!(!dir.path().join("o").exists());
        assert_eq!(files(&dir.path().join("foreign")).len(), 1);
    }

    // An empty output path must not write into the working directory.
    let cwd = tempfile::tempdir().unwrap();
    let assert = annomask()
        .current_dir(cwd.path())
        .args(compute_args(&labels, &g, "", &[]))
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(
        stderr.starts_with("error: --out \"\": invalid output: the output path is empty"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_dir(cwd.path()).unwrap().count(), 0);

    // An existing output of other options is refused, and left as it was.
    let first = d("first.zarr");
    annomask()
        .args(compute_args(&labels, &g, &first, &["-q"]))
        .assert()
        .success();
    let before = files(Path::new(&first));
    fails(
        &compute_args(&labels, &g, &first, &["--policy", "per-voxel", "--resume"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        1,
        &[
            &first,
            "exists with different metadata",
            "attributes.policy",
            "per-voxel",
        ],
    );
    assert_eq!(files(Path::new(&first)), before);

    // Command-line syntax: clap's errors (exit code 2), never a panic.
    for (extra, want) in [
        (vec!["--shard", "3/3"], "--shard"),
        (vec!["--shard", "1"], "--shard"),
        (vec!["--roi", "1,2"], "--roi"),
        (vec!["--threads", "0"], "--threads"),
        (vec!["--zarr-format", "4"], "--zarr-format"),
        (vec!["--policy", "sometimes"], "--policy"),
        (vec!["--engine", "tpu"], "--engine"),
        (vec!["--compression", "lz5"], "--compression"),
    ] {
        let args = compute_args(&labels, &g, &out, &extra);
        fails(
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
            2,
            &[want],
        );
        assert!(!Path::new(&out).exists());
    }
}

/// `--threads` beyond what the system grants (issue 12) is one error line at the start, not a
/// panic ("The global thread pool has not been initialized") at the first parallel step. A
/// 1 GiB address-space limit leaves room for a few hundred 2 MiB thread stacks, not 4096
/// (RLIMIT_NPROC would not do: root is exempt from it).
#[cfg(target_os = "linux")]
#[test]
fn threads_the_system_refuses_are_one_error_line() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let labels = crop(dir.path(), "crop.zarr", ZarrFormat::V3);
    let g = groupings_file(dir.path());
    let out = dir.path().join("out.zarr");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_annomask"));
    cmd.args(["compute", "--engine", "cpu", "--quiet", "--threads", "4096"])
        .arg(&labels)
        .arg("--groupings")
        .arg(&g)
        .arg("--out")
        .arg(&out)
        .env_remove("RUST_MIN_STACK");
    // SAFETY: setrlimit is async-signal-safe, and the closure allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 1 << 30,
                rlim_max: 1 << 30,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let output = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(
        // Refused before any thread starts (more than 8 per core), or the system's refusal.
        lines[0].starts_with("error: --threads 4096: more than ")
            || lines[0].starts_with("error: --threads 4096: cannot start 4096 threads: "),
        "{stderr}"
    );
    assert!(!out.exists());
}

#[test]
fn a_corrupted_input_chunk_names_the_array_and_leaves_only_complete_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let g = groupings_file(dir.path());
    let labels = crop(dir.path(), "crop.zarr", ZarrFormat::V3);
    std::fs::write(labels.join("c/1/1/1"), b"\x28\xb5\x2f\xfd garbage").unwrap();
    let out = dir.path().join("mask.zarr");
    let args: Vec<String> = ["compute", "--engine", "cpu", "--threads", "1", "-q"]
        .iter()
        .map(|s| s.to_string())
        .chain([
            labels.display().to_string(),
            "--groupings".into(),
            g.display().to_string(),
            "--out".into(),
            out.display().to_string(),
        ])
        .collect();
    fails(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        1,
        &[
            &labels.display().to_string(),
            "cannot read",
            "chunk c/1/1/1",
        ],
    );
    assert!(temporaries(&out).is_empty());
    // What was written is complete: every chunk present decodes, and a resume run after
    // repairing the input finishes the output.
    write_crop(
        &labels,
        &[20, 24, 17],
        &[8, 8, 8],
        LabelDtype::U16,
        ZarrFormat::V3,
        &PALETTE,
        meta(),
        geometry(),
    );
    compute(&[&labels], &g, &out)
        .arg("--resume")
        .assert()
        .success();
    assert_eq!(
        read_mask(&out),
        expected_mask(&labels, &channels(), None, 0, false, true)
    );
}

#[test]
fn gpu_engine_writes_the_same_bytes_as_the_cpu_engine() {
    if let Err(e) = annomask::gpu::GpuEngine::new() {
        if std::env::var("REQUIRE_GPU").is_ok_and(|v| v == "1") {
            panic!("REQUIRE_GPU=1 but no GPU engine: {e}");
        }
        eprintln!("skipping: no GPU adapter ({e})");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let g = groupings_file(dir.path());
    let labels = crop(dir.path(), "crop.zarr", ZarrFormat::V3);
    let cpu = dir.path().join("cpu.zarr");
    let gpu = dir.path().join("gpu.zarr");
    compute(&[&labels], &g, &cpu)
        .args(["--policy", "per-voxel"])
        .assert()
        .success();
    annomask()
        .args([
            "compute",
            "--engine",
            "gpu",
            "--verify",
            "--policy",
            "per-voxel",
        ])
        .arg(&labels)
        .arg("--groupings")
        .arg(&g)
        .arg("--out")
        .arg(&gpu)
        .assert()
        .success()
        .stdout(predicates::str::contains("engine: gpu"));
    assert_eq!(files(&gpu), files(&cpu));
}
