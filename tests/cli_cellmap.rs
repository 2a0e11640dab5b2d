//! CellMap crop groups through the command line (issue 7): `compute` on a crop in the challenge
//! layout (v2 blosc and v3) equal to the SPEC 1.4 oracle and to the library's `get`, at a chosen
//! scale, over a ROI, resumed and sharded, on both engines; `inspect` as text and JSON; `demo
//! --cellmap`; and every bad input as one `error:` line with nothing written.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use annomask::cellmap::synth;
use annomask::zarr_array::Compression;
use annomask::{
    CropOptions, EngineChoice, LabelDtype, MaskOptions, MissingAnnotationsMask, Roi, ZarrFormat,
};
use common::crop::{CropCase, OracleClass, annotation};
use common::{annomask, files, read_mask};
use serde_json::{Value, json};

/// A 6 x 10 x 7 crop of four classes (u8 and u16 semantic, u64 and i32 instance), in 4 x 5 x 4
/// chunks; channels over them and over `er_lum`, which the crop lacks.
fn case() -> CropCase {
    let shape = [6usize, 10, 7];
    let n: usize = shape.iter().product();
    let draw = |seed: u64, palette: &[u64]| -> Vec<u64> {
        (0..n as u64)
            .map(|i| {
                palette[(annomask::synth::splitmix64(seed ^ i) % palette.len() as u64) as usize]
            })
            .collect()
    };
    let class = |name: &str, dtype, instance, (absent, present, unknown), raw| OracleClass {
        name: name.into(),
        dtype,
        instance,
        absent,
        present,
        unknown,
        raw,
    };
    let semantic = (Some(0), Some(1), Some(255));
    CropCase {
        shape: shape.to_vec(),
        classes: vec![
            class(
                "mito_mem",
                LabelDtype::U8,
                false,
                semantic,
                draw(1, &[0, 0, 1, 255]),
            ),
            class(
                "mito_lum",
                LabelDtype::U8,
                false,
                semantic,
                draw(2, &[0, 1, 1, 1, 255]),
            ),
            class(
                "mito",
                LabelDtype::U64,
                true,
                (Some(0), None, Some(u64::MAX)),
                draw(3, &[0, 7, 1 << 40, u64::MAX]),
            ),
            class(
                "er_mem",
                LabelDtype::U16,
                false,
                (Some(0), Some(1), None),
                draw(4, &[0, 1]),
            ),
            class(
                "nuc",
                LabelDtype::I32,
                true,
                (Some(0), None, Some(u64::MAX)),
                draw(5, &[0, 3, u64::MAX]),
            ),
        ],
        channels: vec![
            vec!["mito_mem".into(), "mito_lum".into()],
            vec!["er_mem".into(), "er_lum".into()],
            vec!["mito".into()],
            vec!["nuc".into(), "mito_lum".into()],
            vec!["er_mem".into()],
        ],
    }
}

const NAMES: [&str; 5] = ["mito", "er", "mito_instances", "nuc_or_lum", "er_mem"];

fn groupings_file(dir: &Path, case: &CropCase) -> PathBuf {
    let path = dir.join("classes.json");
    let list: Vec<Value> = NAMES
        .iter()
        .zip(&case.channels)
        .map(|(n, classes)| json!([n, classes]))
        .collect();
    std::fs::write(&path, Value::Array(list).to_string()).unwrap();
    path
}

/// The case written as a crop group at `dir/name` (v2 with blosc as the challenge does, or v3
/// with zstd), in chunks of 4 x 5 x 4.
fn write(dir: &Path, name: &str, case: &CropCase, format: ZarrFormat) -> PathBuf {
    let classes = case
        .classes
        .iter()
        .map(|c| {
            let a = annotation(c);
            let mut spec = synth::ClassSpec::new(
                c.name.clone(),
                a.kind,
                a.encoding,
                common::labels_of(c.dtype, &case.shape, &c.raw),
            );
            spec.chunks = vec![4, 5, 4];
            spec
        })
        .collect();
    let mut spec = synth::CropSpec::new(classes);
    spec.format = format;
    spec.compression = match format {
        ZarrFormat::V2 => Compression::BloscLz4,
        ZarrFormat::V3 => Compression::Zstd,
    };
    synth::write_crop(&dir.join(name), &spec).unwrap()
}

fn compute(crop: &Path, groupings: &Path, out: &Path) -> assert_cmd::Command {
    let mut cmd = annomask();
    cmd.args(["compute", "--engine", "cpu", "--quiet"])
        .arg(crop)
        .arg("--groupings")
        .arg(groupings)
        .arg("--out")
        .arg(out);
    cmd
}

/// The attributes of the node at `path` (v2 `.zattrs` or v3 `zarr.json`).
fn attributes(path: &Path) -> Value {
    Value::Object(
        annomask::node::Node::local(path)
            .unwrap()
            .attributes()
            .unwrap(),
    )
}

/// The library's mask of the crop at `crop` (CPU engine), whole, at `scale`.
fn library_mask(crop: &Path, groupings: &Path, scale: &str) -> (Vec<u64>, Vec<u8>) {
    let g = annomask::ChannelGroupings::from_file(groupings).unwrap();
    let mask = MissingAnnotationsMask::open_with(
        crop,
        g,
        MaskOptions::default().engine(EngineChoice::Cpu),
        &CropOptions::default().scale(scale),
    )
    .unwrap();
    let m = mask.get(&mask.roi()).unwrap();
    let shape = m.shape().iter().map(|&s| s as u64).collect();
    (shape, m.as_slice().unwrap().to_vec())
}

#[test]
fn compute_on_a_crop_group_equals_the_oracle_and_the_library_in_v2_and_v3() {
    let dir = tempfile::tempdir().unwrap();
    let case = case();
    let g = groupings_file(dir.path(), &case);
    let (want, _) = case.oracle();
    for format in [ZarrFormat::V2, ZarrFormat::V3] {
        let crop = write(
            dir.path(),
            &format!("crop{}", format.number()),
            &case,
            format,
        );
        let out = dir.path().join(format!("mask{}.zarr", format.number()));
        compute(&crop, &g, &out).assert().success();
        // The class arrays are OME-NGFF levels: the mask is the level `s0` of an OME-NGFF group.
        let (shape, data) = read_mask(&out.join("s0"));
        assert_eq!(shape, [5, 6, 10, 7]);
        assert_eq!(data, want, "{format:?}: the oracle");
        assert_eq!(
            (shape, data),
            library_mask(&crop, &g, "s0"),
            "{format:?}: the library"
        );
        let er = &want[6 * 10 * 7..2 * 6 * 10 * 7];
        assert!(
            er.iter().all(|&v| v == 0),
            "er_lum is lacking: er is zeroed"
        );
        let meta = match format {
            ZarrFormat::V2 => ".zarray",
            ZarrFormat::V3 => "zarr.json",
        };
        assert!(
            out.join("s0").join(meta).exists(),
            "same format as the crop"
        );
        let attrs = attributes(&out.join("s0"));
        assert_eq!(attrs["channels"], json!(NAMES));
        assert_eq!(attrs["policy"], json!("cellmap-known"));
        assert_eq!(attrs["scale"], json!("s0"));
        assert_eq!(
            attrs["input"],
            json!(crop.canonicalize().unwrap().display().to_string())
        );
        assert_eq!(
            attrs["lacking_classes"],
            json!({"mito": [], "er": ["er_lum"], "mito_instances": [], "nuc_or_lum": [],
                   "er_mem": []})
        );
        assert_eq!(attrs["classes"]["nuc_or_lum"], json!(["nuc", "mito_lum"]));
        assert_eq!(attrs["voxel_size"], json!([8, 8, 8]));
        assert_eq!(attrs["axis_names"], json!(["c^", "z", "y", "x"]));
        assert!(attrs.get("missing_ids").is_none() && attrs.get("background").is_none());
        let root = attributes(&out);
        let ms = match format {
            ZarrFormat::V2 => root["multiscales"][0].clone(),
            ZarrFormat::V3 => root["ome"]["multiscales"][0].clone(),
        };
        assert_eq!(ms["axes"][0], json!({"name": "c", "type": "channel"}));
        assert_eq!(ms["datasets"][0]["path"], json!("s0"));
        // Chunks follow the class arrays' 4 x 5 x 4: 2 x 2 x 2 blocks, all stored.
        let chunks = files(&out.join("s0"))
            .keys()
            .filter(|k| k.ends_with(char::is_numeric))
            .count();
        assert_eq!(chunks, 8);
    }
}

#[test]
fn scale_roi_resume_and_shards_on_a_crop_group() {
    let dir = tempfile::tempdir().unwrap();
    // The demo crop has scales s0 and s1 (every second voxel, voxel size 16, offset 4).
    let crop = synth::write_demo_crop(dir.path(), 16, ZarrFormat::V2).unwrap();
    let g = dir.path().join("classes.json");
    std::fs::write(
        &g,
        r#"[["mito", ["mito_mem", "mito_lum"]], ["er", ["er_mem", "er_lum"]],
            ["mito_instances", ["mito"]], ["er_mem", ["er_mem"]]]"#,
    )
    .unwrap();
    let out = dir.path().join("s1.zarr");
    compute(&crop, &g, &out)
        .args(["--scale", "s1"])
        .assert()
        .success();
    let got = read_mask(&out.join("s1"));
    assert_eq!(got.0, [4, 8, 8, 8]);
    assert_eq!(got, library_mask(&crop, &g, "s1"));
    let s0 = library_mask(&crop, &g, "s0");
    assert_ne!(got.1.len(), s0.1.len());
    let attrs = attributes(&out.join("s1"));
    assert_eq!(attrs["scale"], json!("s1"));
    assert_eq!(attrs["voxel_size"], json!([16, 16, 16]));
    assert_eq!(attrs["offset"], json!([4, 4, 4]));
    assert!(!out.join("s0").exists());

    // A ROI in world units at s1: voxels [1, 2, 0] + [3, 4, 8].
    let roi_out = dir.path().join("roi.zarr");
    compute(&crop, &g, &roi_out)
        .args(["--scale", "s1", "--roi=20,36,4:68,100,132"])
        .assert()
        .success();
    let g_lib = annomask::ChannelGroupings::from_file(&g).unwrap();
    let mask = MissingAnnotationsMask::open_with(
        &crop,
        g_lib,
        MaskOptions::default().engine(EngineChoice::Cpu),
        &CropOptions::default().scale("s1"),
    )
    .unwrap();
    let want = mask
        .get(&Roi::new([20.0, 36.0, 4.0], [48.0, 64.0, 128.0]))
        .unwrap();
    let (shape, data) = read_mask(&roi_out.join("s1"));
    assert_eq!(shape, [4, 3, 4, 8]);
    assert_eq!(data, want.as_slice().unwrap());
    assert_eq!(
        attributes(&roi_out.join("s1"))["offset"],
        json!([20, 36, 4])
    );

    // Shards and resume, with chunks of 4^3 (8 blocks at s1).
    let whole = dir.path().join("whole.zarr");
    compute(&crop, &g, &whole)
        .args(["--scale", "s1", "--chunks", "4,4,4"])
        .assert()
        .success();
    let sharded = dir.path().join("sharded.zarr");
    for i in 0..3 {
        compute(&crop, &g, &sharded)
            .args(["--scale", "s1", "--chunks", "4,4,4", "--shard"])
            .arg(format!("{i}/3"))
            .assert()
            .success();
    }
    assert_eq!(files(&sharded), files(&whole));
    std::fs::remove_file(whole.join("s1/0/1/0/1")).unwrap();
    annomask()
        .args(["compute", "--engine", "cpu", "--resume", "--scale", "s1"])
        .args(["--chunks", "4,4,4"])
        .arg(&crop)
        .arg("--groupings")
        .arg(&g)
        .arg("--out")
        .arg(&whole)
        .assert()
        .success()
        .stdout(predicates::str::contains(
            "wrote 1 block(s), 7 skipped as complete",
        ))
        .stdout(predicates::str::contains("(CellMap crop group, scale s1)"));
    assert_eq!(files(&sharded), files(&whole));
}

#[test]
fn gpu_engine_with_verify_writes_the_same_bytes_as_the_cpu_engine() {
    if let Err(e) = annomask::gpu::GpuEngine::new() {
        if std::env::var("REQUIRE_GPU").is_ok_and(|v| v == "1") {
            panic!("REQUIRE_GPU=1 but no GPU engine: {e}");
        }
        eprintln!("skipping: no GPU adapter ({e})");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let case = case();
    let g = groupings_file(dir.path(), &case);
    for format in [ZarrFormat::V2, ZarrFormat::V3] {
        let crop = write(
            dir.path(),
            &format!("crop{}", format.number()),
            &case,
            format,
        );
        let cpu = dir.path().join(format!("cpu{}.zarr", format.number()));
        let gpu = dir.path().join(format!("gpu{}.zarr", format.number()));
        compute(&crop, &g, &cpu).assert().success();
        annomask()
            .args(["compute", "--engine", "gpu", "--verify"])
            .arg(&crop)
            .arg("--groupings")
            .arg(&g)
            .arg("--out")
            .arg(&gpu)
            .assert()
            .success()
            .stdout(predicates::str::contains("engine: gpu"));
        assert_eq!(files(&gpu), files(&cpu), "{format:?}");
        assert_eq!(read_mask(&gpu.join("s0")).1, case.oracle().0);
    }
}

#[test]
fn inspect_a_crop_group_as_text_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let crop = synth::write_demo_crop(dir.path(), 8, ZarrFormat::V3).unwrap();
    let g = dir.path().join("classes.json");
    std::fs::write(
        &g,
        r#"[["mito", ["mito_mem", "mito_lum"]], ["er", ["er_mem", "er_lum"]]]"#,
    )
    .unwrap();
    let assert = annomask()
        .arg("inspect")
        .arg(&crop)
        .arg("--groupings")
        .arg(&g)
        .assert()
        .success();
    let text = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    for want in [
        "cellmap-schemas 0.1.1, scale s0",
        "mito_mem  semantic  uint8   [8, 8, 8]",
        "{absent: 0, present: 1, unknown: 255}",
        "yes, read",
        "er_lum    -         -       -",
        "no (not in the crop)",
        "[1] er    [er_mem, er_lum]      -> zeroed: not in the crop: er_lum",
        "class \"er_lum\" of the groupings is not in this crop (not annotated): channel(s) er zeroed",
    ] {
        assert!(text.contains(want), "{want:?} not in\n{text}");
    }
    // er_mem is in the crop but only in a zeroed channel: not read.
    let er_mem = text.lines().find(|l| l.starts_with("er_mem")).unwrap();
    assert!(
        er_mem.contains("  yes  ") && !er_mem.contains("read"),
        "{er_mem}"
    );

    let assert = annomask()
        .arg("inspect")
        .arg(&crop)
        .args(["--json", "--scale", "s1", "--groupings"])
        .arg(&g)
        .assert()
        .success();
    let report: Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
    assert_eq!(report["scale"], json!("s1"));
    assert_eq!(report["version"], json!("0.1.1"));
    let classes = report["classes"].as_array().unwrap();
    let names: Vec<&str> = classes
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["mito_mem", "mito_lum", "mito", "er_mem", "er_lum"]);
    assert_eq!(classes[0]["shape"], json!([4, 4, 4]));
    assert_eq!(classes[0]["read"], json!(true));
    assert_eq!(classes[2]["type"], json!("instance_segmentation"));
    assert_eq!(classes[2]["read"], json!(false), "mito is in no channel");
    assert_eq!(classes[4]["in_crop"], json!(false));
    assert_eq!(classes[0]["complement_counts"]["unknown"], json!(16));
    let channels = report["plan"]["channels"].as_array().unwrap();
    assert_eq!(channels[0]["zeroed"], json!(false));
    assert_eq!(channels[1]["zeroed"], json!(true));
    assert_eq!(channels[1]["lacking"], json!(["er_lum"]));
    assert_eq!(
        report["plan"]["classes_read"],
        json!(["mito_mem", "mito_lum"])
    );
    assert_eq!(report["warnings"].as_array().unwrap().len(), 1);

    // Without groupings: the class table, no plan. A scale the crop lacks is a warning here
    // (compute refuses it).
    let assert = annomask()
        .arg("inspect")
        .arg(&crop)
        .args(["--json", "--scale", "s2"])
        .assert()
        .success();
    let report: Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
    assert_eq!(report["plan"], Value::Null);
    let warnings = report["warnings"].to_string();
    assert!(
        warnings.contains("has no scale \\\"s2\\\" (its scales: s0, s1)"),
        "{warnings}"
    );
}

#[test]
fn demo_cellmap_computes_a_crop_group() {
    let dir = tempfile::tempdir().unwrap();
    let assert = annomask()
        .args(["demo", "--cellmap", "--size", "12", "--engine", "cpu"])
        .args(["--zarr-format", "2", "--out"])
        .arg(dir.path())
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    let crop = dir.path().join("crop1");
    let g = dir.path().join("g.json");
    std::fs::write(
        &g,
        r#"[["mito", ["mito_mem", "mito_lum"]], ["er", ["er_mem", "er_lum"]], ["mito_instances", ["mito"]]]"#,
    )
    .unwrap();
    let want = library_mask(&crop, &g, "s0");
    assert_eq!(read_mask(&dir.path().join("demo_mask.zarr/s0")), want);
    // mito is unknown in the slab z < 3 of 12: 75% trained.
    let mito = want.1[..12 * 12 * 12].iter().filter(|&&v| v == 1).count();
    assert_eq!(mito, 12 * 12 * 9);
    for line in [
        "CellMap crop group (challenge layout, zarr v2",
        "no (not in the crop)",
        &format!("{mito} (75.0%)"),
        "off everywhere: not annotated in this crop: er_lum",
        "wrote 1 block(s)",
    ] {
        assert!(stdout.contains(line), "{line:?} not in\n{stdout}");
    }
}

/// Runs `annomask args...`; expects exit code 1 and exactly one stderr line, starting with
/// `error: ` and holding every one of `wants`.
fn fails(args: &[&str], wants: &[&str]) {
    let assert = annomask().args(args).assert().code(1);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    for want in wants {
        assert!(lines[0].contains(want), "{want:?} not in {:?}", lines[0]);
    }
}

#[test]
fn every_bad_crop_input_is_one_clear_error_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = |p: &str| dir.path().join(p).display().to_string();
    let case = case();
    let classes = groupings_file(dir.path(), &case).display().to_string();
    let crop = write(dir.path(), "crop", &case, ZarrFormat::V2)
        .display()
        .to_string();
    std::fs::write(d("ids.json"), r#"[["mito", [3, 4]]]"#).unwrap();
    // A crop whose class_names is not a list.
    let bad_crop = write(dir.path(), "bad_crop", &case, ZarrFormat::V2);
    std::fs::write(
        bad_crop.join(".zattrs"),
        r#"{"cellmap": {"annotation": {"version": "0.1.1", "class_names": "mito_mem"}}}"#,
    )
    .unwrap();
    // A crop whose class has an encoding code that is not an integer.
    let bad_class = write(dir.path(), "bad_class", &case, ZarrFormat::V3);
    let meta_path = bad_class.join("mito_mem/zarr.json");
    let text = std::fs::read_to_string(&meta_path).unwrap();
    std::fs::write(
        &meta_path,
        text.replace("\"unknown\": 255", "\"unknown\": \"x\""),
    )
    .unwrap();
    // A label array, for the options that fit only crop groups.
    let labels = common::write_crop(
        &dir.path().join("labels.zarr"),
        &[4, 4],
        &[4, 4],
        LabelDtype::U8,
        ZarrFormat::V3,
        &[0, 1],
        json!([]),
        json!({}),
    )
    .display()
    .to_string();
    let out = d("out.zarr");
    let compute = |input: &str, g: &str, extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = ["compute", "--engine", "cpu", input, "--groupings", g]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.extend(["--out".to_string(), out.clone()]);
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let inspect = |input: &str, extra: &[&str]| -> Vec<String> {
        let mut a = vec!["inspect".to_string(), input.to_string()];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let ids = d("ids.json");
    let cases: Vec<(Vec<String>, Vec<&str>)> = vec![
        (
            compute(&crop, &ids, &[]),
            vec![
                &crop,
                "a CellMap crop group needs groupings by class name",
                "label ids",
            ],
        ),
        (
            inspect(&crop, &["--groupings", &ids]),
            vec![&crop, "needs groupings by class name"],
        ),
        (
            compute(&crop, &classes, &["--scale", "s3"]),
            vec!["mito_mem", "has no scale \"s3\" (its scales: s0)"],
        ),
        (
            compute(&bad_crop.display().to_string(), &classes, &[]),
            vec!["bad_crop", "class_names"],
        ),
        (
            inspect(&bad_crop.display().to_string(), &[]),
            vec!["bad_crop", "class_names"],
        ),
        (
            compute(&bad_class.display().to_string(), &classes, &[]),
            vec!["mito_mem", "unknown"],
        ),
        (
            compute(&crop, &classes, &["--policy", "per-voxel"]),
            vec![&crop, "--policy applies to label arrays only"],
        ),
        (
            compute(&crop, &classes, &["--background", "3"]),
            vec![&crop, "--background applies to label arrays only"],
        ),
        (
            inspect(&crop, &["--allow-missing-metadata"]),
            vec![
                &crop,
                "--allow-missing-metadata applies to label arrays only",
            ],
        ),
        (
            compute(&labels, &ids, &["--scale", "s1"]),
            vec![&labels, "--scale s1 applies to CellMap crop groups only"],
        ),
        (
            inspect(&labels, &["--scale", "s0"]),
            vec![&labels, "--scale s0 applies to CellMap crop groups only"],
        ),
        (
            compute(&labels, &classes, &[]),
            vec![
                &labels,
                "a label array needs groupings by label id",
                "class names",
            ],
        ),
        (
            compute(&crop, &classes, &["--roi=0,0,0:64,64,64"]),
            vec![&crop, "is not inside the array"],
        ),
    ];
    for (args, wants) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails(&args, wants);
        assert!(!Path::new(&out).exists(), "{args:?} wrote {out}");
    }
}

/// Hostile crop groups (issue 12): a root `zarr.json` cut short, a zarr group without
/// `cellmap` attributes, a scale the multiscales list but whose array is gone, and metadata
/// files that are FIFOs (which must not block the run) are each one `error:` line naming the
/// file, group or array at fault.
#[test]
fn broken_crop_groups_are_named_for_what_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let case = case();
    let classes = groupings_file(dir.path(), &case).display().to_string();
    let out = dir.path().join("out.zarr").display().to_string();
    let run = |verb: &str, input: &Path, wants: &[&str]| {
        let input = input.display().to_string();
        let args: Vec<&str> = match verb {
            "compute" => vec![
                "compute",
                "--engine",
                "cpu",
                &input,
                "--groupings",
                &classes,
                "--out",
                &out,
            ],
            _ => vec!["inspect", &input],
        };
        fails(&args, wants);
        assert!(!Path::new(&out).exists(), "{args:?} wrote {out}");
    };

    // The crop group's own zarr.json, cut short.
    let cut = write(dir.path(), "cut", &case, ZarrFormat::V3);
    let meta = cut.join("zarr.json");
    let text = std::fs::read_to_string(&meta).unwrap();
    std::fs::write(&meta, &text[..text.len() / 2]).unwrap();
    let want = format!(
        "error: {}: zarr metadata is truncated or not valid JSON (",
        meta.display()
    );
    run("compute", &cut, &[&want]);
    run("inspect", &cut, &[&want]);

    // A v2 and a v3 group without `cellmap` attributes (the crop's, replaced).
    for format in [ZarrFormat::V2, ZarrFormat::V3] {
        let plain = write(
            dir.path(),
            &format!("plain{}", format.number()),
            &case,
            format,
        );
        match format {
            ZarrFormat::V2 => std::fs::write(plain.join(".zattrs"), "{}").unwrap(),
            ZarrFormat::V3 => std::fs::write(
                plain.join("zarr.json"),
                r#"{"zarr_format": 3, "node_type": "group", "attributes": {"note": 1}}"#,
            )
            .unwrap(),
        }
        let want = format!(
            "error: {}: a zarr group without CellMap crop-group attributes (cellmap.annotation)",
            plain.display()
        );
        run(
            "compute",
            &plain,
            &[&want, "neither a crop group nor a label array"],
        );
        run("inspect", &plain, &[&want]);
    }

    // A scale its class lists, with the array gone.
    let gone = write(dir.path(), "gone", &case, ZarrFormat::V2);
    std::fs::remove_dir_all(gone.join("mito_lum/s0")).unwrap();
    let want = format!(
        "error: {}: class \"mito_lum\": scale \"s0\" is listed in its multiscales but its array \
         {} is missing",
        gone.join("mito_lum").display(),
        gone.join("mito_lum/s0").display()
    );
    run("compute", &gone, &[&want]);

    // FIFOs in place of the crop's and a class's metadata: refused at once, never read.
    for (name, file) in [("fifo_root", "zarr.json"), ("fifo_class", "nuc/zarr.json")] {
        let crop = write(dir.path(), name, &case, ZarrFormat::V3);
        let fifo = crop.join(file);
        std::fs::remove_file(&fifo).unwrap();
        let c_path = std::ffi::CString::new(fifo.display().to_string()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) }, 0);
        for verb in ["compute", "inspect"] {
            let input = crop.display().to_string();
            let mut cmd = annomask();
            match verb {
                "compute" => cmd
                    .args(["compute", "--engine", "cpu", &input, "--groupings"])
                    .args([&classes, "--out", &out]),
                _ => cmd.args(["inspect", &input]),
            };
            let assert = cmd.timeout(Duration::from_secs(60)).assert().code(1);
            let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
            let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
            assert_eq!(lines.len(), 1, "{verb} {name}: {stderr}");
            assert!(
                lines[0].starts_with(&format!("error: {}: is not a regular file", fifo.display())),
                "{verb} {name}: {stderr}"
            );
            assert!(!Path::new(&out).exists());
        }
    }
}
