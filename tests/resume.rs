//! Process-level guarantees of SPEC 6: a `compute` killed with SIGKILL and resumed leaves the
//! bytes of an uninterrupted run; three shard processes writing one output at the same time
//! leave the bytes of a single run.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use annomask::{LabelDtype, ZarrFormat};
use common::{files, labels_attr, write_crop};

const GROUPINGS: &str = r#"[["a", [1, 2]], ["b", [3]], ["c", [5, 200]], ["fg", []]]"#;

fn setup(dir: &Path, format: ZarrFormat) -> (PathBuf, PathBuf) {
    let labels = write_crop(
        &dir.join("crop.zarr/labels"),
        &[160, 128, 128],
        &[16, 16, 16],
        LabelDtype::U32,
        format,
        &[0, 0, 1, 2, 3, 5, 200],
        labels_attr(&[(1, 0, 0), (2, 1, 2), (3, 0, 1), (5, 2, 0), (200, 1, 1)]),
        serde_json::json!({"voxel_size": [8, 8, 8]}),
    );
    let groupings = dir.join("g.json");
    std::fs::write(&groupings, GROUPINGS).unwrap();
    (labels, groupings)
}

fn compute(labels: &Path, groupings: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_annomask"));
    cmd.args(["compute", "--engine", "cpu", "--quiet"])
        .arg(labels)
        .arg("--groupings")
        .arg(groupings)
        .arg("--out")
        .arg(out)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

fn run_ok(mut cmd: Command) {
    let output = cmd.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Chunk files under `out` (not metadata, not temporary), counted by name only: files may
/// appear and vanish (temporaries renamed) while a run is writing.
fn chunk_files(out: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(out) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                chunk_files(&path)
            } else {
                usize::from(name.parse::<u64>().is_ok())
            }
        })
        .sum()
}

#[test]
fn killed_then_resumed_equals_uninterrupted() {
    let dir = tempfile::tempdir().unwrap();
    let (labels, groupings) = setup(dir.path(), ZarrFormat::V3);
    let whole = dir.path().join("whole.zarr");
    run_ok(compute(&labels, &groupings, &whole, &[]));
    let reference = files(&whole);
    let total = chunk_files(&whole);
    assert_eq!(total, 10 * 8 * 8);

    let out = dir.path().join("killed.zarr");
    let mut child = compute(
        &labels,
        &groupings,
        &out,
        &["--threads", "1", "--queue-depth", "1"],
    )
    .spawn()
    .unwrap();
    let start = Instant::now();
    while chunk_files(&out) < 20 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "compute ended before it could be killed"
        );
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no chunks appeared"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed, not finished");
    let written = chunk_files(&out);
    assert!(
        (20..total).contains(&written),
        "the kill interrupted the run: {written} of {total} chunks"
    );

    let temporaries = files(&out)
        .keys()
        .filter(|k| annomask::store::is_temporary(k))
        .count();
    eprintln!("killed after {written} of {total} chunks, {temporaries} temporary file(s) left");

    // The resumed run writes from its readers (no writer threads): same bytes either way.
    run_ok(compute(
        &labels,
        &groupings,
        &out,
        &["--resume", "--writers", "0"],
    ));
    let resumed = files(&out);
    assert_eq!(
        resumed.keys().collect::<Vec<_>>(),
        reference.keys().collect::<Vec<_>>(),
        "same files, no temporaries left"
    );
    for (name, bytes) in &reference {
        assert!(resumed[name] == *bytes, "{name} differs");
    }
}

#[test]
fn three_concurrent_shards_equal_one_run() {
    let dir = tempfile::tempdir().unwrap();
    for format in [ZarrFormat::V2, ZarrFormat::V3] {
        let sub = dir.path().join(format!("v{}", format.number()));
        let (labels, groupings) = setup(&sub, format);
        let whole = sub.join("whole.zarr");
        run_ok(compute(&labels, &groupings, &whole, &[]));
        let reference = files(&whole);
        // The three processes start together, so they also race to create the metadata. Each
        // writes with another number of writer threads (0: from its readers).
        let out = sub.join("sharded.zarr");
        let children: Vec<_> = (0..3)
            .map(|i| {
                let (shard, writers) = (format!("{i}/3"), i.to_string());
                compute(
                    &labels,
                    &groupings,
                    &out,
                    &["--shard", &shard, "--writers", &writers],
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
        let sharded = files(&out);
        assert_eq!(
            sharded.keys().collect::<Vec<_>>(),
            reference.keys().collect::<Vec<_>>()
        );
        for (name, bytes) in &reference {
            assert!(sharded[name] == *bytes, "{name} differs");
        }
    }
}
