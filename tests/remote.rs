//! Object stores, for real: a local S3-compatible server (moto, started by the tests; required
//! under `REQUIRE_S3=1`, skipped with a note elsewhere) and a static HTTP server (Python's
//! `http.server`). `compute` s3 -> s3 and s3 -> local equal local -> local; globs over keys;
//! kill -9 then `--resume` on S3 byte-identical; three concurrent shards to one S3 output;
//! `inspect`; `demo --out s3://`; N5 on S3; the feeder over S3 crops; HTTP read-only; each
//! error one line.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use annomask::remote::{self, StoreOptions, StoreUrl};
use annomask::{LabelDtype, ZarrFormat};
use common::s3::S3Server;
use common::{files, labels_attr, write_crop};
use serde_json::Value;
use zarrs::storage::{ListableStorageTraits, ReadableStorageTraits, StorePrefix};

const GROUPINGS: &str = r#"[["a", [1, 2]], ["b", [3]], ["c", [5, 200]], ["fg", []]]"#;

/// The server every test of this binary shares (spawned from a thread that lives as long as
/// the process, so the child's parent-death signal fires only when the test binary exits).
fn server() -> Option<&'static S3Server> {
    static SERVER: OnceLock<Option<S3Server>> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                tx.send(S3Server::start()).unwrap();
                loop {
                    std::thread::park();
                }
            });
            let server = rx.recv().unwrap();
            if let Some(s) = &server {
                s.export_env();
            }
            server
        })
        .as_ref()
}

/// A bucket of this test's own.
fn bucket(server: &S3Server, name: &str) -> String {
    server.create_bucket(name);
    format!("s3://{name}")
}

fn crop(dir: &Path, shape: &[u64], chunks: &[u64]) -> (PathBuf, PathBuf) {
    let labels = write_crop(
        &dir.join("crop.zarr/labels"),
        shape,
        chunks,
        LabelDtype::U32,
        ZarrFormat::V3,
        &[0, 0, 1, 2, 3, 5, 200],
        labels_attr(&[(1, 0, 0), (2, 1, 2), (3, 0, 1), (5, 2, 0), (200, 1, 1)]),
        serde_json::json!({"voxel_size": [8, 8, 8]}),
    );
    let groupings = dir.join("g.json");
    std::fs::write(&groupings, GROUPINGS).unwrap();
    (labels, groupings)
}

/// A crop of `shape` written locally and uploaded to `s3://<bucket>/crop.zarr`.
struct Staged {
    dir: tempfile::TempDir,
    /// `s3://<bucket>`.
    b: String,
    labels: PathBuf,
    groupings: PathBuf,
    /// `s3://<bucket>/crop.zarr/labels`.
    input: String,
}

fn staged(server: &S3Server, bucket_name: &str, shape: &[u64], chunks: &[u64]) -> Staged {
    let b = bucket(server, bucket_name);
    let dir = tempfile::tempdir().unwrap();
    let (labels, groupings) = crop(dir.path(), shape, chunks);
    upload(&dir.path().join("crop.zarr"), &format!("{b}/crop.zarr"));
    let input = format!("{b}/crop.zarr/labels");
    Staged {
        dir,
        b,
        labels,
        groupings,
        input,
    }
}

fn upload(dir: &Path, url: &str) {
    remote::upload(
        dir,
        &StoreUrl::parse(url).unwrap().unwrap(),
        StoreOptions::default(),
    )
    .unwrap();
}

fn annomask(server: &S3Server) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_annomask"));
    cmd.envs(server.env())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn compute(server: &S3Server, input: &str, groupings: &Path, out: &str, extra: &[&str]) -> Command {
    let mut cmd = annomask(server);
    cmd.args([
        "compute",
        "--engine",
        "cpu",
        "--quiet",
        input,
        "--out",
        out,
        "--groupings",
    ])
    .arg(groupings)
    .args(extra);
    cmd
}

fn run_ok(mut cmd: Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run_err(mut cmd: Command) -> String {
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "expected a failure");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every object under `url`, by key relative to it.
fn objects(url: &str) -> BTreeMap<String, Vec<u8>> {
    let url = StoreUrl::parse(url).unwrap().unwrap();
    let store = remote::open(&url, StoreOptions::default()).unwrap();
    store
        .list_prefix(&StorePrefix::root())
        .unwrap()
        .into_iter()
        .map(|k| {
            (
                k.as_str().to_string(),
                store.get(&k).unwrap().unwrap().to_vec(),
            )
        })
        .collect()
}

/// Output files with the `input` attribute (where the input was) taken out of the metadata.
fn comparable(mut out: BTreeMap<String, Vec<u8>>) -> BTreeMap<String, Vec<u8>> {
    for (name, bytes) in out.iter_mut() {
        if name.ends_with("zarr.json") || name.ends_with(".zattrs") {
            let mut v: Value = serde_json::from_slice(bytes).unwrap();
            if let Some(a) = v.get_mut("attributes").and_then(Value::as_object_mut) {
                a.remove("input");
            }
            if let Some(a) = v.as_object_mut() {
                a.remove("input");
            }
            *bytes = serde_json::to_vec(&v).unwrap();
        }
    }
    out
}

#[test]
fn compute_on_s3_equals_local() {
    let Some(server) = server() else { return };
    let Staged {
        dir,
        b,
        labels,
        groupings,
        input,
    } = staged(server, "compute-equal", &[40, 36, 20], &[16, 16, 16]);
    let local = dir.path().join("local.zarr");
    run_ok(compute(
        server,
        labels.to_str().unwrap(),
        &groupings,
        local.to_str().unwrap(),
        &[],
    ));
    let want = comparable(files(&local));
    assert!(want.len() > 5);

    run_ok(compute(
        server,
        &input,
        &groupings,
        &format!("{b}/out/mask.zarr"),
        &[],
    ));
    assert_eq!(
        comparable(objects(&format!("{b}/out/mask.zarr"))),
        want,
        "s3 -> s3"
    );
    let input_attr: Value =
        serde_json::from_slice(&objects(&format!("{b}/out/mask.zarr"))["zarr.json"]).unwrap();
    assert_eq!(
        input_attr["attributes"]["input"],
        Value::from(input.clone())
    );

    let from_s3 = dir.path().join("from_s3.zarr");
    run_ok(compute(
        server,
        &input,
        &groupings,
        from_s3.to_str().unwrap(),
        &[],
    ));
    assert_eq!(comparable(files(&from_s3)), want, "s3 -> local");

    let to_s3 = format!("{b}/out/from_local.zarr");
    run_ok(compute(
        server,
        labels.to_str().unwrap(),
        &groupings,
        &to_s3,
        &[],
    ));
    assert_eq!(comparable(objects(&to_s3)), want, "local -> s3");

    // A second run over a complete output: refused without --resume? No: metadata equal is
    // accepted; --resume skips every block.
    let again = run_ok(compute(
        server,
        &input,
        &groupings,
        &format!("{b}/out/mask.zarr"),
        &["--resume"],
    ));
    assert!(again.is_empty());
    // inspect reads the same from S3 as from the local copy (names aside).
    let mut inspect = annomask(server);
    inspect.args(["inspect", "--json", &input]);
    let remote_report: Value = serde_json::from_str(&run_ok(inspect)).unwrap();
    let mut inspect = annomask(server);
    inspect.args(["inspect", "--json"]).arg(&labels);
    let local_report: Value = serde_json::from_str(&run_ok(inspect)).unwrap();
    for key in ["shape", "chunks", "dtype", "missing_ids", "voxel_size"] {
        assert_eq!(
            remote_report.get(key),
            local_report.get(key),
            "inspect {key}"
        );
    }
}

#[test]
fn globs_list_keys_and_templates_name_outputs() {
    let Some(server) = server() else { return };
    let b = bucket(server, "globs");
    let dir = tempfile::tempdir().unwrap();
    let mut wants = Vec::new();
    for (name, size) in [("a", 20), ("b", 24)] {
        let sub = dir.path().join(name);
        let (labels, groupings) = crop(&sub, &[size, 16, 16], &[8, 8, 8]);
        upload(&sub.join("crop.zarr"), &format!("{b}/data/{name}.zarr"));
        let local = sub.join("mask.zarr");
        run_ok(compute(
            server,
            labels.to_str().unwrap(),
            &groupings,
            local.to_str().unwrap(),
            &[],
        ));
        wants.push((name, comparable(files(&local))));
    }
    // Not matched: a key beside the crops that is no crop.
    upload(
        &dir.path().join("a/crop.zarr"),
        &format!("{b}/other/x.zarr"),
    );
    let groupings = dir.path().join("a/g.json");
    run_ok(compute(
        server,
        &format!("{b}/data/*.zarr/labels"),
        &groupings,
        &format!("{b}/out/{{name}}_mask.zarr"),
        &[],
    ));
    for (name, want) in wants {
        assert_eq!(
            comparable(objects(&format!("{b}/out/{name}_mask.zarr"))),
            want,
            "{name}"
        );
    }
    let err = run_err(compute(
        server,
        &format!("{b}/nothing/*.zarr"),
        &groupings,
        "/tmp/x",
        &[],
    ));
    assert!(err.contains("matches nothing"), "{err}");
}

#[test]
fn killed_then_resumed_on_s3_is_byte_identical() {
    let Some(server) = server() else { return };
    let Staged {
        b,
        groupings,
        input,
        dir: _dir,
        ..
    } = staged(server, "resume", &[96, 64, 64], &[8, 16, 16]);
    let whole = format!("{b}/whole.zarr");
    run_ok(compute(server, &input, &groupings, &whole, &[]));
    let reference = objects(&whole);
    let total = reference.len() - 1; // zarr.json
    assert_eq!(total, 12 * 4 * 4);

    let out = format!("{b}/killed.zarr");
    let mut child = compute(
        server,
        &input,
        &groupings,
        &out,
        &["--readers", "1", "--writers", "1", "--threads", "1"],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let start = Instant::now();
    while objects(&out).len() < 10 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "compute ended before it could be killed"
        );
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no chunks appeared"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let written = objects(&out).len() - 1;
    assert!(
        written < total,
        "the kill interrupted the run: {written} of {total}"
    );
    eprintln!("killed after {written} of {total} chunks");
    run_ok(compute(server, &input, &groupings, &out, &["--resume"]));
    assert_eq!(
        objects(&out),
        reference,
        "resumed == uninterrupted, byte for byte"
    );
}

#[test]
fn three_concurrent_shards_write_one_s3_output() {
    let Some(server) = server() else { return };
    let Staged {
        b,
        groupings,
        input,
        dir: _dir,
        ..
    } = staged(server, "shards", &[48, 32, 32], &[8, 16, 16]);
    let whole = format!("{b}/whole.zarr");
    run_ok(compute(server, &input, &groupings, &whole, &[]));
    let out = format!("{b}/sharded.zarr");
    let children: Vec<_> = (0..3)
        .map(|i| {
            compute(
                server,
                &input,
                &groupings,
                &out,
                &["--shard", &format!("{i}/3")],
            )
            .spawn()
            .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert_eq!(objects(&out), objects(&whole));
}

#[test]
fn n5_on_s3_equals_zarr() {
    let Some(server) = server() else { return };
    let b = bucket(server, "n5-data");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/n5");
    upload(&fixtures.join("labels_z5.n5"), &format!("{b}/labels_z5.n5"));
    let dir = tempfile::tempdir().unwrap();
    let groupings = dir.path().join("g.json");
    std::fs::write(
        &groupings,
        r#"[["a", [1, 2]], ["b", [3]], ["c", [7]], ["d", [255]]]"#,
    )
    .unwrap();
    let zarr = dir.path().join("zarr.zarr");
    let twin = fixtures.join("labels.zarr/u64_gzip");
    run_ok(compute(
        server,
        twin.to_str().unwrap(),
        &groupings,
        zarr.to_str().unwrap(),
        &["--zarr-format", "3"],
    ));
    let out = format!("{b}/mask.zarr");
    run_ok(compute(
        server,
        &format!("{b}/labels_z5.n5/u64_gzip"),
        &groupings,
        &out,
        &[],
    ));
    assert_eq!(comparable(objects(&out)), comparable(files(&zarr)));
}

#[test]
fn feeder_and_mask_over_s3_equal_local() {
    let Some(server) = server() else { return };
    let b = bucket(server, "feeder");
    let dir = tempfile::tempdir().unwrap();
    let crop_path = annomask::synth::write_demo_crop(dir.path(), 32, ZarrFormat::V2).unwrap();
    upload(
        &dir.path().join("demo_crop.zarr"),
        &format!("{b}/demo_crop.zarr"),
    );
    let url = format!("{b}/demo_crop.zarr/labels");
    let options = annomask::MaskOptions::default().engine(annomask::EngineChoice::Cpu);
    let local = annomask::MissingAnnotationsMask::open(
        &crop_path,
        annomask::synth::demo_groupings(),
        options,
    )
    .unwrap();
    let remote =
        annomask::MissingAnnotationsMask::open(&url, annomask::synth::demo_groupings(), options)
            .unwrap();
    assert_eq!(
        remote.get(&remote.roi()).unwrap(),
        local.get(&local.roi()).unwrap()
    );

    let shape = [16u64, 16, 16];
    let feed = |mask: annomask::MissingAnnotationsMask| {
        let config = annomask::feeder::FeederConfig::new(shape.to_vec())
            .seed(7)
            .batches(6);
        annomask::feeder::Feeder::new(vec![Arc::new(mask)], config)
            .unwrap()
            .map(|b| b.unwrap())
            .collect::<Vec<_>>()
    };
    let a = feed(local);
    let b = feed(remote);
    assert_eq!(a.len(), 6);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.mask, y.mask);
        assert_eq!(x.targets, y.targets);
    }
}

#[test]
fn http_is_read_only_and_reads_like_local() {
    let Some(server) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (labels, groupings) = crop(dir.path(), &[20, 16, 16], &[8, 8, 8]);
    let port = common::s3::free_port();
    let mut http = Command::new("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "http.server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let local = dir.path().join("local.zarr");
    run_ok(compute(
        server,
        labels.to_str().unwrap(),
        &groupings,
        local.to_str().unwrap(),
        &[],
    ));
    let url = format!("http://127.0.0.1:{port}/crop.zarr/labels");
    let out = dir.path().join("from_http.zarr");
    let result = compute(server, &url, &groupings, out.to_str().unwrap(), &[])
        .output()
        .unwrap();
    let refused = compute(
        server,
        labels.to_str().unwrap(),
        &groupings,
        &format!("http://127.0.0.1:{port}/out.zarr"),
        &[],
    )
    .output()
    .unwrap();
    let _ = http.kill();
    let _ = http.wait();
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert_eq!(comparable(files(&out)), comparable(files(&local)));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains("read-only"),
        "{err}"
    );
}

#[test]
fn every_remote_error_is_one_line() {
    let Some(server) = server() else { return };
    let Staged {
        dir, b, groupings, ..
    } = staged(server, "errors", &[8, 8, 8], &[8, 8, 8]);
    let one_line = |err: &str, wants: &[&str]| {
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "one line: {err}");
        for w in wants {
            assert!(err.contains(w), "{w:?} in {err}");
        }
    };
    let out = dir.path().join("o.zarr");
    let out = out.to_str().unwrap();
    one_line(
        &run_err(compute(
            server,
            "s3://no-such-bucket/x/labels",
            &groupings,
            out,
            &[],
        )),
        &["s3://no-such-bucket/x/labels", "no such bucket"],
    );
    one_line(
        &run_err(compute(
            server,
            &format!("{b}/crop.zarr/nothing"),
            &groupings,
            out,
            &[],
        )),
        &[
            &format!("{b}/crop.zarr/nothing"),
            "no such file or directory",
        ],
    );
    one_line(
        &run_err(compute(server, "s3:///labels", &groupings, out, &[])),
        &["s3:///labels", "no bucket"],
    );
    one_line(
        &run_err(compute(server, "ftp://host/labels", &groupings, out, &[])),
        &["ftp://host/labels", "not supported"],
    );
    // Nothing listening.
    let mut cmd = compute(server, "s3://b/labels", &groupings, out, &[]);
    cmd.env(
        "AWS_ENDPOINT_URL",
        format!("http://127.0.0.1:{}", common::s3::free_port()),
    );
    one_line(&run_err(cmd), &["s3://b/labels", "cannot connect"]);
    // A server that checks credentials: ours are refused, and anonymous requests denied.
    let Some(strict) = S3Server::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")]) else {
        return;
    };
    let mut cmd = compute(
        server,
        "s3://private/crop.zarr/labels",
        &groupings,
        out,
        &[],
    );
    cmd.envs(strict.env());
    one_line(
        &run_err(cmd),
        &["s3://private/crop.zarr/labels", "credentials refused"],
    );
    let mut cmd = compute(
        server,
        "s3://private/crop.zarr/labels",
        &groupings,
        out,
        &["--anonymous"],
    );
    cmd.envs(strict.env());
    let err = run_err(cmd);
    // (moto answers unsigned requests under auth with HTTP 500; S3 itself with 403.)
    one_line(&err, &["s3://private/crop.zarr/labels", "(HTTP "]);
}

#[test]
fn demo_writes_its_crop_and_mask_to_s3() {
    let Some(server) = server() else { return };
    let b = bucket(server, "demo-out");
    let mut demo = annomask(server);
    demo.args([
        "demo",
        "--engine",
        "cpu",
        "--size",
        "16",
        "--out",
        &format!("{b}/d"),
    ]);
    let stdout = run_ok(demo);
    assert!(
        stdout.contains("uploaded") && stdout.contains(&format!("{b}/d/demo_mask.zarr")),
        "{stdout}"
    );
    let crop = objects(&format!("{b}/d/demo_crop.zarr"));
    assert!(crop.contains_key("labels/zarr.json"), "{:?}", crop.keys());
    let mask = objects(&format!("{b}/d/demo_mask.zarr"));
    assert!(
        mask.contains_key("zarr.json") && mask.len() > 1,
        "{:?}",
        mask.keys()
    );
}
