//! Memory stays bounded by the block size and queue depth, whatever the volume size (issue 5.2):
//! `annomask compute` on a 512^3 uint64 volume (1 GiB of labels) runs in a small fraction of
//! that. The volume is synthesised chunk by chunk, and the peak RSS of the `compute` process is
//! read from the kernel (`wait4`'s `ru_maxrss`) — a measurement, not a timing.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus};

use annomask::synth::{SynthVolume, write_synth_volume};
use annomask::zarr_array::Compression;
use annomask::{LabelDtype, ZarrFormat};
use serde_json::{Map, json};

/// Runs `command` and returns its exit status and peak resident set size in bytes.
#[allow(clippy::zombie_processes)] // reaped by wait4 below, which also reports the child's usage
fn run_measured(command: &mut Command) -> (ExitStatus, u64) {
    let child = command.spawn().expect("the binary starts");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: `rusage` is plain old data; wait4 fills it for our own child, which std has not
    // reaped (we never call wait on `child`).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(
        waited,
        pid,
        "wait4 failed: {}",
        std::io::Error::last_os_error()
    );
    // Linux reports ru_maxrss in KiB.
    (ExitStatus::from_raw(status), usage.ru_maxrss as u64 * 1024)
}

fn write_volume(path: &Path, edge: u64, chunk: u64) {
    let mut attrs = Map::new();
    attrs.insert(
        "labels".into(),
        json!([
            {"value": 3, "annotationState": {"present": true, "annotated": true}},
            {"value": 5, "annotationState": {"present": true, "annotated": false}},
        ]),
    );
    let volume = SynthVolume {
        shape: vec![edge; 3],
        chunks: vec![chunk; 3],
        dtype: LabelDtype::U64,
        palette: vec![0, 3, 5, 7],
        seed: 11,
        format: ZarrFormat::V3,
        compression: Compression::Raw,
    };
    write_synth_volume(path, &volume, attrs).unwrap();
}

#[test]
fn peak_rss_is_bounded_by_blocks_not_by_the_volume() {
    const EDGE: u64 = 512;
    let dir = tempfile::tempdir().unwrap();
    let labels = dir.path().join("big.zarr");
    write_volume(&labels, EDGE, 64);
    let groupings = dir.path().join("g.json");
    std::fs::write(&groupings, r#"[["a", [3]], ["b", [5, 7]]]"#).unwrap();
    let out = dir.path().join("mask.zarr");
    let (status, peak) = run_measured(
        Command::new(env!("CARGO_BIN_EXE_annomask"))
            .args(["compute", "--engine", "cpu", "--quiet", "--groupings"])
            .arg(&groupings)
            .arg("--out")
            .arg(&out)
            .arg(&labels),
    );
    assert!(status.success(), "compute failed: {status}");
    let label_bytes = EDGE.pow(3) * 8;
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    eprintln!(
        "peak RSS of compute on {EDGE}^3 uint64 ({:.0} MiB of labels, {:.0} MiB of mask): {:.1} MiB",
        mib(label_bytes),
        mib(EDGE.pow(3) * 2),
        mib(peak)
    );
    assert!(
        peak < 256 << 20,
        "peak RSS {:.1} MiB is not well below the {:.0} MiB of labels",
        mib(peak),
        mib(label_bytes)
    );
    // The output is complete: one chunk per block.
    let chunks = walk_files(&out.join("c"));
    assert_eq!(chunks, (EDGE / 64).pow(3) as usize);
}

fn walk_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            if p.is_dir() { walk_files(&p) } else { 1 }
        })
        .sum()
}
