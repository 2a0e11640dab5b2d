//! Regression tests for the defects a hostile-input run found (issue 12): each fails on the code
//! before its fix. Hangs are caught by timeouts, aborts by an address-space limit.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use annomask::output::{MaskOutput, OutputOptions};
use annomask::pipeline::{self, RunOptions};
use annomask::synth::{synth_labels, write_labels};
use annomask::zarr_array::{ArraySpec, Compression, create_array};
use annomask::{EngineChoice, LabelDtype, MaskOptions, MissingAnnotationsMask, ZarrFormat};
use serde_json::{Map, Value, json};

fn meta() -> Map<String, Value> {
    json!({
        "labels": [
            {"value": 1, "annotationState": {"present": true, "annotated": true}},
            {"value": 2, "annotationState": {"present": true, "annotated": false}},
            {"value": 3, "annotationState": {"present": true, "annotated": true}},
        ],
        "voxel_size": [1, 1, 1],
    })
    .as_object()
    .unwrap()
    .clone()
}

fn groupings(dir: &Path) -> PathBuf {
    let path = dir.join("groupings.json");
    std::fs::write(&path, r#"[["a", [1]], ["b", [2, 3]], ["all", []]]"#).unwrap();
    path
}

/// A `shape` u64 label array with `chunks`, written with `compression`.
fn labels(dir: &Path, name: &str, shape: &[usize], chunks: &[u64], c: Compression) -> PathBuf {
    let path = dir.join(name);
    let data = synth_labels(shape, LabelDtype::U64, &[0, 1, 2, 3], 7);
    write_labels(&path, &data, chunks, ZarrFormat::V2, c, meta()).unwrap();
    path
}

/// The result of one run of the binary.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn error_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .collect()
    }

    /// Exit 1 with exactly one `error:` line containing every one of `needles`.
    fn fails_with(&self, needles: &[&str]) {
        assert_eq!(self.code, Some(1), "stderr: {}", self.stderr);
        let lines = self.error_lines();
        assert_eq!(lines.len(), 1, "one error line: {}", self.stderr);
        for n in needles {
            assert!(lines[0].contains(n), "{n:?} not in {:?}", lines[0]);
        }
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
    }

    fn succeeds(&self) {
        assert_eq!(self.code, Some(0), "stderr: {}", self.stderr);
        assert!(self.error_lines().is_empty(), "{}", self.stderr);
    }
}

/// Runs `annomask args...` with a timeout and an address-space limit (bytes).
fn run_limited(
    args: &[impl AsRef<std::ffi::OsStr>],
    env: &[(&str, Option<&str>)],
    timeout: Duration,
    limit: u64,
) -> Ran {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_annomask"));
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            libc::setrlimit(libc::RLIMIT_AS, &lim);
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > timeout {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "annomask {:?} hung (killed after {timeout:?}); stderr: {}",
                args.iter()
                    .map(|a| a.as_ref().to_string_lossy().into_owned())
                    .collect::<Vec<_>>(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn run(args: &[impl AsRef<std::ffi::OsStr>]) -> Ran {
    run_limited(args, &[], Duration::from_secs(120), 8 << 30)
}

/// `compute --engine cpu --quiet CROP --groupings G --out OUT EXTRA...`.
fn cpu_compute(crop: &Path, groupings: &Path, out: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "compute",
        "--engine",
        "cpu",
        "--quiet",
        s(crop),
        "--groupings",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    args.extend([s(groupings).to_string(), "--out".into(), out.to_string()]);
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every file under `dir` and its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file() {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            } else {
                out.insert(p.clone(), b"(special)".to_vec());
            }
        }
    }
    out
}

// 1. A panic in any pipeline thread ends the run with an error: never a hang.

#[test]
fn a_panic_in_a_writer_or_reader_thread_is_the_runs_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let crop = labels(
        dir.path(),
        "l.zarr",
        &[16, 16, 16],
        &[4, 4, 4],
        Compression::Raw,
    );
    let g = annomask::Groupings::new([("a", vec![1]), ("b", vec![2])]).unwrap();
    let mask =
        MissingAnnotationsMask::open(&crop, g, MaskOptions::default().engine(EngineChoice::Cpu))
            .unwrap();
    // The progress callback runs in the thread that wrote the block: a writer thread, or a
    // reader thread with no writers. It panics on its third call (the first is the start).
    for writers in [2, 1, 0] {
        let out = MaskOutput::new(
            dir.path().join(format!("m{writers}.zarr")),
            &mask,
            None,
            &OutputOptions::default(),
        )
        .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let calls = Mutex::new(0);
                let options = RunOptions {
                    writers,
                    queue_depth: 1,
                    ..RunOptions::default()
                };
                let result = pipeline::run(&mask, &out, &options, &|_| {
                    let mut n = calls.lock().unwrap_or_else(|e| e.into_inner());
                    *n += 1;
                    if *n == 3 {
                        panic!("injected failure");
                    }
                });
                tx.send(result.map(|_| ()).map_err(|e| e.to_string()))
                    .unwrap();
            });
            let result = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("the run hung after a thread panicked");
            let err = result.unwrap_err();
            assert!(
                err.contains("internal error") && err.contains("injected failure"),
                "{err}"
            );
        });
    }
}

// 2. Every chunk read, whole or partial, is checked; the error names the chunk.

#[test]
fn a_corrupt_chunk_read_in_part_is_an_error_naming_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let g = groupings(dir.path());
    // 12^3 in 8^3 chunks: the chunks at the far end are edge chunks.
    for (name, corrupt) in [
        ("short", vec![0u8; 1024]), // 8^3 u16-sized bytes in a u64 chunk
        ("long", vec![1u8; 8 * 8 * 8 * 8 + 5]), // too long
        ("random", (0..777u32).map(|i| (i * 31) as u8).collect()),
    ] {
        let crop = labels(
            dir.path(),
            name,
            &[12, 12, 12],
            &[8, 8, 8],
            Compression::Raw,
        );
        std::fs::write(crop.join("1/1/1"), &corrupt).unwrap();
        let before = snapshot(&crop);
        for chunks in ["4,4,4", "6,6,6", "12,12,12"] {
            let out = dir.path().join(format!("{name}{chunks}.zarr"));
            let ran = run(&cpu_compute(&crop, &g, s(&out), &["--chunks", chunks]));
            ran.fails_with(&["chunk 1/1/1", s(&crop)]);
        }
        assert_eq!(snapshot(&crop), before, "the input is unchanged");
        // The library API, across chunk borders.
        let mask = MissingAnnotationsMask::open(
            &crop,
            annomask::Groupings::new([("a", vec![1])]).unwrap(),
            MaskOptions::default().engine(EngineChoice::Cpu),
        )
        .unwrap();
        let roi = annomask::Roi::new(vec![6.0; 3], vec![4.0; 3]);
        let err = mask.get(&roi).unwrap_err().to_string();
        assert!(err.contains("chunk 1/1/1"), "{err}");
    }
}

// 3. --chunks clipped to the array, and refused beyond the memory budget.

#[test]
fn output_chunks_are_clipped_and_held_to_the_memory_budget() {
    let dir = tempfile::tempdir().unwrap();
    let g = groupings(dir.path());
    let crop = labels(
        dir.path(),
        "l.zarr",
        &[32, 32, 32],
        &[8, 8, 8],
        Compression::BloscLz4,
    );
    for chunks in ["512,512,512", "9223372036854775808,8,8", "4096,4096,4096"] {
        let out = dir.path().join(format!("c{}.zarr", chunks.len()));
        run(&cpu_compute(&crop, &g, s(&out), &["--chunks", chunks])).succeeds();
        let zarray: Value =
            serde_json::from_slice(&std::fs::read(out.join(".zarray")).unwrap()).unwrap();
        let first: u64 = chunks.split(',').next().unwrap().parse().unwrap();
        assert_eq!(zarray["chunks"][1], json!(first.min(32)), "{chunks}");
        let size: u64 = walk_size(&out);
        assert!(size < 1 << 20, "{chunks}: {size} bytes written");
    }
    let out = dir.path().join("budget.zarr");
    run(&cpu_compute(
        &crop,
        &g,
        s(&out),
        &["--chunks", "32,32,32", "--memory-budget", "1MiB"],
    ))
    .fails_with(&["memory budget of 1 MiB", "--memory-budget"]);
    assert!(!out.exists(), "nothing written");
}

fn walk_size(dir: &Path) -> u64 {
    snapshot(dir).values().map(|v| v.len() as u64).sum()
}

/// An array of `shape` with `chunks` and no chunk stored (fill value 0).
fn empty_array(dir: &Path, name: &str, shape: Vec<u64>, chunks: Vec<u64>, dtype: &str) -> PathBuf {
    let path = dir.join(name);
    let mut spec = ArraySpec::new(shape, chunks, dtype, ZarrFormat::V3);
    spec.attributes = meta();
    create_array(&path, &spec).unwrap();
    path
}

// 4. Shapes, chunks and block counts: checked arithmetic, one-line refusals.

#[test]
fn block_counts_that_overflow_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let g = groupings(dir.path());
    for (shape, chunks) in [
        (vec![1u64 << 40, 1 << 40, 8], vec![4u64, 4, 8]),
        (vec![(1 << 62) + 1, 4, 8], vec![4, 4, 8]),
    ] {
        let crop = empty_array(
            dir.path(),
            &format!("{}.zarr", shape[0]),
            shape,
            chunks,
            "uint8",
        );
        let out = dir.path().join("o.zarr");
        run(&cpu_compute(&crop, &g, s(&out), &[])).fails_with(&["2^64"]);
        assert!(!out.exists());
    }
}

// 5. Huge inputs stream (lazy blocks) or are refused with the reason.

#[test]
fn a_huge_grid_starts_writing_at_once_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let g = groupings(dir.path());
    // 2^32 blocks: listing them would take 32 GiB.
    let crop = empty_array(
        dir.path(),
        "huge.zarr",
        vec![1 << 20, 1 << 20, 1 << 10],
        vec![64, 64, 64],
        "uint8",
    );
    let out = dir.path().join("o.zarr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_annomask"))
        .args([
            "compute",
            "--engine",
            "cpu",
            "--quiet",
            s(&crop),
            "--groupings",
            s(&g),
        ])
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let first_chunk = out.join("c/0/0/0/0");
    let mut rss_kib = 0;
    while !first_chunk.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no chunk written after 60 s"
        );
        assert!(child.try_wait().unwrap().is_none(), "the run ended");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    if let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", child.id())) {
        rss_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(rss_kib < 512 * 1024, "RSS {rss_kib} KiB");
}

#[test]
fn one_huge_chunk_is_read_in_parts_when_uncompressed_and_refused_when_compressed() {
    let dir = tempfile::tempdir().unwrap();
    let g = groupings(dir.path());
    // 96^3 u64 in one 6.75 MiB chunk; a 4 MiB budget reads whole chunks up to 1 MiB.
    let raw = labels(
        dir.path(),
        "raw.zarr",
        &[96, 96, 96],
        &[96, 96, 96],
        Compression::Raw,
    );
    let reference = dir.path().join("reference.zarr");
    run(&cpu_compute(
        &raw,
        &g,
        s(&reference),
        &["--chunks", "32,32,32"],
    ))
    .succeeds();
    let small = dir.path().join("small.zarr");
    run(&cpu_compute(
        &raw,
        &g,
        s(&small),
        &[
            "--chunks",
            "32,32,32",
            "--memory-budget",
            "4MiB",
            "--readers",
            "1",
            "--writers",
            "0",
        ],
    ))
    .succeeds();
    let strip = |m: BTreeMap<PathBuf, Vec<u8>>, root: &Path| -> BTreeMap<PathBuf, Vec<u8>> {
        m.into_iter()
            .filter(|(p, _)| !p.ends_with(".zattrs"))
            .map(|(p, b)| (p.strip_prefix(root).unwrap().to_path_buf(), b))
            .collect()
    };
    assert_eq!(
        strip(snapshot(&small), &small),
        strip(snapshot(&reference), &reference),
        "read in parts, the same mask"
    );
    // Without --chunks the default output chunks shrink to fit the budget.
    let default = dir.path().join("default.zarr");
    run(&cpu_compute(
        &raw,
        &g,
        s(&default),
        &["--memory-budget", "4MiB"],
    ))
    .succeeds();
    // A stored chunk of the wrong size is still caught when read in parts.
    std::fs::write(raw.join("0/0/0"), vec![0u8; 1000]).unwrap();
    run(&cpu_compute(
        &raw,
        &g,
        s(&dir.path().join("bad.zarr")),
        &["--chunks", "32,32,32", "--memory-budget", "4MiB"],
    ))
    .fails_with(&["chunk 0/0/0", "holds 1000 bytes"]);
    let packed = labels(
        dir.path(),
        "z.zarr",
        &[96, 96, 96],
        &[96, 96, 96],
        Compression::Zstd,
    );
    run(&cpu_compute(
        &packed,
        &g,
        s(&dir.path().join("z_out.zarr")),
        &["--chunks", "32,32,32", "--memory-budget", "4MiB"],
    ))
    .fails_with(&["chunk 0/0/0", "chunk limit of 1 MiB", "--memory-budget"]);
}

// 6. Decompression bombs fail before they take the memory.

fn gzip_bomb(bytes: u64) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..bytes >> 20 {
        gz.write_all(&zeros).unwrap();
    }
    gz.finish().unwrap()
}

#[test]
fn decompression_bombs_fail_within_an_address_space_limit() {
    let dir = tempfile::tempdir().unwrap();
    let g = groupings(dir.path());
    let bomb = gzip_bomb(2 << 30);
    let zbomb = zstd::bulk::compress(&vec![0u8; 1 << 30], 1).unwrap();
    for (compression, chunk) in [(Compression::Gzip, &bomb), (Compression::Zstd, &zbomb)] {
        let name = compression.name();
        let crop = labels(dir.path(), name, &[16, 16, 16], &[8, 8, 8], compression);
        std::fs::write(crop.join("0/0/0"), chunk).unwrap();
        let out = dir.path().join(format!("{name}_out.zarr"));
        let ran = run_limited(
            &cpu_compute(&crop, &g, s(&out), &[]),
            &[],
            Duration::from_secs(60),
            1 << 30,
        );
        ran.fails_with(&["chunk 0/0/0", s(&crop)]);
        assert!(!out.exists(), "{name}: nothing created");
    }
    // A blosc header that declares 2 GiB for an 4 KiB chunk.
    let crop = labels(
        dir.path(),
        "blosc",
        &[16, 16, 16],
        &[8, 8, 8],
        Compression::BloscLz4,
    );
    let mut chunk = std::fs::read(crop.join("0/0/0")).unwrap();
    chunk[4..8].copy_from_slice(&(i32::MAX as u32).to_le_bytes());
    std::fs::write(crop.join("0/0/0"), chunk).unwrap();
    run_limited(
        &cpu_compute(&crop, &g, s(&dir.path().join("blosc_out.zarr")), &[]),
        &[],
        Duration::from_secs(60),
        1 << 30,
    )
    .fails_with(&["chunk 0/0/0"]);
}

// 9. A live writer's temporary files are never removed.

#[test]
fn a_live_writers_temporaries_survive_another_run_of_the_same_shard() {
    let dir = tempfile::tempdir().unwrap();
    let g = groupings(dir.path());
    let crop = labels(
        dir.path(),
        "l.zarr",
        &[16, 16, 16],
        &[8, 8, 8],
        Compression::Raw,
    );
    let out = dir.path().join("o.zarr");
    run(&cpu_compute(&crop, &g, s(&out), &[])).succeeds();
    // A temporary of this (live) test process, as a concurrent run would have one; and one of a
    // dead process on this machine.
    let live = out.join(format!("0/0/0/0.tmp-{}-0-1", std::process::id()));
    std::fs::write(&live, b"being written").unwrap();
    let dead = out.join("0/0/0/1.tmp-4194304999-0-1");
    std::fs::write(&dead, b"half").unwrap();
    let ran = run(&[
        "compute",
        "--engine",
        "cpu",
        s(&crop),
        "--groupings",
        s(&g),
        "--out",
        s(&out),
        "--resume",
    ]);
    ran.succeeds();
    assert!(live.exists(), "a live writer's temporary was removed");
    assert!(!dead.exists(), "a dead writer's temporary is removed");
    assert!(ran.stdout.contains("1 stale temporary"), "{}", ran.stdout);

    // Two runs of the same shard at once both succeed, with the same bytes.
    for trial in 0..6 {
        let out = dir.path().join(format!("twice{trial}.zarr"));
        let spawn = || {
            Command::new(env!("CARGO_BIN_EXE_annomask"))
                .args([
                    "compute",
                    "--engine",
                    "cpu",
                    "--quiet",
                    s(&crop),
                    "--groupings",
                ])
                .arg(&g)
                .arg("--out")
                .arg(&out)
                .args(["--chunks", "2,2,2", "--resume"])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn(), spawn());
        for child in [a, b] {
            let o = child.wait_with_output().unwrap();
            assert!(
                o.status.success(),
                "trial {trial}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
}

// 10. An output inside, equal to, or around an input is refused before anything is written.

#[test]
fn an_output_inside_or_equal_to_the_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let g = groupings(dir.path());
    for format in [ZarrFormat::V2, ZarrFormat::V3] {
        let group = dir.path().join(format!("crop{}.zarr", format.number()));
        let path = group.join("labels");
        let data = synth_labels(&[8, 8, 8], LabelDtype::U64, &[0, 1, 2, 3], 7);
        write_labels(&path, &data, &[4, 4, 4], format, Compression::Raw, meta()).unwrap();
        let before = snapshot(&group);
        for (out, needle) in [
            (path.join("c"), "inside the input"),
            (path.clone(), "the output is the input"),
            (path.join("../labels/./"), "the output is the input"),
            (group.clone(), "contains the input"),
        ] {
            run(&cpu_compute(&path, &g, s(&out), &[])).fails_with(&[needle]);
            assert_eq!(
                snapshot(&group),
                before,
                "{} modified the input",
                out.display()
            );
        }
    }
}

// 11. A FIFO where a chunk (or metadata) should be is refused, not read forever.

#[test]
fn a_fifo_where_a_chunk_should_be_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let g = groupings(dir.path());
    let crop = labels(
        dir.path(),
        "l.zarr",
        &[8, 8, 8],
        &[4, 4, 4],
        Compression::Raw,
    );
    let chunk = crop.join("1/1/1");
    std::fs::remove_file(&chunk).unwrap();
    let c = std::ffi::CString::new(chunk.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    run_limited(
        &cpu_compute(&crop, &g, s(&dir.path().join("o.zarr")), &[]),
        &[],
        Duration::from_secs(30),
        8 << 30,
    )
    .fails_with(&["chunk 1/1/1", "not a regular file"]);
}

// 13. No driver chatter; codecs checked before anything is created; URLs refused by scheme.

#[test]
fn the_default_engine_prints_no_driver_errors() {
    let dir = tempfile::tempdir().unwrap();
    let g = groupings(dir.path());
    let crop = labels(
        dir.path(),
        "l.zarr",
        &[8, 8, 8],
        &[4, 4, 4],
        Compression::Raw,
    );
    for quiet in [true, false] {
        let out = dir.path().join(format!("o{quiet}.zarr"));
        let mut args = vec!["compute", s(&crop), "--groupings", s(&g), "--out", s(&out)];
        if quiet {
            args.push("--quiet");
        }
        let ran = run_limited(
            &args,
            &[("XDG_RUNTIME_DIR", None)],
            Duration::from_secs(120),
            64 << 30,
        );
        ran.succeeds();
        if quiet {
            assert_eq!(ran.stderr, "", "--quiet prints nothing");
        }
    }
}

#[test]
fn a_codec_that_does_not_decode_fails_before_the_output_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let g = groupings(dir.path());
    let crop = labels(
        dir.path(),
        "l.zarr",
        &[8, 8, 8],
        &[8, 8, 8],
        Compression::Gzip,
    );
    // The metadata says gzip, the chunk is zstd.
    let zstd = zstd::bulk::compress(&vec![0u8; 8 * 8 * 8 * 8], 3).unwrap();
    std::fs::write(crop.join("0/0/0"), zstd).unwrap();
    run(&["inspect", s(&crop)]).fails_with(&["chunk 0/0/0"]);
    let out = dir.path().join("o.zarr");
    run(&cpu_compute(&crop, &g, s(&out), &[])).fails_with(&["chunk 0/0/0"]);
    assert!(!out.exists(), "the output was created");
}

#[test]
fn urls_of_unsupported_schemes_are_refused_and_file_urls_are_paths() {
    let dir = tempfile::tempdir().unwrap();
    let g = groupings(dir.path());
    let crop = labels(
        dir.path(),
        "l.zarr",
        &[8, 8, 8],
        &[4, 4, 4],
        Compression::Raw,
    );
    let ran = run_limited(
        &cpu_compute(&crop, &g, "s3://bucket/x.zarr", &[]),
        &[],
        Duration::from_secs(60),
        8 << 30,
    );
    ran.fails_with(&["s3://"]);
    assert!(!Path::new("s3:").exists(), "wrote a local folder s3:");
    run(&["inspect", "gs://bucket/crop.zarr/labels"]).fails_with(&["gs://"]);
    let out = dir.path().join("f.zarr");
    let file_in = format!("file://{}", s(&crop));
    let file_out = format!("file://{}", s(&out));
    run(&[
        "compute",
        "--engine",
        "cpu",
        "--quiet",
        &file_in,
        "--groupings",
        s(&g),
        "--out",
        &file_out,
    ])
    .succeeds();
    assert!(out.join(".zarray").exists());
}
