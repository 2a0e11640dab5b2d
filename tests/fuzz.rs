//! A fuzz suite for the `annomask` command line: hostile inputs of six families, made from a
//! seeded RNG on tiny crops, each run through the real binary, which must keep the contract on
//! every one of them:
//!
//! - no panic (`panicked` never on stderr), no death by a signal, no hang (a wall-clock
//!   timeout), under an address-space limit (`RLIMIT_AS`);
//! - exit code 0 or 1 (2 only where the command line itself may be malformed: clap's errors);
//!   on failure exactly one stderr line starts with `error:`;
//! - on success the written mask equals an independent oracle (labels decoded here from the raw
//!   or gzip chunk bytes under the array's own metadata, metadata and groupings judged by the
//!   rules of SPEC.md / README, the mask computed voxel by voxel by `tests/common`'s oracles);
//! - the input is never modified (every file under it hashed before and after each run);
//! - where the case says so, the input is valid (the run must succeed) or invalid (it must fail).
//!
//! Families (case `i` is of family `i % 6`): label metadata, array metadata, chunk bytes,
//! groupings files, command-line options, CellMap crop groups. A few cases run `inspect` or
//! `demo` instead of `compute`, a few the default engine instead of `--engine cpu`.
//!
//! The oracle only calls a run wrong where the documents leave no choice: an input the rules call
//! invalid must fail, one they call valid must succeed, and where they are silent (an integral
//! float id, a chunk longer than its shape, a garbled codec level) either outcome is fine, but a
//! success must still give the right mask. The failures are listed grouped by family, mutation
//! kind and problem, then case by case with a command to reproduce each.
//!
//! Environment: `ANNOMASK_FUZZ_CASES` (default 2000) and `ANNOMASK_FUZZ_SEED` choose the cases;
//! `ANNOMASK_FUZZ_ONLY=i,j` runs only those case numbers, `ANNOMASK_FUZZ_KEEP=1` keeps their
//! directories, `ANNOMASK_FUZZ_THREADS` (default 2) runs cases in parallel,
//! `ANNOMASK_FUZZ_VERBOSE=1` prints counts and time per mutation kind and the slowest cases,
//! `ANNOMASK_FUZZ_TRACE=1` one line per run, `ANNOMASK_FUZZ_SHOW` (default 60) how many failed
//! cases are printed in full, and `ANNOMASK_FUZZ_BIN` runs another build of the binary. Run with
//! `cargo test --test fuzz -- --nocapture` to see the counts.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use annomask::cellmap::attrs::{AnnotationKind, Encoding};
use annomask::zarr_array::Compression;
use annomask::{LabelDtype, ZarrFormat};
use common::crop::{OracleClass, crop_oracle, voxel_bits};
use serde_json::{Map, Value, json};

/// Wall-clock limit of one run of the binary.
const TIMEOUT: Duration = Duration::from_secs(20);
/// Address-space limit of the binary under test.
const ADDRESS_SPACE: u64 = 4 << 30;
/// File-size limit of the binary under test (a tiny crop never needs more).
const FILE_SIZE: u64 = 1 << 30;
/// Peak resident memory a run on these tiny inputs may take (docs/cli.md: memory bounded by
/// the blocks in flight, decompression bounded; the largest input here is a few MB of JSON).
const PEAK_RSS: u64 = 1 << 30;
/// What a gzip / zstd decompression bomb inflates to.
const BOMB_BYTES: u64 = 6 << 30;

// ------------------------------------------------------------------------------------------
// Randomness
// ------------------------------------------------------------------------------------------

/// splitmix64: small, seedable, good enough to fuzz with.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 for `n == 0`).
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.index(items.len())].clone()
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn mix(seed: u64, i: u64) -> u64 {
    let mut r = Rng(seed ^ i.wrapping_mul(0xA076_1D64_78BD_642F));
    r.next()
}

// ------------------------------------------------------------------------------------------
// Cases, runs and what is checked
// ------------------------------------------------------------------------------------------

/// What a run must do. Combined by `max`: any `Fail` makes the run one that must fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Expect {
    /// The input is valid: exit 0.
    Succeed,
    /// Either outcome keeps the contract (the documents leave it open).
    Either,
    /// The input is invalid: exit 1 (or 2 where `usage_ok`).
    Fail,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Family {
    LabelMeta,
    ArrayMeta,
    Chunks,
    Groupings,
    Options,
    Crops,
}

impl Family {
    const ALL: [Family; 6] = [
        Family::LabelMeta,
        Family::ArrayMeta,
        Family::Chunks,
        Family::Groupings,
        Family::Options,
        Family::Crops,
    ];

    fn name(self) -> &'static str {
        match self {
            Family::LabelMeta => "1 label metadata",
            Family::ArrayMeta => "2 array metadata",
            Family::Chunks => "3 chunk bytes",
            Family::Groupings => "4 groupings files",
            Family::Options => "5 CLI options",
            Family::Crops => "6 crop groups",
        }
    }
}

/// One invocation of the binary.
struct Run {
    args: Vec<OsString>,
    expect: Expect,
    /// clap's exit code 2 (malformed command line) is allowed.
    usage_ok: bool,
    /// `inspect --json`: stdout of a success must be JSON.
    json_stdout: bool,
}

/// What the output must hold after the last run, when every run succeeded.
enum Check {
    Nothing,
    Mask {
        /// The mask array.
        path: PathBuf,
        /// `(channels, *region)`; `None`: unknown (values are still checked to be 0 or 1).
        shape: Option<Vec<u64>>,
        /// The oracle's bytes, C order; `None`: not known here (shape and 0/1 only).
        data: Option<Vec<u8>>,
        /// Only part of the chunks were computed (one shard): each voxel is 0 or the oracle's.
        partial: bool,
        /// Where the mask may be instead (a crop whose multiscales are garbled is no OME-NGFF
        /// level, so its mask may be the output array itself, as for any plain array).
        alt: Option<PathBuf>,
    },
}

struct Case {
    mutation: String,
    dir: tempfile::TempDir,
    /// Input paths that no run may change (directories are walked).
    guarded: Vec<PathBuf>,
    runs: Vec<Run>,
    check: Check,
    /// A run that fails before computing must not create this path (README: "Errors found
    /// before the run write nothing").
    untouched_on_error: Option<PathBuf>,
    /// What the output must hold when the last run failed (an earlier run wrote it).
    check_if_last_failed: Check,
    /// Runs alone (thousands of threads would slow a case running beside it past its timeout).
    exclusive: bool,
}

impl Case {
    fn new() -> Self {
        Self {
            mutation: String::new(),
            dir: tempfile::Builder::new()
                .prefix("annomask-fuzz-")
                .tempdir()
                .expect("a temporary directory"),
            guarded: Vec::new(),
            runs: Vec::new(),
            check: Check::Nothing,
            untouched_on_error: None,
            check_if_last_failed: Check::Nothing,
            exclusive: false,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn mutation(&mut self, m: impl Into<String>) {
        let m = m.into();
        if self.mutation.is_empty() {
            self.mutation = m;
        } else {
            self.mutation = format!("{}+{m}", self.mutation);
        }
    }
}

fn os(v: &[String]) -> Vec<OsString> {
    v.iter().map(OsString::from).collect()
}

// ------------------------------------------------------------------------------------------
// Running the binary
// ------------------------------------------------------------------------------------------

struct Outcome {
    code: Option<i32>,
    signal: Option<i32>,
    timed_out: bool,
    /// Peak resident memory, bytes.
    peak_rss: u64,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// The binary under test: this crate's, or `ANNOMASK_FUZZ_BIN` (e.g. an older build, to see
/// which of its defects the suite finds).
fn binary() -> PathBuf {
    match std::env::var_os("ANNOMASK_FUZZ_BIN") {
        Some(b) => PathBuf::from(b),
        None => PathBuf::from(env!("CARGO_BIN_EXE_annomask")),
    }
}

/// Runs the binary with `args` in `cwd` under the limits, killing it after [`TIMEOUT`].
#[allow(clippy::zombie_processes)] // reaped by wait4, which also gives its peak memory
fn run_binary(args: &[OsString], cwd: &Path) -> Outcome {
    let out_path = cwd.join(".fuzz-stdout");
    let err_path = cwd.join(".fuzz-stderr");
    let stdout = std::fs::File::create(&out_path).expect("stdout file");
    let stderr = std::fs::File::create(&err_path).expect("stderr file");
    let mut cmd = Command::new(binary());
    cmd.args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        // Everything a run writes stays in the case's directory. No XDG_RUNTIME_DIR: GPU
        // drivers complain on stderr while the default engine probes (docs/cli.md: annomask
        // keeps that chatter off stderr, so a good run shows no `error:` line).
        .env("TMPDIR", cwd)
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("ANNOMASK_DRIVER_LOG")
        .env_remove("ANNOMASK_MEMORY_BUDGET")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LOG");
    // SAFETY: only async-signal-safe calls (setrlimit) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let limit = |resource, value: u64| {
                let l = libc::rlimit {
                    rlim_cur: value as libc::rlim_t,
                    rlim_max: value as libc::rlim_t,
                };
                if libc::setrlimit(resource, &l) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            };
            limit(libc::RLIMIT_AS, ADDRESS_SPACE)?;
            limit(libc::RLIMIT_CORE, 0)?;
            limit(libc::RLIMIT_FSIZE, FILE_SIZE)?;
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("the annomask binary starts");
    let pid = child.id() as libc::pid_t;
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    let mut timed_out = false;
    // wait4 rather than Child::try_wait: it also gives the child's peak memory. (The child is
    // forked, pre_exec needs that, so its peak includes this test process's resident memory at
    // the fork, a few hundred MiB at most: far below PEAK_RSS.)
    let (status, usage) = loop {
        let mut status: libc::c_int = 0;
        // SAFETY: a zeroed rusage is valid; wait4 writes both out-parameters.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: pid is our unreaped child; the pointers are valid for the call.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            break (status, usage);
        }
        assert!(r == 0, "wait4: {}", std::io::Error::last_os_error());
        if !timed_out && start.elapsed() > TIMEOUT {
            let _ = child.kill();
            timed_out = true;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    };
    let read = |p: &Path| std::fs::read(p).unwrap_or_default();
    let exited = libc::WIFEXITED(status);
    let outcome = Outcome {
        code: exited.then(|| libc::WEXITSTATUS(status)),
        signal: libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status)),
        timed_out,
        peak_rss: usage.ru_maxrss.max(0) as u64 * 1024,
        stdout: read(&out_path),
        stderr: read(&err_path),
    };
    let _ = std::fs::remove_file(&out_path);
    let _ = std::fs::remove_file(&err_path);
    outcome
}

// ------------------------------------------------------------------------------------------
// Input snapshots (the input must never change)
// ------------------------------------------------------------------------------------------

fn hash_bytes(b: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    b.hash(&mut h);
    h.finish()
}

/// Every entry under `roots`: path -> kind and content hash. FIFOs and devices are never opened.
fn snapshot(roots: &[PathBuf]) -> BTreeMap<String, String> {
    fn walk(p: &Path, out: &mut BTreeMap<String, String>) {
        let key = p.display().to_string();
        let Ok(meta) = std::fs::symlink_metadata(p) else {
            out.insert(key, "absent".into());
            return;
        };
        let ft = meta.file_type();
        use std::os::unix::fs::FileTypeExt;
        if ft.is_symlink() {
            let target = std::fs::read_link(p).map(|t| t.display().to_string());
            out.insert(key, format!("link -> {target:?}"));
        } else if ft.is_dir() {
            out.insert(key, "dir".into());
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default();
            entries.sort();
            for e in entries {
                walk(&e, out);
            }
        } else if ft.is_file() {
            let bytes = std::fs::read(p).unwrap_or_default();
            out.insert(
                key,
                format!("file {} bytes #{:016x}", bytes.len(), hash_bytes(&bytes)),
            );
        } else if ft.is_fifo() {
            out.insert(key, "fifo".into());
        } else {
            out.insert(key, "special".into());
        }
    }
    let mut out = BTreeMap::new();
    for r in roots {
        walk(r, &mut out);
    }
    out
}

fn snapshot_difference(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> Option<String> {
    for (k, v) in before {
        match after.get(k) {
            None => return Some(format!("{k} was removed ({v})")),
            Some(w) if w != v => return Some(format!("{k} changed: {v} -> {w}")),
            _ => {}
        }
    }
    after
        .iter()
        .find(|(k, _)| !before.contains_key(*k))
        .map(|(k, v)| format!("{k} was created inside the input ({v})"))
}

// ------------------------------------------------------------------------------------------
// The oracle's own zarr reader: raw and gzip chunks under whatever metadata is on disk
// ------------------------------------------------------------------------------------------

/// The voxels of a region as the oracle reads them.
enum Decoded {
    /// Well-defined labels (bit patterns, signed sign-extended).
    Labels(Vec<u64>),
    /// Labels, but read leniently (e.g. bytes after the end of a gzip stream): either outcome.
    Lenient(Vec<u64>),
    /// A chunk the region needs cannot be decoded: the run must not succeed.
    Corrupt(String),
    /// Outside what this reader understands: no judgement.
    Unsupported(String),
}

#[derive(Clone, Copy, PartialEq)]
enum ChunkCodec {
    Raw,
    Gzip,
}

struct RawMeta {
    shape: Vec<u64>,
    chunks: Vec<u64>,
    width: usize,
    signed: bool,
    big_endian: bool,
    /// Parsed only when a missing chunk needs it.
    fill: Result<Option<u64>, String>,
    /// v3 keys start with `c`.
    prefix: Option<String>,
    separator: String,
    codec: ChunkCodec,
}

fn json_u64_list(v: Option<&Value>) -> Option<Vec<u64>> {
    v?.as_array()?.iter().map(Value::as_u64).collect()
}

fn fill_bits(v: Option<&Value>, width: usize, signed: bool) -> Result<Option<u64>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            let bits = width * 8;
            if let Some(u) = n.as_u64() {
                let fits = bits == 64 || u < (1u64 << bits) >> (signed as u32);
                if fits {
                    return Ok(Some(u));
                }
            } else if let Some(i) = n.as_i64() {
                let min = if bits == 64 {
                    i64::MIN
                } else {
                    -(1i64 << (bits - 1))
                };
                if signed && i >= min {
                    return Ok(Some(i as u64));
                }
            }
            Err(format!("fill value {n} does not fit"))
        }
        Some(other) => Err(format!("fill value {other}")),
    }
}

fn read_raw_meta(dir: &Path) -> Result<RawMeta, String> {
    let v3 = dir.join("zarr.json");
    let v2 = dir.join(".zarray");
    if v3.exists() && v2.exists() {
        return Err("both .zarray and zarr.json".into());
    }
    if v3.exists() {
        let doc: Value = serde_json::from_slice(&std::fs::read(&v3).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        if doc.get("zarr_format") != Some(&json!(3))
            || doc.get("node_type") != Some(&json!("array"))
        {
            return Err("not a v3 array".into());
        }
        let shape = json_u64_list(doc.get("shape")).ok_or("shape")?;
        let grid = doc.get("chunk_grid").ok_or("chunk_grid")?;
        if grid.get("name") != Some(&json!("regular")) {
            return Err("chunk grid".into());
        }
        let chunks =
            json_u64_list(grid.pointer("/configuration/chunk_shape")).ok_or("chunk_shape")?;
        let (width, signed) = match doc.get("data_type").and_then(Value::as_str) {
            Some("uint8") => (1, false),
            Some("int8") => (1, true),
            Some("uint16") => (2, false),
            Some("int16") => (2, true),
            Some("uint32") => (4, false),
            Some("int32") => (4, true),
            Some("uint64") => (8, false),
            Some("int64") => (8, true),
            _ => return Err("data type".into()),
        };
        let fill = fill_bits(doc.get("fill_value"), width, signed);
        let (prefix, separator) = match doc.get("chunk_key_encoding") {
            None => return Err("no chunk_key_encoding".into()),
            Some(e) => {
                let sep = match e.pointer("/configuration/separator") {
                    None => None,
                    Some(Value::String(s)) if s == "/" || s == "." => Some(s.clone()),
                    Some(_) => return Err("separator".into()),
                };
                match e.get("name").and_then(Value::as_str) {
                    Some("default") => (Some("c".to_string()), sep.unwrap_or("/".into())),
                    Some("v2") => (None, sep.unwrap_or(".".into())),
                    _ => return Err("chunk key encoding".into()),
                }
            }
        };
        if doc
            .get("storage_transformers")
            .is_some_and(|t| t.as_array().is_none_or(|a| !a.is_empty()))
        {
            return Err("storage transformers".into());
        }
        let codecs = doc
            .get("codecs")
            .and_then(Value::as_array)
            .ok_or("codecs")?;
        let mut big_endian = false;
        let codec = match codecs.as_slice() {
            [bytes, rest @ ..] if bytes.get("name") == Some(&json!("bytes")) => {
                match bytes.pointer("/configuration/endian") {
                    Some(Value::String(e)) if e == "little" => {}
                    Some(Value::String(e)) if e == "big" => big_endian = true,
                    None if width == 1 => {}
                    _ => return Err("bytes endian".into()),
                }
                match rest {
                    [] => ChunkCodec::Raw,
                    [g] if g.get("name") == Some(&json!("gzip"))
                        && g.pointer("/configuration/level")
                            .and_then(Value::as_u64)
                            .is_some_and(|l| l <= 9) =>
                    {
                        ChunkCodec::Gzip
                    }
                    _ => return Err("codecs".into()),
                }
            }
            _ => return Err("codecs".into()),
        };
        return Ok(RawMeta {
            shape,
            chunks,
            width,
            signed,
            big_endian,
            fill,
            prefix,
            separator,
            codec,
        });
    }
    let doc: Value = serde_json::from_slice(&std::fs::read(&v2).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    if doc.get("zarr_format") != Some(&json!(2)) {
        return Err("not v2".into());
    }
    let shape = json_u64_list(doc.get("shape")).ok_or("shape")?;
    let chunks = json_u64_list(doc.get("chunks")).ok_or("chunks")?;
    let dtype = doc.get("dtype").and_then(Value::as_str).ok_or("dtype")?;
    let b = dtype.as_bytes();
    if b.len() != 3 {
        return Err("dtype".into());
    }
    let (signed, width) = match (b[1], b[2]) {
        (b'u', w) => (false, (w - b'0') as usize),
        (b'i', w) => (true, (w - b'0') as usize),
        _ => return Err("dtype".into()),
    };
    if ![1, 2, 4, 8].contains(&width) {
        return Err("dtype width".into());
    }
    let big_endian = match b[0] {
        b'<' => false,
        b'>' => true,
        b'|' if width == 1 => false,
        _ => return Err("dtype byte order".into()),
    };
    if doc.get("order") != Some(&json!("C")) {
        return Err("order".into());
    }
    if doc
        .get("filters")
        .is_some_and(|f| !f.is_null() && f.as_array().is_none_or(|a| !a.is_empty()))
    {
        return Err("filters".into());
    }
    let codec = match doc.get("compressor") {
        Some(Value::Null) => ChunkCodec::Raw,
        Some(c)
            if c.get("id") == Some(&json!("gzip"))
                && c.get("level")
                    .and_then(Value::as_u64)
                    .is_some_and(|l| l <= 9) =>
        {
            ChunkCodec::Gzip
        }
        _ => return Err("compressor".into()),
    };
    let fill = fill_bits(doc.get("fill_value"), width, signed);
    let separator = match doc.get("dimension_separator") {
        None => ".".to_string(),
        Some(Value::String(s)) if s == "/" || s == "." => s.clone(),
        Some(_) => return Err("dimension_separator".into()),
    };
    Ok(RawMeta {
        shape,
        chunks,
        width,
        signed,
        big_endian,
        fill,
        prefix: None,
        separator,
        codec,
    })
}

/// The store key of chunk `idx`.
fn chunk_key(meta: &RawMeta, idx: &[u64]) -> String {
    let mut key: Vec<String> = idx.iter().map(u64::to_string).collect();
    if let Some(p) = &meta.prefix {
        key.insert(0, p.clone());
    }
    key.join(&meta.separator)
}

/// Element `bytes` (one of `width` bytes) as a 64-bit pattern.
fn element_bits(bytes: &[u8], signed: bool, big_endian: bool) -> u64 {
    let mut v: u64 = 0;
    if big_endian {
        for &b in bytes {
            v = (v << 8) | b as u64;
        }
    } else {
        for &b in bytes.iter().rev() {
            v = (v << 8) | b as u64;
        }
    }
    let bits = bytes.len() * 8;
    if signed && bits < 64 && (v >> (bits - 1)) & 1 == 1 {
        v |= u64::MAX << bits;
    }
    v
}

/// A gzip stream inflated to at most `limit` bytes: `Ok((bytes, trailing))` when it ends cleanly
/// (CRC and size checked), `trailing` when bytes follow its end.
fn gunzip(data: &[u8], limit: usize) -> Result<(Vec<u8>, bool), String> {
    let mut d = flate2::bufread::GzDecoder::new(std::io::Cursor::new(data));
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match d.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.len() > limit {
                    return Err(format!("inflates to more than {limit} bytes"));
                }
            }
            Err(e) => return Err(format!("gzip: {e}")),
        }
    }
    let trailing = (d.into_inner().position() as usize) < data.len();
    Ok((out, trailing))
}

/// One chunk as the oracle has it.
enum ChunkState {
    /// No file: the fill value.
    Missing,
    /// Its bytes (raw, or inflated); `trailing`: a gzip stream with bytes after its end.
    Bytes(Vec<u8>, bool),
    /// Cannot be read as a chunk of this array (docs/cli.md, "Hostile input": every chunk read
    /// is checked, whole or in part, against its shape times the dtype size; a FIFO, socket or
    /// directory is refused): no run that reads it may succeed.
    Bad(String),
}

/// The voxels of `start..start+size` of the array at `dir`, read by the oracle's own reader.
fn decode_region(dir: &Path, start: &[u64], size: &[u64]) -> Decoded {
    let meta = match read_raw_meta(dir) {
        Ok(m) => m,
        Err(e) => return Decoded::Unsupported(e),
    };
    let n = meta.shape.len();
    if meta.chunks.len() != n || start.len() != n || meta.chunks.contains(&0) {
        return Decoded::Unsupported("dimensions".into());
    }
    if start
        .iter()
        .zip(size)
        .zip(&meta.shape)
        .any(|((s, z), sh)| s.checked_add(*z).is_none_or(|e| e > *sh))
    {
        return Decoded::Unsupported("region outside the array".into());
    }
    let total: u64 = size.iter().product();
    let chunk_bytes: u128 =
        meta.chunks.iter().map(|&c| c as u128).product::<u128>() * meta.width as u128;
    let mut cache: HashMap<Vec<u64>, ChunkState> = HashMap::new();
    let mut out = Vec::with_capacity(total as usize);
    let mut lenient = false;
    for flat in 0..total {
        let mut rest = flat;
        let mut coord = vec![0u64; n];
        for d in (0..n).rev() {
            coord[d] = start[d] + rest % size[d];
            rest /= size[d];
        }
        let idx: Vec<u64> = coord.iter().zip(&meta.chunks).map(|(c, k)| c / k).collect();
        let key = chunk_key(&meta, &idx);
        let state = cache.entry(idx.clone()).or_insert_with(|| {
            let path = dir.join(&key);
            match std::fs::metadata(&path) {
                // A dangling link is a missing chunk here; a run may also refuse it.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => ChunkState::Missing,
                Err(e) => ChunkState::Bad(format!("chunk {key}: {e}")),
                Ok(m) if !m.is_file() => {
                    ChunkState::Bad(format!("chunk {key} is not a regular file"))
                }
                Ok(_) => {
                    let data = std::fs::read(&path).unwrap_or_default();
                    let (bytes, trailing) = match meta.codec {
                        ChunkCodec::Raw => (data, false),
                        ChunkCodec::Gzip => {
                            let limit = chunk_bytes.min(1 << 30) as usize;
                            match gunzip(&data, limit) {
                                Ok(x) => x,
                                Err(e) => return ChunkState::Bad(format!("chunk {key}: {e}")),
                            }
                        }
                    };
                    if bytes.len() as u128 != chunk_bytes {
                        ChunkState::Bad(format!(
                            "chunk {key} decodes to {} bytes, its shape needs {chunk_bytes}",
                            bytes.len()
                        ))
                    } else {
                        ChunkState::Bytes(bytes, trailing)
                    }
                }
            }
        });
        match state {
            ChunkState::Missing => match &meta.fill {
                Ok(Some(f)) => out.push(*f),
                _ => {
                    return Decoded::Unsupported(
                        "missing chunk without a usable fill value".into(),
                    );
                }
            },
            ChunkState::Bad(why) => return Decoded::Corrupt(why.clone()),
            ChunkState::Bytes(bytes, trailing) => {
                lenient |= *trailing;
                let within = coord
                    .iter()
                    .zip(&meta.chunks)
                    .fold(0usize, |w, (c, k)| w * *k as usize + (c % k) as usize);
                let at = within * meta.width;
                out.push(element_bits(
                    &bytes[at..at + meta.width],
                    meta.signed,
                    meta.big_endian,
                ));
            }
        }
    }
    if lenient {
        Decoded::Lenient(out)
    } else {
        Decoded::Labels(out)
    }
}

// ------------------------------------------------------------------------------------------
// The oracle's judgement of metadata and groupings (SPEC 1.2, 1.3; README "Metadata rules")
// ------------------------------------------------------------------------------------------

/// What the rules say about an input part.
#[derive(Clone, Debug)]
enum Verdict<T> {
    Valid(T),
    Invalid(String),
    /// The documents leave it open; `Some`: its meaning if accepted.
    Open(Option<T>),
}

impl<T> Verdict<T> {
    fn expect(&self) -> Expect {
        match self {
            Verdict::Valid(_) => Expect::Succeed,
            Verdict::Invalid(_) => Expect::Fail,
            Verdict::Open(_) => Expect::Either,
        }
    }

    fn meaning(self) -> Option<T> {
        match self {
            Verdict::Valid(t) | Verdict::Open(Some(t)) => Some(t),
            _ => None,
        }
    }
}

/// An integer id the way SPEC reads it: a JSON non-negative integer up to 2^64-1. `Err(true)`:
/// an integral float (open), `Err(false)`: not an id.
fn json_id(v: &Value) -> Result<u64, Option<u64>> {
    if let Some(u) = v.as_u64() {
        return Ok(u);
    }
    match v.as_f64() {
        Some(f) if f >= 0.0 && f.fract() == 0.0 && f < 18_446_744_073_709_551_616.0 => {
            Err(Some(f as u64))
        }
        _ => Err(None),
    }
}

/// The missing ids of a label array with attributes `attrs` (SPEC 1.2).
fn judge_labels(
    attrs: Option<&Map<String, Value>>,
    allow_missing: bool,
    sparse_missing: bool,
) -> Verdict<BTreeSet<u64>> {
    let labels = match attrs.and_then(|a| a.get("labels")) {
        None if allow_missing => return Verdict::Valid(BTreeSet::new()),
        None => return Verdict::Invalid("no labels attribute".into()),
        Some(Value::Null) if allow_missing => return Verdict::Open(Some(BTreeSet::new())),
        Some(v) => v,
    };
    let Some(list) = labels.as_array() else {
        return Verdict::Invalid("labels is not a list".into());
    };
    type State = (bool, String, Option<bool>);
    let mut seen: BTreeMap<u64, (State, u8)> = BTreeMap::new();
    let mut missing = BTreeSet::new();
    let mut open = false;
    for (i, e) in list.iter().enumerate() {
        let bad = |what: &str| Verdict::Invalid(format!("labels[{i}]: {what}"));
        let Some(obj) = e.as_object() else {
            return bad("not an object");
        };
        let value = match obj.get("value").map(json_id) {
            None => return bad("no value"),
            Some(Ok(v)) => v,
            Some(Err(Some(v))) => {
                open = true;
                v
            }
            Some(Err(None)) => return bad("value not a non-negative integer"),
        };
        let Some(state) = obj.get("annotationState").and_then(Value::as_object) else {
            return bad("annotationState");
        };
        let Some(present) = state.get("present").and_then(Value::as_bool) else {
            return bad("present");
        };
        let annotated = match state.get("annotated") {
            Some(Value::Bool(b)) => b.to_string(),
            Some(Value::String(s)) if ["dense", "sparse", "empty"].contains(&s.as_str()) => {
                s.clone()
            }
            _ => return bad("annotated"),
        };
        let sparse = match state.get("sparse") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => return bad("sparse neither a bool nor null"),
        };
        let not_annotated = annotated == "false" || annotated == "empty";
        let is_sparse = annotated == "sparse" || sparse == Some(true);
        // What the state means: not present, or present and not annotated / sparse / annotated.
        let meaning = match (present, not_annotated, is_sparse) {
            (false, _, _) => 0,
            (true, true, _) => 1,
            (true, false, true) => 2,
            (true, false, false) => 3,
        };
        let triple = (present, annotated.clone(), sparse);
        match seen.get(&value) {
            Some((t, _)) if *t == triple => continue,
            // Written differently, meaning the same (`sparse: false` or absent, `true` or
            // "dense"): the contract's "different states" may or may not cover it.
            Some((_, m)) if *m == meaning => {
                open = true;
                continue;
            }
            Some(_) => return bad("duplicate value with a different state"),
            None => {
                seen.insert(value, (triple, meaning));
            }
        }
        if present && (not_annotated || (is_sparse && sparse_missing)) {
            missing.insert(value);
        }
    }
    if open {
        Verdict::Open(Some(missing))
    } else {
        Verdict::Valid(missing)
    }
}

/// Groupings by id from a parsed file (SPEC 1.3, README): a list of `[name, [ids]]` pairs, or an
/// object with it under `groupings`; at least one channel, names unique and non-empty, members
/// label ids (class names are groupings of the other kind: wrong for a label array).
fn judge_id_groupings(v: &Value) -> Verdict<Vec<Vec<u64>>> {
    let mut open = false;
    let list = match v {
        Value::Array(l) => l,
        Value::Object(o) => match o.get("groupings") {
            Some(Value::Array(l)) => {
                if o.len() > 1 {
                    open = true;
                }
                l
            }
            _ => return Verdict::Invalid("no groupings list".into()),
        },
        _ => return Verdict::Invalid("not a list".into()),
    };
    if list.is_empty() {
        return Verdict::Invalid("no channels".into());
    }
    let mut names: Vec<&str> = Vec::new();
    let mut raw: Vec<&Vec<Value>> = Vec::new();
    for pair in list {
        match pair.as_array().map(Vec::as_slice) {
            Some([Value::String(name), Value::Array(members)]) => {
                if name.is_empty() || names.contains(&name.as_str()) {
                    return Verdict::Invalid(format!("channel name {name:?}"));
                }
                names.push(name);
                raw.push(members);
            }
            _ => return Verdict::Invalid("not a pair".into()),
        }
    }
    if raw.iter().flat_map(|m| m.iter()).any(Value::is_string) {
        return Verdict::Invalid("class names for a label array".into());
    }
    let verdict = {
        let mut out = Vec::new();
        for members in &raw {
            let mut ch = Vec::new();
            for m in members.iter() {
                match json_id(m) {
                    Ok(id) => ch.push(id),
                    Err(Some(id)) => {
                        open = true;
                        ch.push(id);
                    }
                    Err(None) => return Verdict::Invalid(format!("member {m}")),
                }
            }
            if ch.iter().collect::<BTreeSet<_>>().len() != ch.len() {
                open = true;
            }
            out.push(ch);
        }
        out
    };
    if open {
        Verdict::Open(Some(verdict))
    } else {
        Verdict::Valid(verdict)
    }
}

// ------------------------------------------------------------------------------------------
// Hostile values
// ------------------------------------------------------------------------------------------

/// A JSON value chosen to break parsers and type checks.
fn hostile_value(rng: &mut Rng) -> Value {
    match rng.below(22) {
        0 => Value::Null,
        1 => json!(true),
        2 => json!(-1),
        3 => json!(i64::MIN),
        4 => json!(u64::MAX),
        5 => json!(1.5),
        6 => json!(1e300),
        7 => json!(-0.0),
        8 => json!(""),
        9 => json!("3"),
        10 => json!("\u{0}\u{7f}☃"),
        11 => json!([]),
        12 => json!({}),
        13 => json!([[[[1]]]]),
        14 => json!({"value": 3}),
        15 => json!("x".repeat(rng.range(1, 5000) as usize)),
        16 => json!(rng.next()),
        17 => json!(rng.next() as i64),
        18 => json!(f64::from_bits(
            rng.next() & !(0x7ffu64 << 52) | (0x400u64 << 52)
        )),
        19 => json!([rng.next(), "a", null]),
        20 => json!({"present": true, "annotated": false}),
        _ => json!(2.0),
    }
}

/// A path inside `v` (object keys and array indices), chosen uniformly among its nodes.
fn random_pointer(rng: &mut Rng, v: &Value) -> String {
    fn collect(v: &Value, at: String, out: &mut Vec<String>) {
        out.push(at.clone());
        match v {
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    collect(x, format!("{at}/{i}"), out);
                }
            }
            Value::Object(o) => {
                for (k, x) in o {
                    let k = k.replace('~', "~0").replace('/', "~1");
                    collect(x, format!("{at}/{k}"), out);
                }
            }
            _ => {}
        }
    }
    let mut all = Vec::new();
    collect(v, String::new(), &mut all);
    rng.pick(&all)
}

/// Replaces a random node of `v` (not the root unless `root_ok`) by a hostile value, or removes
/// it from its parent. Returns what was done.
fn mutate_json(rng: &mut Rng, v: &mut Value, root_ok: bool) -> String {
    let mut at = random_pointer(rng, v);
    if at.is_empty() && !root_ok {
        at = random_pointer(rng, v);
        if at.is_empty() {
            return "nothing".into();
        }
    }
    if !at.is_empty() && rng.chance(0.25) {
        let (parent, last) = at.rsplit_once('/').unwrap();
        let key = last.replace("~1", "/").replace("~0", "~");
        match v.pointer_mut(parent) {
            Some(Value::Object(o)) => {
                o.remove(&key);
                return format!("removed {at}");
            }
            Some(Value::Array(a)) => {
                let i: usize = key.parse().unwrap();
                a.remove(i);
                return format!("removed {at}");
            }
            _ => {}
        }
    }
    let new = hostile_value(rng);
    let shown = {
        let s = new.to_string();
        if s.len() > 40 {
            format!("{}...", &s[..40])
        } else {
            s
        }
    };
    *v.pointer_mut(&at).unwrap() = new;
    format!("{at}={shown}")
}

/// `depth` nested JSON lists.
fn deep_json(depth: usize, open: char, close: char) -> String {
    let mut s = String::with_capacity(depth * 2);
    for _ in 0..depth {
        s.push(open);
    }
    for _ in 0..depth {
        s.push(close);
    }
    s
}

/// Cuts `bytes` somewhere before their last meaningful byte.
fn truncate_json(rng: &mut Rng, bytes: &[u8]) -> Vec<u8> {
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .unwrap_or(0);
    bytes[..rng.index(end.max(1))].to_vec()
}

/// Puts an invalid UTF-8 byte inside the first string of `bytes`.
fn break_utf8(rng: &mut Rng, bytes: &[u8]) -> Vec<u8> {
    let quotes: Vec<usize> = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'"')
        .map(|(i, _)| i)
        .collect();
    let at = if quotes.is_empty() {
        0
    } else {
        rng.pick(&quotes) + 1
    };
    let mut out = bytes.to_vec();
    out.insert(at.min(out.len()), rng.pick(&[0xff, 0xc3, 0x80, 0xfe]));
    out
}

// ------------------------------------------------------------------------------------------
// Decompression bombs (made once per run, small on disk and in memory)
// ------------------------------------------------------------------------------------------

/// Decompression bombs, made once per run and held in memory (a few MB).
struct Bombs {
    gzip: Vec<u8>,
    zstd_declared: Vec<u8>,
    zstd_undeclared: Vec<u8>,
}

/// A gzip stream of `mib` MiB of zeros, built from one repeated sync-flushed deflate piece.
fn gzip_bomb(mib: u64, out: &mut impl Write) {
    use flate2::{Compress, Crc, FlushCompress};
    let zeros = vec![0u8; 1 << 20];
    let mut c = Compress::new(flate2::Compression::best(), false);
    let piece = |c: &mut Compress| {
        let mut buf = Vec::with_capacity(1 << 16);
        let before = c.total_in();
        c.compress_vec(&zeros, &mut buf, FlushCompress::Sync)
            .unwrap();
        assert_eq!(c.total_in() - before, 1 << 20, "one MiB in one call");
        buf
    };
    let first = piece(&mut c);
    let second = piece(&mut c);
    let third = piece(&mut c);
    assert_eq!(second, third, "sync-flushed pieces of zeros repeat");
    let mut tail = Vec::with_capacity(64);
    c.compress_vec(&[], &mut tail, FlushCompress::Finish)
        .unwrap();
    let mut one = Crc::new();
    one.update(&zeros);
    let mut crc = Crc::new();
    for _ in 0..mib {
        crc.combine(&one);
    }
    out.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff])
        .unwrap();
    out.write_all(&first).unwrap();
    for _ in 1..mib {
        out.write_all(&second).unwrap();
    }
    out.write_all(&tail).unwrap();
    out.write_all(&crc.sum().to_le_bytes()).unwrap();
    out.write_all(&((mib << 20) as u32).to_le_bytes()).unwrap();
}

/// A zstd frame of `bytes` zeros in RLE blocks of 128 KiB (4 bytes each); `declared`: with the
/// frame content size in the header.
fn zstd_bomb(bytes: u64, declared: bool) -> Vec<u8> {
    let mut out = vec![0x28, 0xb5, 0x2f, 0xfd];
    out.push(if declared { 0xc0 } else { 0x00 });
    out.push(7 << 3); // window 2^17
    if declared {
        out.extend_from_slice(&bytes.to_le_bytes());
    }
    let block = 128u64 << 10;
    let blocks = bytes / block;
    for b in 0..blocks {
        let last = (b + 1 == blocks) as u32;
        let header = ((block as u32) << 3) | (1 << 1) | last;
        out.extend_from_slice(&header.to_le_bytes()[..3]);
        out.push(0);
    }
    out
}

fn bombs() -> &'static Bombs {
    static B: OnceLock<Bombs> = OnceLock::new();
    B.get_or_init(|| {
        // The builder checked on a small bomb: it inflates to exactly its size, CRC and all.
        let mut small = Vec::new();
        gzip_bomb(3, &mut small);
        let mut inflated = Vec::new();
        flate2::read::GzDecoder::new(&small[..])
            .read_to_end(&mut inflated)
            .expect("the small gzip bomb is a valid stream");
        assert!(inflated.len() == 3 << 20 && inflated.iter().all(|&b| b == 0));
        let mut gzip = Vec::new();
        gzip_bomb(BOMB_BYTES >> 20, &mut gzip);
        Bombs {
            gzip,
            zstd_declared: zstd_bomb(BOMB_BYTES, true),
            zstd_undeclared: zstd_bomb(BOMB_BYTES, false),
        }
    })
}

// ------------------------------------------------------------------------------------------
// Label crops (families 1-5)
// ------------------------------------------------------------------------------------------

/// Raw draws that stress the comparisons once cut to a dtype (sign extension, dtype borders).
const RAW_IDS: [u64; 16] = [
    0,
    1,
    2,
    3,
    5,
    7,
    127,
    128,
    255,
    256,
    65535,
    1 << 32,
    (1 << 32) + 1,
    1 << 63,
    u64::MAX,
    u64::MAX - 1,
];

const CHANNEL_NAMES: [&str; 10] = [
    "mito",
    "er",
    "nuc",
    "ch 3",
    "☃",
    "a\"b",
    "x/y",
    "ecs",
    "all",
    "é\u{301}",
];

/// A label array written by the library, with what the oracle needs to know about it.
struct LabelCrop {
    path: PathBuf,
    format: ZarrFormat,
    compression: Compression,
    dtype: LabelDtype,
    shape: Vec<u64>,
    chunks: Vec<u64>,
    /// Every voxel's id (bit pattern), C order.
    bits: Vec<u64>,
    attrs: Map<String, Value>,
    voxel_size: Vec<i64>,
    offset: Vec<i64>,
    /// Ids that make up the volume, the metadata and the groupings.
    pool: Vec<u64>,
    names: Vec<String>,
    channels: Vec<Vec<u64>>,
    groupings: PathBuf,
    per_voxel: bool,
    sparse_missing: bool,
    background: u64,
    /// `--policy` / `--sparse` / `--background` as given.
    mask_args: Vec<String>,
}

#[derive(Default, Clone, Copy)]
struct CropGen {
    compression: Option<Compression>,
    /// An array shape that is not a multiple of the chunk shape.
    edge: bool,
    /// At most 64 voxels (for cases with very many channels).
    tiny: bool,
    /// Default mask options (no `--policy` etc.).
    plain_options: bool,
}

fn random_compression(rng: &mut Rng) -> Compression {
    match rng.below(20) {
        0..=6 => Compression::Raw,
        7..=10 => Compression::Gzip,
        11..=14 => Compression::Zstd,
        15..=17 => Compression::BloscLz4,
        _ => Compression::BloscZstd,
    }
}

fn dtype_of(rng: &mut Rng) -> LabelDtype {
    rng.pick(&LabelDtype::ALL)
}

fn label_crop(rng: &mut Rng, dir: &Path, g: CropGen) -> LabelCrop {
    let dims = match rng.below(10) {
        0 => 2,
        1 => 4,
        _ => 3,
    };
    let mut shape: Vec<u64> = (0..dims)
        .map(|_| match dims {
            2 => rng.range(1, 40),
            3 => rng.range(1, 20),
            _ => rng.range(1, 7),
        })
        .collect();
    let mut chunks: Vec<u64> = shape
        .iter()
        .map(|_| match dims {
            4 => rng.range(1, 4),
            _ if rng.chance(0.6) => 8,
            _ => rng.range(1, 8),
        })
        .collect();
    if g.edge {
        let c = chunks[0].max(2);
        chunks[0] = c;
        shape[0] = c * rng.range(1, 2) + rng.range(1, c - 1);
    }
    if g.tiny {
        shape = vec![rng.range(1, 4), rng.range(1, 4), rng.range(1, 4)];
        chunks = vec![rng.range(1, 4), rng.range(1, 4), rng.range(1, 4)];
    }
    let dims = shape.len();
    let dtype = dtype_of(rng);
    let format = if rng.chance(0.5) {
        ZarrFormat::V2
    } else {
        ZarrFormat::V3
    };
    let compression = g.compression.unwrap_or_else(|| random_compression(rng));
    let palette: Vec<u64> = (0..rng.range(2, 6))
        .map(|_| {
            if rng.chance(0.85) {
                rng.pick(&RAW_IDS)
            } else {
                rng.next()
            }
        })
        .collect();
    let n: usize = shape.iter().product::<u64>() as usize;
    let raw: Vec<u64> = (0..n)
        .map(|_| {
            if rng.chance(0.85) {
                rng.pick(&palette)
            } else {
                rng.next()
            }
        })
        .collect();
    let bits: Vec<u64> = raw.iter().map(|&r| voxel_bits(dtype, r)).collect();
    let mut pool: Vec<u64> = palette.iter().map(|&r| voxel_bits(dtype, r)).collect();
    for _ in 0..rng.range(0, 3) {
        pool.push(voxel_bits(dtype, rng.pick(&RAW_IDS)));
    }
    pool.push(rng.pick(&RAW_IDS));
    pool.sort_unstable();
    pool.dedup();
    let mut entries: Vec<(u64, usize, usize)> = Vec::new();
    for &id in &pool {
        if rng.chance(0.8) {
            entries.push((id, rng.index(3), rng.index(4)));
        }
    }
    let labels = common::labels_attr(&entries);
    let voxel_size: Vec<i64> = (0..dims).map(|_| rng.pick(&[1, 2, 4, 8])).collect();
    let offset: Vec<i64> = voxel_size
        .iter()
        .map(|&v| v * (rng.range(0, 6) as i64 - 3))
        .collect();
    let mut attrs = Map::new();
    attrs.insert("labels".into(), labels);
    attrs.insert("voxel_size".into(), json!(voxel_size));
    attrs.insert("offset".into(), json!(offset));
    if dims == 3 && rng.chance(0.5) {
        attrs.insert("axis_names".into(), json!(["z", "y", "x"]));
        attrs.insert("units".into(), json!(["nm", "nm", "nm"]));
    }
    let container = dir.join("in").join("crop.zarr");
    annomask::zarr_array::create_group(&container, format, &Map::new()).unwrap();
    let path = container.join("labels");
    let shape_usize: Vec<usize> = shape.iter().map(|&s| s as usize).collect();
    let array = common::labels_of(dtype, &shape_usize, &raw);
    annomask::synth::write_labels(&path, &array, &chunks, format, compression, attrs.clone())
        .unwrap();

    let nch = if rng.chance(0.1) {
        rng.range(5, 12)
    } else {
        rng.range(1, 4)
    } as usize;
    let names: Vec<String> = (0..nch)
        .map(|i| format!("{}{i}", rng.pick(&CHANNEL_NAMES)))
        .collect();
    let channels: Vec<Vec<u64>> = (0..nch)
        .map(|_| {
            (0..rng.range(0, 3))
                .map(|_| {
                    if rng.chance(0.85) {
                        rng.pick(&pool)
                    } else {
                        rng.pick(&RAW_IDS)
                    }
                })
                .collect()
        })
        .collect();
    let groupings = write_groupings(rng, dir, &names, &channels);
    let (mut per_voxel, mut sparse_missing, mut background) = (false, true, 0u64);
    let mut mask_args = Vec::new();
    if !g.plain_options {
        if rng.chance(0.5) {
            per_voxel = rng.chance(0.6);
            let p = if per_voxel {
                "per-voxel"
            } else {
                "whole-channel"
            };
            mask_args.extend(["--policy".to_string(), p.to_string()]);
        }
        if rng.chance(0.3) {
            sparse_missing = rng.chance(0.4);
            let p = if sparse_missing {
                "missing"
            } else {
                "annotated"
            };
            mask_args.extend(["--sparse".to_string(), p.to_string()]);
        }
        if rng.chance(0.3) {
            background = if rng.chance(0.7) {
                rng.pick(&pool)
            } else {
                u64::MAX
            };
            mask_args.extend(["--background".to_string(), background.to_string()]);
        }
    }
    let crop = LabelCrop {
        path,
        format,
        compression,
        dtype,
        shape,
        chunks,
        bits,
        attrs,
        voxel_size,
        offset,
        pool,
        names,
        channels,
        groupings,
        per_voxel,
        sparse_missing,
        background,
        mask_args,
    };
    // The oracle's own reader agrees with what was written (else this suite is wrong).
    if matches!(crop.compression, Compression::Raw | Compression::Gzip) {
        let zero = vec![0; dims];
        match decode_region(&crop.path, &zero, &crop.shape) {
            Decoded::Labels(b) => assert_eq!(b, crop.bits, "the oracle's reader disagrees"),
            _ => panic!("the oracle's reader cannot read a fresh crop"),
        }
    }
    crop
}

/// Writes groupings as a JSON list (mostly), a JSON object or TOML; returns the file.
fn write_groupings(rng: &mut Rng, dir: &Path, names: &[String], channels: &[Vec<u64>]) -> PathBuf {
    let list: Vec<Value> = names
        .iter()
        .zip(channels)
        .map(|(n, ids)| json!([n, ids]))
        .collect();
    let toml_ok = channels.iter().flatten().all(|&id| id <= i64::MAX as u64);
    match rng.below(10) {
        0 if toml_ok => {
            let path = dir.join("groupings.toml");
            let text = format!("# fuzz\ngroupings = {}\n", Value::Array(list));
            std::fs::write(&path, text).unwrap();
            path
        }
        1 => {
            let path = dir.join("groupings.json");
            std::fs::write(&path, json!({ "groupings": list }).to_string()).unwrap();
            path
        }
        _ => {
            let path = dir.join("groupings.json");
            std::fs::write(&path, Value::Array(list).to_string()).unwrap();
            path
        }
    }
}

/// The file holding an array's or group's attributes: `.zattrs` (v2) or `zarr.json` (v3).
fn attrs_file(dir: &Path, format: ZarrFormat) -> PathBuf {
    match format {
        ZarrFormat::V2 => dir.join(".zattrs"),
        ZarrFormat::V3 => dir.join("zarr.json"),
    }
}

fn load_attrs(dir: &Path, format: ZarrFormat) -> Map<String, Value> {
    let text = std::fs::read(attrs_file(dir, format)).unwrap_or_default();
    let v: Value = serde_json::from_slice(&text).unwrap_or(json!({}));
    match format {
        ZarrFormat::V2 => v.as_object().cloned().unwrap_or_default(),
        ZarrFormat::V3 => v["attributes"].as_object().cloned().unwrap_or_default(),
    }
}

/// Writes attributes; `inject` replaces the JSON string `"@@INJECT@@"` by raw text.
fn save_attrs(dir: &Path, format: ZarrFormat, attrs: &Map<String, Value>, inject: Option<&str>) {
    let path = attrs_file(dir, format);
    let doc = match format {
        ZarrFormat::V2 => Value::Object(attrs.clone()),
        ZarrFormat::V3 => {
            let mut doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            doc["attributes"] = Value::Object(attrs.clone());
            doc
        }
    };
    let mut text = serde_json::to_string_pretty(&doc).unwrap();
    if let Some(raw) = inject {
        text = text.replacen("\"@@INJECT@@\"", raw, 1);
    }
    std::fs::write(path, text).unwrap();
}

/// The array metadata file: `.zarray` (v2) or `zarr.json` (v3).
fn meta_file(dir: &Path, format: ZarrFormat) -> PathBuf {
    match format {
        ZarrFormat::V2 => dir.join(".zarray"),
        ZarrFormat::V3 => dir.join("zarr.json"),
    }
}

/// The voxels of `start..start+size` of a C-order volume of `shape`.
fn region_of(bits: &[u64], shape: &[u64], start: &[u64], size: &[u64]) -> Vec<u64> {
    let n = shape.len();
    let total: u64 = size.iter().product();
    let mut out = Vec::with_capacity(total as usize);
    for flat in 0..total {
        let mut rest = flat;
        let mut at = 0u64;
        let mut coord = vec![0u64; n];
        for d in (0..n).rev() {
            coord[d] = start[d] + rest % size[d];
            rest /= size[d];
        }
        for d in 0..n {
            at = at * shape[d] + coord[d];
        }
        out.push(bits[at as usize]);
    }
    out
}

/// The chunk files of `crop` as written (v2 `i/j/k`, v3 `c/i/j/k`).
fn chunk_files(crop: &LabelCrop) -> Vec<PathBuf> {
    let mut out = Vec::new();
    fn walk(p: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(p) else { return };
        for e in rd.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                walk(&path, out);
            } else if name.chars().all(|c| c.is_ascii_digit()) {
                out.push(path);
            }
        }
    }
    walk(&crop.path, &mut out);
    out.sort();
    out
}

/// The key of chunk `idx` as `crop` was written.
fn original_key(crop: &LabelCrop, idx: &[u64]) -> String {
    let mut key: Vec<String> = idx.iter().map(u64::to_string).collect();
    if crop.format == ZarrFormat::V3 {
        key.insert(0, "c".into());
    }
    key.join("/")
}

/// What was written in a region, chunks without a file (all fill, so never stored) read as
/// `fill` (`None`: unknown).
fn known_region(
    crop: &LabelCrop,
    start: &[u64],
    size: &[u64],
    fill: Option<u64>,
) -> Option<Vec<u64>> {
    let n = crop.shape.len();
    let mut bits = region_of(&crop.bits, &crop.shape, start, size);
    let total: u64 = size.iter().product();
    let mut exists: HashMap<Vec<u64>, bool> = HashMap::new();
    for flat in 0..total {
        let mut rest = flat;
        let mut coord = vec![0u64; n];
        for d in (0..n).rev() {
            coord[d] = start[d] + rest % size[d];
            rest /= size[d];
        }
        let idx: Vec<u64> = coord.iter().zip(&crop.chunks).map(|(c, k)| c / k).collect();
        let there = *exists
            .entry(idx.clone())
            .or_insert_with(|| crop.path.join(original_key(crop, &idx)).exists());
        if !there {
            bits[flat as usize] = fill?;
        }
    }
    Some(bits)
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        let t = to.join(e.file_name());
        if p.is_dir() {
            copy_tree(&p, &t);
        } else {
            std::fs::copy(&p, &t).unwrap();
        }
    }
}

/// `compute` arguments: engine cpu unless `default_engine`, quiet half the time.
fn compute_args(
    rng: &mut Rng,
    input: &Path,
    groupings: &Path,
    out: &Path,
    extra: &[String],
    default_engine: bool,
) -> Vec<String> {
    let mut a = vec!["compute".to_string(), input.display().to_string()];
    a.extend(["--groupings".to_string(), groupings.display().to_string()]);
    a.extend(["--out".to_string(), out.display().to_string()]);
    if !default_engine {
        a.extend(["--engine".to_string(), "cpu".to_string()]);
    }
    if rng.chance(0.5) {
        a.push("--quiet".into());
    }
    a.extend(extra.iter().cloned());
    a
}

/// The mask check of a label-array case over the voxel box `start + size`.
#[allow(clippy::too_many_arguments)]
fn label_check(
    out: PathBuf,
    size: &[u64],
    labels: Option<Vec<u64>>,
    channels: Option<&[Vec<u64>]>,
    missing: Option<&BTreeSet<u64>>,
    background: u64,
    per_voxel: bool,
) -> Check {
    let shape = channels.map(|c| {
        let mut s = vec![c.len() as u64];
        s.extend_from_slice(size);
        s
    });
    let data = match (labels, channels, missing) {
        (Some(l), Some(c), Some(m)) => Some(common::oracle(&l, c, m, background, per_voxel)),
        _ => None,
    };
    Check::Mask {
        path: out,
        shape,
        data,
        partial: false,
        alt: None,
    }
}

/// What the oracle knows about the labels of a region of `crop` as they are now on disk:
/// decoded here for raw and gzip chunks, else `known` (what was written, if still meant).
fn truth_of(crop: &LabelCrop, start: &[u64], size: &[u64], known: bool) -> Decoded {
    if matches!(crop.compression, Compression::Raw | Compression::Gzip) {
        return decode_region(&crop.path, start, size);
    }
    if known {
        Decoded::Labels(region_of(&crop.bits, &crop.shape, start, size))
    } else {
        Decoded::Unsupported("compressed chunks changed".into())
    }
}

/// A run of `inspect` on `input` (any outcome but a crash keeps the contract).
fn inspect_run(rng: &mut Rng, input: &Path, groupings: Option<&Path>, extra: &[String]) -> Run {
    let mut a = vec!["inspect".to_string(), input.display().to_string()];
    if let Some(g) = groupings {
        a.extend(["--groupings".to_string(), g.display().to_string()]);
    }
    let json = rng.chance(0.5);
    if json {
        a.push("--json".into());
    }
    a.extend(extra.iter().cloned());
    Run {
        args: os(&a),
        expect: Expect::Either,
        usage_ok: false,
        json_stdout: json,
    }
}

// ------------------------------------------------------------------------------------------
// Family 1: label metadata
// ------------------------------------------------------------------------------------------

fn family_label_meta(rng: &mut Rng, case: &mut Case) {
    let crop = label_crop(rng, case.dir.path(), CropGen::default());
    let format = crop.format;
    let mut attrs = crop.attrs.clone();
    let mut allow = false;
    // A verdict fixed by the mutation (byte-level changes), else judged from `attrs`.
    let mut fixed: Option<Verdict<BTreeSet<u64>>> = None;
    let mut downgrade = false; // valid by the rules, but a parser may refuse it (depth limits)
    let mut inject: Option<String> = None;
    let mut bytes: Option<Vec<u8>> = None;
    let judge = |attrs: &Map<String, Value>, allow: bool| {
        judge_labels(Some(attrs), allow, crop.sparse_missing)
    };
    let kinds = [
        "remove-labels",
        "labels-wrong-type",
        "entry-random-node",
        "entry-random-node",
        "entry-not-object",
        "value",
        "value-text",
        "state",
        "duplicate",
        "extra-keys",
        "name-weird",
        "deep-nesting",
        "huge-list",
        "huge-string",
        "big-ids",
        "empty-list",
        "truncated-file",
        "invalid-utf8",
        "bom",
        "garbage-file",
        "empty-file",
    ];
    let kind = rng.pick(&kinds);
    let mut labels = attrs["labels"].as_array().cloned().unwrap_or_default();
    if labels.is_empty() {
        labels.push(
            json!({"value": crop.pool[0], "annotationState": {"present": true, "annotated": true}}),
        );
    }
    let i = rng.index(labels.len());
    let detail: String = match kind {
        "remove-labels" => {
            attrs.remove("labels");
            allow = rng.chance(0.5);
            if format == ZarrFormat::V2 && rng.chance(0.3) {
                // No attributes at all.
                std::fs::remove_file(attrs_file(&crop.path, format)).unwrap();
                fixed = Some(judge_labels(None, allow, crop.sparse_missing));
                format!("no .zattrs (allow={allow})")
            } else {
                format!("allow={allow}")
            }
        }
        "labels-wrong-type" => {
            let v = rng.pick(&[
                json!({}),
                json!({"value": 3}),
                json!("labels"),
                json!(5),
                Value::Null,
                json!(true),
                json!({"labels": []}),
            ]);
            allow = rng.chance(0.3);
            let d = format!("labels={v} allow={allow}");
            attrs.insert("labels".into(), v);
            d
        }
        "entry-random-node" => {
            let mut v = Value::Array(labels.clone());
            let d = mutate_json(rng, &mut v, false);
            attrs.insert("labels".into(), v);
            d
        }
        "entry-not-object" => {
            let v = rng.pick(&[
                json!(3),
                json!("mito"),
                Value::Null,
                json!([3, true]),
                json!(false),
            ]);
            let d = format!("labels[{i}]={v}");
            labels.insert(i, v);
            attrs.insert("labels".into(), Value::Array(labels.clone()));
            d
        }
        "value" => {
            let v = rng.pick(&[
                json!(-1),
                json!(3.5),
                json!(3.0),
                json!(1e30),
                json!("3"),
                json!(true),
                Value::Null,
                json!(u64::MAX),
                json!(0),
                json!(i64::MIN),
                json!([3]),
            ]);
            let d = format!("labels[{i}].value={v}");
            labels[i]["value"] = v;
            attrs.insert("labels".into(), Value::Array(labels.clone()));
            d
        }
        "value-text" => {
            let (text, verdict): (&str, Option<u64>) = rng.pick(&[
                ("18446744073709551616", None),
                ("1e400", None),
                ("-0", Some(0)),
                ("1E2", Some(100)),
                ("3.0e0", Some(3)),
                ("0003", None),
                ("0x10", None),
                ("NaN", None),
                ("99999999999999999999999999999999", None),
            ]);
            labels[i]["value"] = json!("@@INJECT@@");
            inject = Some(text.to_string());
            // Another entry may hold the same id: judge with the meaning put back.
            let mut meaning = labels.clone();
            match verdict {
                Some(v) => {
                    meaning[i]["value"] = json!(v);
                    let mut a = attrs.clone();
                    a.insert("labels".into(), Value::Array(meaning));
                    fixed = Some(match judge(&a, false) {
                        Verdict::Valid(m) | Verdict::Open(Some(m)) => Verdict::Open(Some(m)),
                        other => other,
                    });
                }
                None => fixed = Some(Verdict::Invalid("not an id".into())),
            }
            attrs.insert("labels".into(), Value::Array(labels.clone()));
            format!("labels[{i}].value={text}")
        }
        "state" => {
            let state = &mut labels[i]["annotationState"];
            let what = rng.pick(&[
                "remove-state",
                "state-type",
                "remove-present",
                "present-type",
                "remove-annotated",
                "annotated-string",
                "annotated-type",
                "sparse-type",
                "sparse-null",
            ]);
            let v = hostile_value(rng);
            match what {
                "remove-state" => {
                    labels[i].as_object_mut().unwrap().remove("annotationState");
                }
                "state-type" => *state = json!([true, false]),
                "remove-present" => {
                    state.as_object_mut().unwrap().remove("present");
                }
                "present-type" => state["present"] = rng.pick(&[json!("yes"), json!(1), v.clone()]),
                "remove-annotated" => {
                    state.as_object_mut().unwrap().remove("annotated");
                }
                "annotated-string" => {
                    state["annotated"] = json!(rng.pick(&["Dense", "partial", "", "none", "true"]))
                }
                "annotated-type" => {
                    state["annotated"] = rng.pick(&[json!(0), json!(1), Value::Null, v.clone()])
                }
                "sparse-type" => state["sparse"] = rng.pick(&[json!("yes"), json!(1), v.clone()]),
                _ => state["sparse"] = Value::Null,
            }
            attrs.insert("labels".into(), Value::Array(labels.clone()));
            format!("labels[{i}] {what}")
        }
        "duplicate" => {
            let mut dup = labels[i].clone();
            let how = rng.pick(&["identical", "conflicting", "subtle", "renamed"]);
            match how {
                "identical" => {}
                "conflicting" => {
                    let s = &mut dup["annotationState"];
                    s["present"] = json!(true);
                    s["annotated"] = if s["annotated"] == json!(false) {
                        json!(true)
                    } else {
                        json!(false)
                    };
                }
                "subtle" => {
                    let s = &mut dup["annotationState"];
                    if s.get("sparse").is_some() {
                        s.as_object_mut().unwrap().remove("sparse");
                    } else {
                        s["sparse"] = json!(false);
                    }
                }
                _ => dup["name"] = json!("another name"),
            }
            let at = rng.index(labels.len() + 1);
            labels.insert(at, dup);
            attrs.insert("labels".into(), Value::Array(labels.clone()));
            format!("labels[{i}] {how} at {at}")
        }
        "extra-keys" => {
            labels[i]["count"] = hostile_value(rng);
            labels[i]["comment"] = hostile_value(rng);
            labels[i]["annotationState"]["reviewed"] = hostile_value(rng);
            attrs.insert("labels".into(), Value::Array(labels.clone()));
            attrs.insert("labelz".into(), hostile_value(rng));
            "count, comment, reviewed, labelz".into()
        }
        "name-weird" => {
            let v = rng.pick(&[
                json!({"long": 5, "short": null}),
                json!({}),
                json!(["a"]),
                json!(42),
                Value::Null,
                json!("\u{0}\n\t☃"),
                json!({"long": "x".repeat(10_000)}),
            ]);
            let d = format!(
                "labels[{i}].name={}",
                v.to_string().chars().take(40).collect::<String>()
            );
            labels[i]["name"] = v;
            attrs.insert("labels".into(), Value::Array(labels.clone()));
            d
        }
        "deep-nesting" => {
            let depth = rng.pick(&[200usize, 1000, 100_000]);
            let deep = if rng.chance(0.3) {
                // {"a": {"a": ...}}
                let mut s = String::new();
                for _ in 0..depth {
                    s.push_str("{\"a\":");
                }
                s.push('1');
                for _ in 0..depth {
                    s.push('}');
                }
                s
            } else {
                deep_json(depth, '[', ']')
            };
            let place = rng.pick(&["labels", "extra", "name"]);
            match place {
                "labels" => {
                    attrs.insert("labels".into(), json!("@@INJECT@@"));
                    fixed = Some(Verdict::Invalid("labels is not a list of entries".into()));
                }
                "extra" => {
                    attrs.insert("nested".into(), json!("@@INJECT@@"));
                    downgrade = true;
                }
                _ => {
                    labels[i]["name"] = json!("@@INJECT@@");
                    attrs.insert("labels".into(), Value::Array(labels.clone()));
                    downgrade = true;
                }
            }
            inject = Some(deep);
            format!("depth {depth} in {place}")
        }
        "huge-list" => {
            let n = rng.range(20_000, 100_000);
            let mut list = Vec::with_capacity(n as usize);
            let base = rng.next() >> 2;
            for k in 0..n {
                list.push(json!({"value": base + k, "annotationState": {"present": k % 3 == 0, "annotated": k % 2 == 0}}));
            }
            list.extend(labels.iter().cloned());
            attrs.insert("labels".into(), Value::Array(list));
            format!("{n} extra entries")
        }
        "huge-string" => {
            let n = rng.range(1 << 20, 8 << 20) as usize;
            labels[i]["name"] = json!("n".repeat(n));
            attrs.insert("labels".into(), Value::Array(labels.clone()));
            format!("name of {n} bytes")
        }
        "big-ids" => {
            for id in [u64::MAX, 1 << 63, (1 << 32) + 1, u64::MAX - 1] {
                if !labels.iter().any(|e| e["value"] == json!(id)) {
                    labels.push(json!({"value": id, "annotationState": {"present": true, "annotated": rng.chance(0.5)}}));
                }
            }
            attrs.insert("labels".into(), Value::Array(labels.clone()));
            "2^64-1, 2^63, 2^32+1, 2^64-2".into()
        }
        "empty-list" => {
            attrs.insert("labels".into(), json!([]));
            "labels=[]".into()
        }
        _ => {
            // Byte-level changes of the attributes file.
            save_attrs(&crop.path, format, &attrs, None);
            let file = attrs_file(&crop.path, format);
            let original = std::fs::read(&file).unwrap();
            let (b, verdict) = match kind {
                "truncated-file" => (
                    truncate_json(rng, &original),
                    Verdict::Invalid("truncated".into()),
                ),
                "invalid-utf8" => (
                    break_utf8(rng, &original),
                    Verdict::Invalid("not UTF-8".into()),
                ),
                "bom" => {
                    let mut b = vec![0xef, 0xbb, 0xbf];
                    b.extend_from_slice(&original);
                    (
                        b,
                        match judge(&attrs, false) {
                            Verdict::Valid(m) => Verdict::Open(Some(m)),
                            other => other,
                        },
                    )
                }
                "garbage-file" => {
                    let n = rng.range(1, 200) as usize;
                    (rng.bytes(n), Verdict::Invalid("garbage".into()))
                }
                _ => (Vec::new(), Verdict::Invalid("empty".into())),
            };
            bytes = Some(b);
            fixed = Some(verdict);
            String::new()
        }
    };
    match bytes {
        Some(b) => std::fs::write(attrs_file(&crop.path, format), b).unwrap(),
        None => {
            if !(kind == "remove-labels" && fixed.is_some()) {
                save_attrs(&crop.path, format, &attrs, inject.as_deref());
            }
        }
    }
    let verdict = fixed.unwrap_or_else(|| match judge(&attrs, allow) {
        Verdict::Valid(m) if downgrade => Verdict::Open(Some(m)),
        v => v,
    });
    case.mutation(format!(
        "{kind} v{} {}",
        format.number(),
        detail.chars().take(80).collect::<String>()
    ));
    finish_label_case(rng, case, &crop, verdict, allow, true);
}

/// The runs and check of a label-array case whose only change is `verdict` on its metadata.
fn finish_label_case(
    rng: &mut Rng,
    case: &mut Case,
    crop: &LabelCrop,
    verdict: Verdict<BTreeSet<u64>>,
    allow: bool,
    untouched: bool,
) {
    if let Verdict::Invalid(why) = &verdict {
        case.mutation(format!("(invalid: {why})"));
    }
    case.guarded = vec![crop.path.clone(), crop.groupings.clone()];
    if rng.chance(0.12) {
        let mut extra = crop.mask_args.clone();
        if allow {
            extra.push("--allow-missing-metadata".into());
        }
        case.runs
            .push(inspect_run(rng, &crop.path, Some(&crop.groupings), &extra));
        case.mutation("inspect");
        return;
    }
    let out = case.path("out.zarr");
    let mut extra = crop.mask_args.clone();
    if allow {
        extra.push("--allow-missing-metadata".into());
    }
    let default_engine = rng.chance(0.02);
    if default_engine {
        case.mutation("default-engine");
    }
    let args = compute_args(
        rng,
        &crop.path,
        &crop.groupings,
        &out,
        &extra,
        default_engine,
    );
    case.runs.push(Run {
        args: os(&args),
        expect: verdict.expect(),
        usage_ok: false,
        json_stdout: false,
    });
    let zero = vec![0; crop.shape.len()];
    let labels = match truth_of(crop, &zero, &crop.shape, true) {
        Decoded::Labels(l) => Some(l),
        _ => None,
    };
    let missing = verdict.meaning();
    case.check = label_check(
        out.clone(),
        &crop.shape,
        labels,
        Some(&crop.channels),
        missing.as_ref(),
        crop.background,
        crop.per_voxel,
    );
    if untouched {
        case.untouched_on_error = Some(out);
    }
}

// ------------------------------------------------------------------------------------------
// Family 2: array metadata
// ------------------------------------------------------------------------------------------

/// The v2 compressor / v3 codec list of `c` for `dtype`.
fn codec_json(c: Compression, format: ZarrFormat, width: usize) -> Value {
    match format {
        ZarrFormat::V2 => match c {
            Compression::Raw => Value::Null,
            Compression::Gzip => json!({"id": "gzip", "level": 5}),
            Compression::Zstd => json!({"id": "zstd", "level": 3}),
            Compression::BloscLz4 => {
                json!({"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0})
            }
            Compression::BloscZstd => {
                json!({"id": "blosc", "cname": "zstd", "clevel": 5, "shuffle": 1, "blocksize": 0})
            }
        },
        ZarrFormat::V3 => {
            let mut v = vec![json!({"name": "bytes", "configuration": {"endian": "little"}})];
            match c {
                Compression::Raw => {}
                Compression::Gzip => v.push(json!({"name": "gzip", "configuration": {"level": 5}})),
                Compression::Zstd => v.push(
                    json!({"name": "zstd", "configuration": {"level": 3, "checksum": false}}),
                ),
                Compression::BloscLz4 | Compression::BloscZstd => {
                    let cname = if c == Compression::BloscLz4 {
                        "lz4"
                    } else {
                        "zstd"
                    };
                    v.push(json!({"name": "blosc", "configuration": {"cname": cname,
                        "clevel": 5, "shuffle": "shuffle", "typesize": width, "blocksize": 0}}))
                }
            }
            Value::Array(v)
        }
    }
}

fn v2_dtype(d: LabelDtype, big: bool) -> String {
    let (k, w) = (if d.is_signed() { 'i' } else { 'u' }, d.size());
    let order = if w == 1 {
        '|'
    } else if big {
        '>'
    } else {
        '<'
    };
    format!("{order}{k}{w}")
}

fn family_array_meta(rng: &mut Rng, case: &mut Case) {
    let crop = label_crop(rng, case.dir.path(), CropGen::default());
    let format = crop.format;
    let file = meta_file(&crop.path, format);
    let mut doc: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let dims = crop.shape.len();
    let chunks_ptr = match format {
        ZarrFormat::V2 => "/chunks",
        ZarrFormat::V3 => "/chunk_grid/configuration/chunk_shape",
    };
    let dtype_ptr = match format {
        ZarrFormat::V2 => "/dtype",
        ZarrFormat::V3 => "/data_type",
    };
    let codec_ptr = match format {
        ZarrFormat::V2 => "/compressor",
        ZarrFormat::V3 => "/codecs",
    };
    let width = crop.dtype.size();
    let huge = [1u64 << 40, (1 << 62) + 1, 1 << 63, u64::MAX, (1 << 53) + 1];
    // What the run must do, whether the oracle may read the region itself, and the region.
    let mut expect = Expect::Either;
    let mut region: Option<Vec<u64>> = None; // None: the whole (mutated) array
    let mut roi = false;
    let mut decode = true; // judge success with the oracle's reader (raw/gzip) ...
    let mut known = false; // ... or, for other codecs, with what was written
    let mut raw_text: Option<Vec<u8>> = None;
    let kind = rng.pick(&[
        "shape-zero",
        "shape-huge-roi",
        "shape-overflow",
        "shape-bigger",
        "shape-smaller",
        "shape-dims",
        "shape-type",
        "chunks-zero",
        "chunks-huge",
        "chunks-overflow",
        "chunks-changed",
        "chunks-dims",
        "chunks-type",
        "dtype-reinterpret",
        "dtype-width",
        "dtype-unsupported",
        "fill-value",
        "codec-unknown",
        "codec-config",
        "codec-swap",
        "truncated-json",
        "invalid-utf8",
        "garbage",
        "empty-file",
        "missing-key",
        "dims-out-of-range",
        "separator",
        "zarr-format",
        "random-node",
        "random-node",
    ]);
    let axis = rng.index(dims);
    let detail: String = match kind {
        "shape-zero" => {
            doc["shape"][axis] = json!(0);
            format!("shape[{axis}]=0")
        }
        "shape-huge-roi" => {
            let h = rng.pick(&huge);
            doc["shape"][axis] = json!(h);
            region = Some(crop.shape.clone());
            roi = true;
            known = true;
            let mut s = crop.shape.clone();
            s[axis] = h;
            if s.iter().try_fold(1u64, |a, &x| a.checked_mul(x)).is_none() {
                // docs/cli.md: a shape of more than 2^64 voxels is refused.
                expect = Expect::Fail;
            }
            format!("shape[{axis}]={h} with a ROI over the data")
        }
        "shape-overflow" => {
            let h = rng.pick(&[1u64 << 40, u64::MAX, (1 << 62) + 1]);
            for d in 0..dims.max(2) {
                if d < dims {
                    doc["shape"][d] = json!(h);
                }
            }
            expect = Expect::Fail;
            format!("every axis {h}")
        }
        "shape-bigger" => {
            let mut s = crop.shape.clone();
            s[axis] += rng.range(1, 10);
            doc["shape"] = json!(s);
            expect = Expect::Succeed;
            format!("shape {s:?}")
        }
        "shape-smaller" => {
            let mut s = crop.shape.clone();
            s[axis] = rng.range(1, s[axis]);
            doc["shape"] = json!(s);
            expect = Expect::Succeed;
            known = true;
            format!("shape {s:?}")
        }
        "shape-dims" => {
            let mut s = crop.shape.clone();
            if rng.chance(0.5) && dims > 2 {
                s.pop();
            } else {
                s.push(rng.range(1, 4));
            }
            doc["shape"] = json!(s);
            expect = Expect::Fail;
            format!("shape {s:?}")
        }
        "shape-type" => {
            let v = rng.pick(&[
                json!("8,8,8"),
                json!({"z": 8}),
                Value::Null,
                json!(8),
                json!(
                    crop.shape
                        .iter()
                        .map(|&s| -(s as i64) - 1)
                        .collect::<Vec<_>>()
                ),
                json!(
                    crop.shape
                        .iter()
                        .map(|&s| s as f64 + 0.5)
                        .collect::<Vec<_>>()
                ),
                json!(
                    crop.shape
                        .iter()
                        .map(|&s| s.to_string())
                        .collect::<Vec<_>>()
                ),
            ]);
            let d = format!("shape={v}");
            doc["shape"] = v;
            expect = Expect::Fail;
            d
        }
        "chunks-zero" => {
            *doc.pointer_mut(chunks_ptr).unwrap().get_mut(axis).unwrap() = json!(0);
            expect = Expect::Fail;
            format!("chunks[{axis}]=0")
        }
        "chunks-huge" => {
            let h = rng.pick(&huge);
            *doc.pointer_mut(chunks_ptr).unwrap().get_mut(axis).unwrap() = json!(h);
            format!("chunks[{axis}]={h}")
        }
        "chunks-overflow" => {
            let h = rng.pick(&[1u64 << 40, u64::MAX, 1 << 32]);
            *doc.pointer_mut(chunks_ptr).unwrap() = json!(vec![h; dims]);
            format!("chunks all {h}")
        }
        "chunks-changed" => {
            let mut c = crop.chunks.clone();
            c[axis] = if c[axis] > 1 && rng.chance(0.5) {
                rng.range(1, c[axis] - 1)
            } else {
                c[axis] + rng.range(1, 8)
            };
            *doc.pointer_mut(chunks_ptr).unwrap() = json!(c);
            format!("chunks {c:?}")
        }
        "chunks-dims" => {
            let mut c = crop.chunks.clone();
            if rng.chance(0.5) {
                c.pop();
            } else {
                c.push(1);
            }
            *doc.pointer_mut(chunks_ptr).unwrap() = json!(c);
            expect = Expect::Fail;
            format!("chunks {c:?}")
        }
        "chunks-type" => {
            let v = rng.pick(&[
                json!("8"),
                Value::Null,
                json!([-8, 8, 8]),
                json!({}),
                json!([8.5, 8, 8]),
                json!(true),
            ]);
            let d = format!("chunks={v}");
            *doc.pointer_mut(chunks_ptr).unwrap() = v;
            expect = Expect::Fail;
            d
        }
        "dtype-reinterpret" => {
            let flipped = LabelDtype::ALL
                .into_iter()
                .find(|d| d.size() == width && d.is_signed() != crop.dtype.is_signed())
                .unwrap();
            let big = width > 1 && rng.chance(0.5);
            match format {
                ZarrFormat::V2 => doc["dtype"] = json!(v2_dtype(flipped, big)),
                ZarrFormat::V3 => {
                    doc["data_type"] = json!(flipped.name());
                    if big {
                        doc["codecs"][0]["configuration"]["endian"] = json!("big");
                    }
                }
            }
            expect = Expect::Succeed;
            format!("{} big-endian={big}", flipped.name())
        }
        "dtype-width" => {
            let other = rng.pick(
                &LabelDtype::ALL
                    .into_iter()
                    .filter(|d| d.size() != width)
                    .collect::<Vec<_>>(),
            );
            match format {
                ZarrFormat::V2 => doc["dtype"] = json!(v2_dtype(other, false)),
                ZarrFormat::V3 => {
                    doc["data_type"] = json!(other.name());
                    // blosc's typesize follows the data type; it does not change the decoding
                }
            }
            other.name().to_string()
        }
        "dtype-unsupported" => {
            let v = match format {
                ZarrFormat::V2 => rng.pick(&[
                    json!("<f4"),
                    json!("<f8"),
                    json!("|b1"),
                    json!("<c8"),
                    json!("|S8"),
                    json!("<M8[ns]"),
                    json!("|O"),
                    json!("<U4"),
                    json!("<u3"),
                    json!("u8"),
                    json!("<u16"),
                    json!([["a", "<u2"]]),
                    json!(8),
                    Value::Null,
                    json!(""),
                ]),
                ZarrFormat::V3 => rng.pick(&[
                    json!("float32"),
                    json!("float64"),
                    json!("bool"),
                    json!("complex64"),
                    json!("string"),
                    json!("r64"),
                    json!("int128"),
                    json!("uint128"),
                    json!("float16"),
                    json!("bfloat16"),
                    json!("UINT8"),
                    json!(8),
                    Value::Null,
                    json!({"name": "uint8"}),
                    json!(""),
                ]),
            };
            let d = format!("dtype={v}");
            *doc.pointer_mut(dtype_ptr).unwrap() = v;
            expect = Expect::Fail;
            d
        }
        "fill-value" => {
            let r = rng.next();
            let v = rng.pick(&[
                json!(0),
                json!(1),
                json!(r & 0x7f),
                json!(-1),
                json!(300),
                json!(u64::MAX),
                json!("NaN"),
                Value::Null,
                json!(1.5),
                json!([0]),
            ]);
            let fits =
                fill_bits(Some(&v), width, crop.dtype.is_signed()).is_ok_and(|f| f.is_some());
            if fits {
                expect = Expect::Succeed;
            }
            let d = format!("fill_value={v}");
            doc["fill_value"] = v;
            known = true;
            d
        }
        "codec-unknown" => {
            let d;
            match format {
                ZarrFormat::V2 => {
                    if rng.chance(0.5) {
                        let id = rng.pick(&["nope", "lzma2", "zfpy-x", ""]);
                        doc["compressor"] = json!({"id": id});
                        d = format!("compressor {id}");
                    } else {
                        doc["filters"] = json!([{"id": "nope"}]);
                        d = "filter nope".into();
                    }
                }
                ZarrFormat::V3 => {
                    let name = rng.pick(&["nope", "gzipx", "", "numcodecs.nope"]);
                    let codecs = doc["codecs"].as_array_mut().unwrap();
                    let at = rng.range(1, codecs.len() as u64) as usize;
                    codecs.insert(at, json!({"name": name, "configuration": {}}));
                    d = format!("codec {name:?} at {at}");
                }
            }
            expect = Expect::Fail;
            d
        }
        "codec-config" => {
            let v = hostile_value(rng);
            let d;
            match (format, crop.compression) {
                (ZarrFormat::V3, Compression::Raw) | (ZarrFormat::V3, _) if rng.chance(0.3) => {
                    // The bytes codec's endianness: only "little" and "big" exist.
                    let e = rng.pick(&[
                        json!("middle"),
                        json!(""),
                        json!(1),
                        Value::Null,
                        json!("LITTLE"),
                    ]);
                    d = format!("bytes endian={e}");
                    doc["codecs"][0]["configuration"]["endian"] = e;
                    if width > 1 {
                        expect = Expect::Fail;
                    }
                    known = true;
                }
                (ZarrFormat::V2, Compression::Raw) | (ZarrFormat::V3, Compression::Raw) => {
                    d = "none (raw)".into();
                    known = true;
                    expect = Expect::Succeed;
                }
                (ZarrFormat::V2, _) => {
                    let comp = doc["compressor"].as_object_mut().unwrap();
                    let keys: Vec<String> = comp.keys().filter(|k| *k != "id").cloned().collect();
                    let k = rng.pick(&keys);
                    if rng.chance(0.3) {
                        comp.remove(&k);
                        d = format!("compressor.{k} removed");
                    } else {
                        d = format!("compressor.{k}={v}");
                        comp.insert(k, v);
                    }
                    known = true;
                    decode = false;
                }
                (ZarrFormat::V3, _) => {
                    let codec = doc["codecs"][1].as_object_mut().unwrap();
                    if rng.chance(0.2) {
                        codec.remove("configuration");
                        d = "configuration removed".into();
                    } else {
                        let conf = codec["configuration"].as_object_mut().unwrap();
                        let keys: Vec<String> = conf.keys().cloned().collect();
                        let k = rng.pick(&keys);
                        if rng.chance(0.3) {
                            conf.remove(&k);
                            d = format!("{k} removed");
                        } else {
                            d = format!("{k}={v}");
                            conf.insert(k, v);
                        }
                    }
                    known = true;
                    decode = false;
                }
            }
            d
        }
        "codec-swap" => {
            let to = rng.pick(&[
                Compression::Raw,
                Compression::Gzip,
                Compression::Zstd,
                Compression::BloscLz4,
            ]);
            *doc.pointer_mut(codec_ptr).unwrap() = codec_json(to, format, width);
            decode = matches!(to, Compression::Raw | Compression::Gzip);
            if to == crop.compression
                || (to == Compression::BloscLz4 && crop.compression == Compression::BloscZstd)
            {
                // Blosc's header names its compressor: still the same data.
                known = true;
                expect = Expect::Succeed;
            } else if to == Compression::Zstd && !chunk_files(&crop).is_empty() {
                expect = Expect::Fail; // no chunk of another codec starts with zstd's magic
            }
            format!("{} -> {}", crop.compression.name(), to.name())
        }
        "truncated-json" | "invalid-utf8" | "garbage" | "empty-file" => {
            let original = std::fs::read(&file).unwrap();
            raw_text = Some(match kind {
                "truncated-json" => truncate_json(rng, &original),
                "invalid-utf8" => break_utf8(rng, &original),
                "garbage" => {
                    let n = rng.range(1, 300) as usize;
                    rng.bytes(n)
                }
                _ => Vec::new(),
            });
            expect = Expect::Fail;
            String::new()
        }
        "missing-key" => {
            let keys: &[&str] = match format {
                ZarrFormat::V2 => &[
                    "zarr_format",
                    "shape",
                    "chunks",
                    "dtype",
                    "compressor",
                    "fill_value",
                    "order",
                    "filters",
                    "dimension_separator",
                ],
                ZarrFormat::V3 => &[
                    "zarr_format",
                    "node_type",
                    "shape",
                    "data_type",
                    "chunk_grid",
                    "chunk_key_encoding",
                    "fill_value",
                    "codecs",
                ],
            };
            let k = rng.pick(keys);
            doc.as_object_mut().unwrap().remove(k);
            if [
                "zarr_format",
                "node_type",
                "shape",
                "chunks",
                "dtype",
                "data_type",
                "chunk_grid",
                "codecs",
            ]
            .contains(&k)
            {
                expect = Expect::Fail;
            }
            if k == "dimension_separator" {
                // v2's default separator is ".": no chunk is found, every voxel is the fill value
                expect = Expect::Succeed;
            }
            known = ![
                "dimension_separator",
                "chunk_key_encoding",
                "compressor",
                "fill_value",
            ]
            .contains(&k);
            decode = k != "chunk_key_encoding";
            format!("no {k}")
        }
        "dims-out-of-range" => {
            let (s, c): (Vec<u64>, Vec<u64>) = match rng.below(3) {
                0 => (vec![crop.shape.iter().product()], vec![8]),
                1 => (vec![], vec![]),
                _ => {
                    let mut s = vec![1; 6 - dims.min(5)];
                    s.extend(&crop.shape);
                    let mut c = vec![1; 6 - dims.min(5)];
                    c.extend(&crop.chunks);
                    (s, c)
                }
            };
            doc["shape"] = json!(s);
            *doc.pointer_mut(chunks_ptr).unwrap() = json!(c);
            expect = Expect::Fail;
            format!("shape {s:?}")
        }
        "separator" => {
            match format {
                ZarrFormat::V2 => doc["dimension_separator"] = json!("."),
                ZarrFormat::V3 => {
                    if rng.chance(0.5) {
                        doc["chunk_key_encoding"] =
                            json!({"name": "default", "configuration": {"separator": "."}});
                    } else {
                        doc["chunk_key_encoding"] = json!({"name": "v2", "configuration": {"separator": rng.pick(&["/", "."])}});
                    }
                }
            }
            expect = Expect::Succeed;
            "no chunk under the new keys".into()
        }
        "zarr-format" => {
            let v = rng.pick(&[
                json!(4),
                json!(1),
                json!("2"),
                Value::Null,
                json!(match format {
                    ZarrFormat::V2 => 3,
                    ZarrFormat::V3 => 2,
                }),
            ]);
            let d = format!("zarr_format={v}");
            doc["zarr_format"] = v;
            expect = Expect::Fail;
            d
        }
        _ => {
            // A random node of the metadata (v3 attributes left alone: family 1's).
            let attributes = doc.as_object_mut().unwrap().remove("attributes");
            let d = mutate_json(rng, &mut doc, false);
            if let Some(a) = attributes {
                doc["attributes"] = a;
            }
            d
        }
    };
    match raw_text {
        Some(b) => std::fs::write(&file, b).unwrap(),
        None => std::fs::write(&file, serde_json::to_string_pretty(&doc).unwrap()).unwrap(),
    }
    case.mutation(format!(
        "{kind} v{} {} {}",
        format.number(),
        crop.compression.name(),
        detail.chars().take(80).collect::<String>()
    ));
    case.guarded = vec![crop.path.clone(), crop.groupings.clone()];
    if rng.chance(0.1) {
        case.runs.push(inspect_run(
            rng,
            &crop.path,
            Some(&crop.groupings),
            &crop.mask_args,
        ));
        case.mutation("inspect");
        return;
    }
    // The region computed and what the oracle knows of it.
    let mutated_shape = json_u64_list(doc.get("shape")).filter(|s| s.len() == dims);
    let size: Option<Vec<u64>> = region.clone().or(mutated_shape);
    let mut extra = crop.mask_args.clone();
    if roi {
        let size = region.as_ref().unwrap();
        let begin: Vec<String> = crop.offset.iter().map(i64::to_string).collect();
        let end: Vec<String> = (0..dims)
            .map(|d| (crop.offset[d] + crop.voxel_size[d] * size[d] as i64).to_string())
            .collect();
        extra.push(format!("--roi={}:{}", begin.join(","), end.join(",")));
    }
    let out = case.path("out.zarr");
    let zero = vec![0u64; dims];
    let truth = match &size {
        Some(size)
            if size
                .iter()
                .try_fold(1u64, |a, &s| a.checked_mul(s))
                .is_some_and(|n| n <= 1 << 20) =>
        {
            let raw_like = matches!(crop.compression, Compression::Raw | Compression::Gzip);
            if decode && (raw_like || kind == "codec-swap") {
                decode_region(&crop.path, &zero, size)
            } else if known && size.iter().zip(&crop.shape).all(|(a, b)| a <= b) {
                let fill = fill_bits(doc.get("fill_value"), width, crop.dtype.is_signed());
                match known_region(&crop, &zero, size, fill.ok().flatten()) {
                    Some(b) => Decoded::Labels(b),
                    None => Decoded::Unsupported("fill needed".into()),
                }
            } else if kind == "separator"
                || (kind == "missing-key" && detail == "no dimension_separator")
            {
                Decoded::Labels(vec![0; size.iter().product::<u64>() as usize])
            } else if kind == "shape-bigger" {
                let bits: Vec<u64> = (0..size.iter().product::<u64>())
                    .map(|flat| {
                        let mut rest = flat;
                        let mut coord = vec![0u64; dims];
                        for d in (0..dims).rev() {
                            coord[d] = rest % size[d];
                            rest /= size[d];
                        }
                        if coord.iter().zip(&crop.shape).all(|(c, s)| c < s) {
                            region_of(&crop.bits, &crop.shape, &coord, &vec![1; dims])[0]
                        } else {
                            0
                        }
                    })
                    .collect();
                Decoded::Labels(bits)
            } else {
                Decoded::Unsupported("not decoded".into())
            }
        }
        _ => Decoded::Unsupported("no region".into()),
    };
    let labels = match truth {
        Decoded::Labels(l) => Some(l),
        Decoded::Lenient(l) => {
            expect = expect.max(Expect::Either);
            Some(l)
        }
        Decoded::Corrupt(why) => {
            // A chunk the run needs cannot be decoded under this metadata: no success.
            if expect != Expect::Fail {
                case.mutation(format!(
                    "(oracle: {})",
                    why.chars().take(60).collect::<String>()
                ));
            }
            expect = Expect::Fail;
            None
        }
        Decoded::Unsupported(why) => {
            case.mutation(format!(
                "(no oracle: {})",
                why.chars().take(40).collect::<String>()
            ));
            None
        }
    };
    let missing = judge_labels(Some(&crop.attrs), false, crop.sparse_missing).meaning();
    let args = compute_args(rng, &crop.path, &crop.groupings, &out, &extra, false);
    case.runs.push(Run {
        args: os(&args),
        expect,
        usage_ok: false,
        json_stdout: false,
    });
    case.check = match &size {
        Some(size) => label_check(
            out,
            size,
            labels,
            Some(&crop.channels),
            missing.as_ref(),
            crop.background,
            crop.per_voxel,
        ),
        None => Check::Mask {
            path: out,
            shape: None,
            data: None,
            partial: false,
            alt: None,
        },
    };
}

// ------------------------------------------------------------------------------------------
// Family 3: chunk bytes
// ------------------------------------------------------------------------------------------

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Chunk index of a chunk file path of `crop`.
fn chunk_index(crop: &LabelCrop, file: &Path) -> Vec<u64> {
    file.strip_prefix(&crop.path)
        .unwrap()
        .components()
        .filter_map(|c| c.as_os_str().to_str()?.parse().ok())
        .collect()
}

/// The values of chunk `idx` in C order over the `extent` of the chunk (padding: 0).
fn chunk_values(crop: &LabelCrop, idx: &[u64], extent: &[u64]) -> Vec<u64> {
    let n = crop.shape.len();
    let total: u64 = extent.iter().product();
    (0..total)
        .map(|flat| {
            let mut rest = flat;
            let mut coord = vec![0u64; n];
            for d in (0..n).rev() {
                coord[d] = idx[d] * crop.chunks[d] + rest % extent[d];
                rest /= extent[d];
            }
            if coord.iter().zip(&crop.shape).all(|(c, s)| c < s) {
                region_of(&crop.bits, &crop.shape, &coord, &vec![1; n])[0]
            } else {
                0
            }
        })
        .collect()
}

fn le_bytes(values: &[u64], width: usize) -> Vec<u8> {
    values
        .iter()
        .flat_map(|v| v.to_le_bytes()[..width].to_vec())
        .collect()
}

fn intersects(crop: &LabelCrop, idx: &[u64], start: &[u64], size: &[u64]) -> bool {
    (0..idx.len()).all(|d| {
        let (a, b) = (idx[d] * crop.chunks[d], (idx[d] + 1) * crop.chunks[d]);
        a < start[d] + size[d] && start[d] < b
    })
}

/// A random voxel box of `shape`, and the `--roi` that selects it.
fn random_region(rng: &mut Rng, crop: &LabelCrop) -> (Vec<u64>, Vec<u64>, String) {
    let dims = crop.shape.len();
    let start: Vec<u64> = crop.shape.iter().map(|&s| rng.below(s)).collect();
    let size: Vec<u64> = (0..dims)
        .map(|d| rng.range(1, crop.shape[d] - start[d]))
        .collect();
    let roi = roi_text(crop, &start, &size);
    (start, size, roi)
}

fn roi_text(crop: &LabelCrop, start: &[u64], size: &[u64]) -> String {
    let dims = crop.shape.len();
    let begin: Vec<String> = (0..dims)
        .map(|d| (crop.offset[d] + crop.voxel_size[d] * start[d] as i64).to_string())
        .collect();
    let end: Vec<String> = (0..dims)
        .map(|d| (crop.offset[d] + crop.voxel_size[d] * (start[d] + size[d]) as i64).to_string())
        .collect();
    format!("--roi={}:{}", begin.join(","), end.join(","))
}

fn family_chunks(rng: &mut Rng, case: &mut Case) {
    let kind = if rng.chance(0.04) {
        rng.pick(&["gzip-bomb", "zstd-bomb", "fifo", "dev-zero"])
    } else {
        rng.pick(&[
            "truncate",
            "truncate",
            "truncate",
            "extend",
            "extend",
            "random-bytes",
            "random-bytes",
            "random-bytes",
            "bitflip",
            "bitflip",
            "bitflip",
            "zero-length",
            "zero-length",
            "other-dtype",
            "other-dtype",
            "edge-wrong-size",
            "edge-wrong-size",
            "delete",
            "swap",
            "stray-files",
            "directory",
            "dangling-link",
        ])
    };
    let compression = match kind {
        "gzip-bomb" => Some(Compression::Gzip),
        "zstd-bomb" => Some(Compression::Zstd),
        "other-dtype" | "edge-wrong-size" | "swap" => Some(if rng.chance(0.6) {
            Compression::Raw
        } else {
            Compression::Gzip
        }),
        _ => None,
    };
    let cg = CropGen {
        compression,
        edge: kind == "edge-wrong-size" || rng.chance(0.3),
        ..CropGen::default()
    };
    let crop = label_crop(rng, case.dir.path(), cg);
    let dims = crop.shape.len();
    let width = crop.dtype.size();
    let raw_like = matches!(crop.compression, Compression::Raw | Compression::Gzip);
    let files = chunk_files(&crop);
    let edge_files: Vec<PathBuf> = files
        .iter()
        .filter(|f| {
            let idx = chunk_index(&crop, f);
            (0..dims).any(|d| (idx[d] + 1) * crop.chunks[d] > crop.shape[d])
        })
        .cloned()
        .collect();
    let target = if kind == "edge-wrong-size" && !edge_files.is_empty() {
        rng.pick(&edge_files)
    } else if files.is_empty() {
        crop.path.join(original_key(&crop, &vec![0; dims]))
    } else {
        rng.pick(&files)
    };
    let idx = chunk_index(&crop, &target);
    let existed = target.exists();
    let original = std::fs::read(&target).unwrap_or_default();
    let encode = |raw: Vec<u8>| match crop.compression {
        Compression::Gzip => gzip(&raw),
        _ => raw,
    };
    // Explicit expectation for codecs the oracle cannot decode; for raw and gzip the oracle's
    // reader decides, and this is only a floor.
    let mut floor = Expect::Succeed;
    // zstd / blosc: whether a success must still hold what was written there.
    let mut original_meant = false;
    let mut blind = Expect::Either;
    let write = |p: &Path, b: &[u8]| {
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(p, b).unwrap()
    };
    let detail: String = match kind {
        "truncate" => {
            let len = rng.below(original.len().max(1) as u64) as usize;
            write(&target, &original[..len.min(original.len())]);
            // zstd / blosc: a cut frame cannot decode to the whole chunk (docs/cli.md).
            blind = Expect::Fail;
            format!("{} -> {len} bytes", original.len())
        }
        "extend" => {
            let n = rng.range(1, 64) as usize;
            let mut b = original.clone();
            b.extend(if rng.chance(0.5) {
                vec![0; n]
            } else {
                rng.bytes(n)
            });
            write(&target, &b);
            original_meant = true;
            format!("+{n} bytes")
        }
        "random-bytes" => {
            let exact = (crop.chunks.iter().product::<u64>() as usize) * width;
            let len = match rng.below(3) {
                0 if crop.compression == Compression::Raw => exact,
                1 => rng.range(1, 16) as usize,
                _ => rng.below(2 * original.len().max(8) as u64) as usize,
            };
            write(&target, &rng.bytes(len));
            blind = Expect::Fail; // zstd: no magic; blosc: a header that does not fit the chunk
            format!("{len} random bytes")
        }
        "bitflip" => {
            let mut b = original.clone();
            if b.is_empty() {
                b.push(0);
            }
            let flips = rng.range(1, 8);
            for _ in 0..flips {
                let i = rng.index(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            write(&target, &b);
            format!("{flips} flips")
        }
        "zero-length" => {
            write(&target, &[]);
            blind = Expect::Fail;
            "0 bytes".into()
        }
        "other-dtype" => {
            let other = rng.pick(
                &LabelDtype::ALL
                    .into_iter()
                    .filter(|d| *d != crop.dtype)
                    .collect::<Vec<_>>(),
            );
            let values = chunk_values(&crop, &idx, &crop.chunks);
            write(&target, &encode(le_bytes(&values, other.size())));
            format!("{} bytes in a {} array", other.name(), crop.dtype.name())
        }
        "edge-wrong-size" => {
            let extent: Vec<u64> = (0..dims)
                .map(|d| crop.chunks[d].min(crop.shape[d] - idx[d] * crop.chunks[d]))
                .collect();
            let values = chunk_values(&crop, &idx, &extent);
            write(&target, &encode(le_bytes(&values, width)));
            format!("chunk {idx:?} clipped to {extent:?}")
        }
        "delete" => {
            let _ = std::fs::remove_file(&target);
            blind = Expect::Succeed;
            "removed".into()
        }
        "swap" => {
            if files.len() >= 2 {
                let other = rng.pick(&files);
                let b = std::fs::read(&other).unwrap();
                write(&other, &original);
                write(&target, &b);
                format!("with {}", other.strip_prefix(&crop.path).unwrap().display())
            } else {
                "only one chunk".into()
            }
        }
        "stray-files" => {
            let mut far = vec!["99".to_string()];
            far.extend(std::iter::repeat_n("0".to_string(), dims - 1));
            let (dot, far) = match crop.format {
                ZarrFormat::V2 => (vec!["0"; dims].join("."), far.join("/")),
                ZarrFormat::V3 => (
                    format!("c.{}", vec!["0"; dims].join(".")),
                    format!("c/{}", far.join("/")),
                ),
            };
            for name in [dot.as_str(), far.as_str(), "junk.txt", ".zarray.bak"] {
                write(&crop.path.join(name), &rng.bytes(17));
            }
            blind = Expect::Succeed;
            original_meant = true;
            "junk keys outside the grid".into()
        }
        "gzip-bomb" => {
            write(&target, &bombs().gzip);
            blind = Expect::Fail; // docs/cli.md: refused, decoding bounded
            format!("{} GiB of zeros", BOMB_BYTES >> 30)
        }
        "zstd-bomb" => {
            let declared = rng.chance(0.5);
            let b = if declared {
                &bombs().zstd_declared
            } else {
                &bombs().zstd_undeclared
            };
            write(&target, b);
            blind = Expect::Fail; // docs/cli.md: refused, decoding bounded
            format!(
                "{} GiB of zeros, size declared: {declared}",
                BOMB_BYTES >> 30
            )
        }
        "fifo" => {
            let _ = std::fs::remove_file(&target);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            let c = std::ffi::CString::new(target.as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: a valid C string.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
            blind = Expect::Fail; // docs/cli.md: refused, decoding bounded
            "a FIFO".into()
        }
        "directory" => {
            let _ = std::fs::remove_file(&target);
            std::fs::create_dir_all(&target).unwrap();
            if rng.chance(0.5) {
                std::fs::write(target.join("0"), b"x").unwrap();
            }
            blind = Expect::Fail; // docs/cli.md: refused, decoding bounded
            "a directory".into()
        }
        "dev-zero" => {
            let _ = std::fs::remove_file(&target);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            let dev = rng.pick(&["/dev/zero", "/dev/urandom"]);
            std::os::unix::fs::symlink(dev, &target).unwrap();
            blind = Expect::Fail; // docs/cli.md: refused, decoding bounded
            format!("a link to {dev}")
        }
        _ => {
            // dangling link: a missing chunk, or an error
            let _ = std::fs::remove_file(&target);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(case.dir.path().join("nowhere"), &target).unwrap();
            floor = Expect::Either;
            "a dangling link".into()
        }
    };
    let special = [
        "fifo",
        "directory",
        "dev-zero",
        "dangling-link",
        "gzip-bomb",
        "zstd-bomb",
    ]
    .contains(&kind);
    case.mutation(format!(
        "{kind} v{} {} {} {}",
        crop.format.number(),
        crop.compression.name(),
        target.strip_prefix(&crop.path).unwrap().display(),
        detail
    ));
    if !existed {
        case.mutation("(chunk was absent)");
    }
    case.guarded = vec![crop.path.clone(), crop.groupings.clone()];
    if rng.chance(0.08) {
        case.runs.push(inspect_run(
            rng,
            &crop.path,
            Some(&crop.groupings),
            &crop.mask_args,
        ));
        case.mutation("inspect");
        return;
    }
    let (start, size, roi) = if rng.chance(0.2) {
        let (s, z, r) = random_region(rng, &crop);
        (s, z, Some(r))
    } else {
        (vec![0; dims], crop.shape.clone(), None)
    };
    let touched = intersects(&crop, &idx, &start, &size) || kind == "swap";
    let (expect, labels) = if raw_like {
        match decode_region(&crop.path, &start, &size) {
            Decoded::Labels(l) => (floor, Some(l)),
            Decoded::Lenient(l) => (floor.max(Expect::Either), Some(l)),
            Decoded::Corrupt(why) => {
                case.mutation(format!(
                    "(oracle: {})",
                    why.chars().take(70).collect::<String>()
                ));
                (Expect::Fail, None)
            }
            Decoded::Unsupported(_) => (Expect::Either, None),
        }
    } else if !touched {
        (floor, known_region(&crop, &start, &size, Some(0)))
    } else if kind == "delete" || kind == "dangling-link" {
        (
            blind.max(floor),
            known_region(&crop, &start, &size, Some(0)),
        )
    } else if original_meant && !special {
        // Appended bytes (zstd, blosc: after the frame) or junk keys: still what was written.
        let known = Some(region_of(&crop.bits, &crop.shape, &start, &size));
        (blind.max(floor), known)
    } else {
        (blind.max(floor), None)
    };
    let mut extra = crop.mask_args.clone();
    extra.extend(roi);
    let out = case.path("out.zarr");
    let args = compute_args(rng, &crop.path, &crop.groupings, &out, &extra, false);
    case.runs.push(Run {
        args: os(&args),
        expect,
        usage_ok: false,
        json_stdout: false,
    });
    let missing = judge_labels(Some(&crop.attrs), false, crop.sparse_missing).meaning();
    case.check = label_check(
        out,
        &size,
        labels,
        Some(&crop.channels),
        missing.as_ref(),
        crop.background,
        crop.per_voxel,
    );
}

// ------------------------------------------------------------------------------------------
// Family 4: groupings files
// ------------------------------------------------------------------------------------------

/// The verdict on a groupings file's bytes (`toml`: parsed as TOML, as the binary does for
/// `.toml` files).
fn judge_groupings_file(bytes: &[u8], toml: bool) -> Verdict<Vec<Vec<u64>>> {
    let value: Option<Value> = if toml {
        std::str::from_utf8(bytes)
            .ok()
            .and_then(|t| toml::from_str::<toml::Table>(t).ok())
            .and_then(|t| serde_json::to_value(t).ok())
    } else {
        serde_json::from_slice(bytes).ok()
    };
    match value {
        Some(v) => judge_id_groupings(&v),
        None => Verdict::Invalid("does not parse".into()),
    }
}

fn family_groupings(rng: &mut Rng, case: &mut Case) {
    // (No FIFO: reading groupings from a pipe must block for its writer, as `<(...)` needs.)
    let kind = if rng.chance(0.015) {
        "dev-zero"
    } else {
        rng.pick(&[
            "empty-file",
            "whitespace",
            "empty-list",
            "wrong-type",
            "wrong-type",
            "unknown-ids",
            "huge-ids",
            "huge-ids",
            "id-text",
            "dup-names",
            "empty-name",
            "dup-ids",
            "class-names",
            "mixed-members",
            "truncated",
            "invalid-utf8",
            "bom",
            "garbage",
            "deep-nesting",
            "many-ids",
            "many-channels",
            "random-node",
            "random-node",
            "random-node",
            "toml",
            "toml",
            "names-weird",
            "directory",
            "missing-file",
            "dev-null",
            "extra-keys",
        ])
    };
    let cg = CropGen {
        tiny: kind == "many-channels",
        ..CropGen::default()
    };
    let crop = label_crop(rng, case.dir.path(), cg);
    let mut list: Vec<Value> = crop
        .names
        .iter()
        .zip(&crop.channels)
        .map(|(n, ids)| json!([n, ids]))
        .collect();
    let mut gpath = case.path("g.json");
    let i = rng.index(list.len());
    // The file's bytes (or a special file), and a verdict where the bytes alone do not tell.
    let mut bytes: Option<Vec<u8>> = None;
    let mut fixed: Option<Verdict<Vec<Vec<u64>>>> = None;
    let mut detail: String = match kind {
        "empty-file" => {
            bytes = Some(Vec::new());
            String::new()
        }
        "whitespace" => {
            bytes = Some(b" \n\t\r\n".to_vec());
            String::new()
        }
        "empty-list" => {
            let t = rng.pick(&["[]", "{\"groupings\": []}", "[[]]"]);
            bytes = Some(t.as_bytes().to_vec());
            t.into()
        }
        "wrong-type" => {
            let t = rng.pick(&[
                "5",
                "\"mito\"",
                "null",
                "{}",
                "[5]",
                "[[\"a\"]]",
                "[[\"a\", 3]]",
                "[[1, [2]]]",
                "[[\"a\", [1], 3]]",
                "{\"groupings\": 5}",
                "{\"mito\": [3]}",
                "[[\"a\", {\"ids\": [1]}]]",
                "[[null, [1]]]",
                "[[\"a\", null]]",
                "true",
                "[{\"name\": \"a\", \"ids\": [1]}]",
            ]);
            bytes = Some(t.as_bytes().to_vec());
            t.into()
        }
        "unknown-ids" => {
            for _ in 0..rng.range(1, 4) {
                let id = rng.next() >> rng.below(64);
                list[i][1].as_array_mut().unwrap().push(json!(id));
            }
            format!("channel {i}")
        }
        "huge-ids" => {
            let v = rng.pick(&[
                json!(u64::MAX),
                json!(1u64 << 63),
                json!(-1),
                json!(1.5),
                json!(3.0),
                json!(1e300),
                json!("3"),
                json!(i64::MIN),
                Value::Null,
                json!([3]),
            ]);
            let d = format!("channel {i} member {v}");
            list[i][1].as_array_mut().unwrap().push(v);
            d
        }
        "id-text" => {
            let (text, meaning): (&str, Option<u64>) = rng.pick(&[
                ("18446744073709551616", None),
                ("1e400", None),
                ("-0", Some(0)),
                ("1E2", Some(100)),
                ("0x10", None),
                ("Infinity", None),
                ("99999999999999999999999999", None),
            ]);
            let mut ids = list[i][1].as_array().unwrap().clone();
            ids.push(json!("@@INJECT@@"));
            list[i][1] = Value::Array(ids.clone());
            let text_full =
                Value::Array(list.clone())
                    .to_string()
                    .replacen("\"@@INJECT@@\"", text, 1);
            bytes = Some(text_full.into_bytes());
            fixed = Some(match meaning {
                Some(m) => {
                    let mut l = list.clone();
                    let mut ids = ids;
                    *ids.last_mut().unwrap() = json!(m);
                    l[i][1] = Value::Array(ids);
                    match judge_id_groupings(&Value::Array(l)) {
                        Verdict::Valid(c) | Verdict::Open(Some(c)) => Verdict::Open(Some(c)),
                        other => other,
                    }
                }
                None => Verdict::Invalid("not an id".into()),
            });
            text.into()
        }
        "dup-names" => {
            let name = list[i][0].clone();
            let at = rng.index(list.len() + 1);
            list.insert(at, json!([name, [rng.pick(&crop.pool)]]));
            format!("{name} again at {at}")
        }
        "empty-name" => {
            list[i][0] = json!("");
            format!("channel {i}")
        }
        "dup-ids" => {
            let ids = list[i][1].as_array_mut().unwrap();
            let id = ids.first().cloned().unwrap_or(json!(crop.pool[0]));
            ids.push(id.clone());
            ids.push(id);
            format!("channel {i}")
        }
        "class-names" => {
            list = crop
                .names
                .iter()
                .map(|n| json!([n, ["mito_mem", "mito_lum"]]))
                .collect();
            "class names for a label array".into()
        }
        "mixed-members" => {
            list[i][1].as_array_mut().unwrap().push(json!("mito_mem"));
            format!("channel {i}")
        }
        "truncated" | "invalid-utf8" | "bom" | "garbage" => {
            let text = Value::Array(list.clone()).to_string().into_bytes();
            bytes = Some(match kind {
                "truncated" => truncate_json(rng, &text),
                "invalid-utf8" => break_utf8(rng, &text),
                "bom" => {
                    fixed = Some(match judge_id_groupings(&Value::Array(list.clone())) {
                        Verdict::Valid(c) => Verdict::Open(Some(c)),
                        other => other,
                    });
                    let mut b = vec![0xef, 0xbb, 0xbf];
                    b.extend(text);
                    b
                }
                _ => {
                    let n = rng.range(1, 300) as usize;
                    rng.bytes(n)
                }
            });
            String::new()
        }
        "deep-nesting" => {
            let depth = rng.pick(&[200usize, 5000, 200_000]);
            let deep = deep_json(depth, '[', ']');
            let toml = rng.chance(0.4);
            let text = if toml {
                gpath = case.path("g.toml");
                format!("groupings = {deep}\n")
            } else if rng.chance(0.5) {
                deep
            } else {
                format!("[[\"a\", {deep}]]")
            };
            bytes = Some(text.into_bytes());
            fixed = Some(Verdict::Invalid("nested lists".into()));
            format!("depth {depth} toml={toml}")
        }
        "many-ids" => {
            let n = rng.range(10_000, 200_000);
            let base = rng.next() >> 1;
            let ids = list[i][1].as_array_mut().unwrap();
            ids.extend((0..n).map(|k| json!(base.wrapping_add(k))));
            format!("{n} ids in channel {i}")
        }
        "many-channels" => {
            let n = rng.range(100, 5000) as usize;
            list = (0..n)
                .map(|k| {
                    json!([
                        format!("c{k}"),
                        [rng.pick(&crop.pool), rng.pick(&crop.pool)]
                    ])
                })
                .collect();
            format!("{n} channels")
        }
        "random-node" => {
            let mut v = Value::Array(list.clone());
            let d = mutate_json(rng, &mut v, true);
            bytes = Some(v.to_string().into_bytes());
            d
        }
        "toml" => {
            gpath = case.path("g.toml");
            let t = rng.pick(&[
                "groupings = @",
                "[groupings]\nmito = [3]\n",
                "[[groupings]]\nname = \"a\"\nids = [1]\n",
                "groupings = [[\"a\", [18446744073709551615]]]\n",
                "groupings = [[\"a\", [-1]]]\n",
                "groupings = [[\"a\", [3.0]]]\n",
                "groupings = [[\"a\", [1, 2]], [\"a\", [3]]]\n",
                "groupings = [[\"a\", [1]]]\ngroupings = [[\"b\", [2]]]\n",
                "groupings = [[\"a\", [1]]\n",
                "groupings = \"x\"\n",
                "other = 1\n",
                "groupings = [[\"a\", [1]]]\nextra = {x = 1}\n",
                "groupings = [[\"a\", [0x10, 0o7, 0b1, 1_000]]]\n",
            ]);
            let text = if t == "groupings = @" {
                format!("groupings = {}\n", Value::Array(list.clone()))
            } else {
                t.to_string()
            };
            if text.starts_with("groupings = [[\"a\", [1]]]\nextra") {
                fixed = Some(match judge_groupings_file(text.as_bytes(), true) {
                    Verdict::Valid(c) => Verdict::Open(Some(c)),
                    other => other,
                });
            }
            if t.contains("[3.0]") {
                fixed = Some(Verdict::Open(Some(vec![vec![3]])));
            }
            bytes = Some(text.into_bytes());
            t.lines().next().unwrap_or("").chars().take(40).collect()
        }
        "names-weird" => {
            let name = rng.pick(
                &[
                    " ",
                    "\u{0}",
                    "a\nb",
                    "/",
                    "..",
                    "{name}",
                    "\u{202e}rtl",
                    "x".repeat(5000).as_str(),
                ]
                .map(str::to_string),
            );
            list[i][0] = json!(name);
            format!("channel {i} name of {} bytes", name.len())
        }
        "extra-keys" => {
            let v = json!({"groupings": list.clone(), "version": 2});
            bytes = Some(v.to_string().into_bytes());
            fixed = Some(match judge_id_groupings(&Value::Array(list.clone())) {
                Verdict::Valid(c) => Verdict::Open(Some(c)),
                other => other,
            });
            "version key next to groupings".into()
        }
        "directory" => {
            std::fs::create_dir_all(&gpath).unwrap();
            fixed = Some(Verdict::Invalid("a directory".into()));
            String::new()
        }
        "missing-file" => {
            fixed = Some(Verdict::Invalid("no file".into()));
            String::new()
        }
        "dev-zero" => {
            std::os::unix::fs::symlink("/dev/zero", &gpath).unwrap();
            fixed = Some(Verdict::Invalid("endless zeros".into()));
            String::new()
        }
        _ => {
            gpath = PathBuf::from("/dev/null");
            fixed = Some(Verdict::Invalid("empty".into()));
            String::new()
        }
    };
    let special = ["directory", "missing-file", "dev-zero", "dev-null"].contains(&kind);
    if !special {
        let b = bytes.unwrap_or_else(|| Value::Array(list.clone()).to_string().into_bytes());
        std::fs::write(&gpath, &b).unwrap();
        if fixed.is_none() {
            fixed = Some(judge_groupings_file(
                &b,
                gpath.extension().is_some_and(|e| e == "toml"),
            ));
        }
    }
    let verdict = fixed.unwrap();
    if let Verdict::Invalid(why) = &verdict {
        detail = format!("{detail} (invalid: {why})");
    }
    case.mutation(format!(
        "{kind} {}",
        detail.chars().take(60).collect::<String>()
    ));
    case.guarded = vec![crop.path.clone()];
    if gpath.starts_with(case.dir.path()) {
        case.guarded.push(gpath.clone());
    }
    if rng.chance(0.08) {
        case.runs
            .push(inspect_run(rng, &crop.path, Some(&gpath), &crop.mask_args));
        case.mutation("inspect");
        return;
    }
    let out = case.path("out.zarr");
    let default_engine = rng.chance(0.02);
    if default_engine {
        case.mutation("default-engine");
    }
    let args = compute_args(
        rng,
        &crop.path,
        &gpath,
        &out,
        &crop.mask_args,
        default_engine,
    );
    case.runs.push(Run {
        args: os(&args),
        expect: verdict.expect(),
        usage_ok: false,
        json_stdout: false,
    });
    let zero = vec![0; crop.shape.len()];
    let labels = match truth_of(&crop, &zero, &crop.shape, true) {
        Decoded::Labels(l) => Some(l),
        _ => None,
    };
    let missing = judge_labels(Some(&crop.attrs), false, crop.sparse_missing).meaning();
    let channels = verdict.meaning();
    case.check = label_check(
        out.clone(),
        &crop.shape,
        labels,
        channels.as_deref(),
        missing.as_ref(),
        crop.background,
        crop.per_voxel,
    );
    case.untouched_on_error = Some(out);
}

// ------------------------------------------------------------------------------------------
// Family 5: command-line options
// ------------------------------------------------------------------------------------------

/// How one option changes a compute run.
struct Opts {
    extra: Vec<String>,
    expect: Expect,
    usage_ok: bool,
    start: Vec<u64>,
    size: Vec<u64>,
    /// The oracle knows the region's voxels (a slightly off ROI is still the same region).
    inputs: Vec<String>,
    out: String,
    mask_at: PathBuf,
    per_voxel: bool,
    sparse_missing: bool,
    background: u64,
    default_engine: bool,
    check: bool,
    exclusive: bool,
}

impl Opts {
    fn bad_syntax(&mut self) {
        self.expect = Expect::Fail;
        self.usage_ok = true;
    }

    fn at_least(&mut self, e: Expect) {
        self.expect = self.expect.max(e);
    }
}

fn fmt_coords(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Applies one option mutation of `category` to `o`; returns its description.
fn option_mutation(
    rng: &mut Rng,
    case: &Case,
    crop: &LabelCrop,
    o: &mut Opts,
    category: &str,
) -> String {
    let dims = crop.shape.len();
    let world = |start: &[f64], end: &[f64]| -> String {
        let b: Vec<f64> = (0..dims)
            .map(|d| crop.offset[d] as f64 + crop.voxel_size[d] as f64 * start[d])
            .collect();
        let e: Vec<f64> = (0..dims)
            .map(|d| crop.offset[d] as f64 + crop.voxel_size[d] as f64 * end[d])
            .collect();
        format!("--roi={}:{}", fmt_coords(&b), fmt_coords(&e))
    };
    let huge = [1u64 << 40, (1 << 62) + 1, 1 << 63, u64::MAX, 1 << 32];
    match category {
        "roi" => {
            let (start, size, text) = random_region(rng, crop);
            let v = rng.pick(&[
                "valid",
                "valid",
                "empty",
                "oob",
                "misaligned",
                "tiny",
                "huge",
                "dims",
                "syntax",
                "reversed",
            ]);
            let s: Vec<f64> = start.iter().map(|&x| x as f64).collect();
            let e: Vec<f64> = start
                .iter()
                .zip(&size)
                .map(|(a, b)| (a + b) as f64)
                .collect();
            let d = rng.index(dims);
            let arg = match v {
                "valid" => {
                    o.start = start;
                    o.size = size;
                    text
                }
                "empty" => {
                    let mut e = e.clone();
                    e[d] = s[d];
                    o.start = start;
                    o.size = size;
                    o.size[d] = 0;
                    o.at_least(Expect::Either);
                    world(&s, &e)
                }
                "oob" => {
                    let (mut s, mut e) = (s.clone(), e.clone());
                    if rng.chance(0.5) {
                        e[d] = crop.shape[d] as f64 + rng.range(1, 3) as f64;
                    } else {
                        s[d] = -(rng.range(1, 3) as f64);
                    }
                    o.at_least(Expect::Fail);
                    world(&s, &e)
                }
                "misaligned" => {
                    let (mut s, mut e) = (s.clone(), e.clone());
                    let by = rng.pick(&[0.3, 0.5, 0.999, 1e-3]);
                    if rng.chance(0.5) {
                        s[d] += by;
                    } else {
                        e[d] -= by;
                    }
                    o.at_least(Expect::Fail);
                    world(&s, &e)
                }
                "tiny" => {
                    let (mut s2, mut e2) = (s.clone(), e.clone());
                    s2[d] += 1e-9;
                    e2[d] -= 1e-9;
                    o.start = start;
                    o.size = size;
                    o.at_least(Expect::Either);
                    world(&s2, &e2)
                }
                "huge" => {
                    o.at_least(Expect::Fail);
                    let h = rng.pick(&[1e20, 1e300, -1e300, 9.3e18, 1.8446744073709552e19]);
                    let mut b = vec![crop.offset[0] as f64; dims];
                    let mut en = vec![h; dims];
                    if h < 0.0 {
                        b = vec![h; dims];
                        en = vec![crop.offset[0] as f64; dims];
                    }
                    format!("--roi={}:{}", fmt_coords(&b), fmt_coords(&en))
                }
                "dims" => {
                    o.at_least(Expect::Fail);
                    let n = if dims > 2 && rng.chance(0.5) {
                        dims - 1
                    } else {
                        dims + 1
                    };
                    format!(
                        "--roi={}:{}",
                        vec!["0"; n].join(","),
                        vec!["8"; n].join(",")
                    )
                }
                "syntax" => {
                    o.bad_syntax();
                    rng.pick(&[
                        "--roi=abc",
                        "--roi=1,2,3",
                        "--roi=nan,0,0:1,1,1",
                        "--roi=inf,0,0:1,1,1",
                        "--roi=0,0,0:",
                        "--roi=:",
                        "--roi=",
                        "--roi=0,,0:1,1,1",
                        "--roi=0:1:2",
                        "--roi=0x1,0,0:8,8,8",
                    ])
                    .to_string()
                }
                _ => {
                    o.bad_syntax();
                    world(&e, &s)
                }
            };
            o.extra.push(arg.clone());
            format!("roi {v} {arg}")
        }
        "chunks" => {
            let v = rng.pick(&[
                "valid", "valid", "valid-c", "zero", "huge", "overflow", "count", "syntax",
            ]);
            let mut c: Vec<u64> = (0..dims).map(|_| rng.range(1, 10)).collect();
            match v {
                "valid" => {}
                "valid-c" => c.insert(0, rng.range(1, crop.channels.len() as u64 + 2)),
                "zero" => {
                    let d = rng.index(dims);
                    c[d] = 0;
                    o.at_least(Expect::Fail);
                }
                // docs/cli.md: `--chunks` values are clipped to the array.
                "huge" => {
                    let d = rng.index(dims);
                    c[d] = rng.pick(&huge);
                }
                "overflow" => {
                    c = vec![rng.pick(&huge); dims];
                    if rng.chance(0.5) {
                        c.insert(0, rng.pick(&huge));
                    }
                }
                "count" => {
                    let n = rng.pick(&[1usize, dims + 2, dims + 3]);
                    c = (0..n).map(|_| rng.range(1, 8)).collect();
                    o.at_least(Expect::Fail);
                }
                _ => {
                    o.bad_syntax();
                    let t = rng.pick(&[
                        "-1,8,8",
                        "a",
                        "1.5,8,8",
                        "",
                        ",",
                        "8,,8",
                        "18446744073709551616,8,8",
                    ]);
                    o.extra.extend(["--chunks".to_string(), t.to_string()]);
                    return format!("chunks {t:?}");
                }
            }

            let t = c.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
            o.extra.extend(["--chunks".to_string(), t.clone()]);
            format!("chunks {v} {t}")
        }
        "threads" | "queue-depth" | "readers" | "writers" => {
            let (lo, hi) = match category {
                "threads" => (1, 4096),
                "writers" => (0, 64),
                _ => (1, 64),
            };
            let t = match rng.below(4) {
                0 => {
                    o.bad_syntax();
                    rng.pick(&[
                        (lo as i64 - 1).to_string(),
                        (hi + 1).to_string(),
                        "-1".into(),
                        "x".into(),
                        "18446744073709551616".into(),
                        "".into(),
                    ])
                }
                1 if category == "threads" && rng.chance(0.3) => {
                    o.at_least(Expect::Either); // thousands of threads under an address-space limit
                    o.exclusive = true;
                    hi.to_string()
                }
                1 if category == "threads" => rng.range(9, 64).to_string(),
                1 => hi.to_string(),
                _ => rng.range(lo, hi.min(8)).to_string(),
            };
            o.extra.extend([format!("--{category}"), t.clone()]);
            format!("{category} {t:?}")
        }
        "memory-budget" => {
            // docs/cli.md: bytes or 512MiB / 16G, at least 1 MiB; blocks that do not fit are
            // refused naming the budget (tiny crops always fit).
            let t = if rng.chance(0.75) {
                rng.pick(&[
                    "1MiB",
                    "1048576",
                    "16G",
                    "512M",
                    "2 tib",
                    "8GiB",
                    "18446744073709551615",
                ])
            } else {
                o.bad_syntax();
                rng.pick(&["", "x", "-1G", "1.5G", "1Q", "100", "1KiB", "99999999999T"])
            };
            o.extra
                .extend(["--memory-budget".to_string(), t.to_string()]);
            format!("memory-budget {t:?}")
        }
        "compression" => {
            let t = if rng.chance(0.75) {
                rng.pick(&["raw", "blosc-lz4", "blosc-zstd", "zstd", "gzip"])
            } else {
                o.bad_syntax();
                rng.pick(&["lz4", "", "BLOSC-LZ4", "gzip:9", "none"])
            };
            o.extra.extend(["--compression".to_string(), t.to_string()]);
            format!("compression {t:?}")
        }
        "zarr-format" => {
            let t = if rng.chance(0.7) {
                rng.pick(&["2", "3"])
            } else {
                o.bad_syntax();
                rng.pick(&["0", "1", "4", "256", "-1", "v3"])
            };
            o.extra.extend(["--zarr-format".to_string(), t.to_string()]);
            format!("zarr-format {t}")
        }
        "policy" | "sparse" => {
            let good = if category == "policy" {
                ["whole-channel", "per-voxel"]
            } else {
                ["missing", "annotated"]
            };
            let t = if rng.chance(0.8) {
                let t = rng.pick(&good);
                if category == "policy" {
                    o.per_voxel = t == "per-voxel";
                } else {
                    o.sparse_missing = t == "missing";
                }
                t
            } else {
                o.bad_syntax();
                rng.pick(&["", "Per-Voxel", "both", "whole_channel"])
            };
            o.extra.extend([format!("--{category}"), t.to_string()]);
            format!("{category} {t:?}")
        }
        "background" => {
            let t = if rng.chance(0.75) {
                let b = if rng.chance(0.5) {
                    rng.pick(&crop.pool)
                } else {
                    rng.pick(&[0, u64::MAX, 1 << 63])
                };
                o.background = b;
                b.to_string()
            } else {
                o.bad_syntax();
                rng.pick(&["-1", "18446744073709551616", "x", "1.5", ""])
                    .to_string()
            };
            o.extra.extend(["--background".to_string(), t.clone()]);
            format!("background {t}")
        }
        "flags" => {
            let f = rng.pick(&[
                "--verify",
                "--allow-missing-metadata",
                "--quiet",
                "-q",
                "--scale",
                "--bogus",
                "--resume",
            ]);
            match f {
                "--scale" => {
                    o.extra.extend([
                        "--scale".to_string(),
                        rng.pick(&["s0", "s1", "", "../.."]).to_string(),
                    ]);
                    o.at_least(Expect::Fail);
                }
                "--bogus" => {
                    o.extra.push(
                        rng.pick(&["--bogus", "--chunk=8", "--threads=1=2", "-x"])
                            .to_string(),
                    );
                    o.bad_syntax();
                }
                _ => o.extra.push(f.to_string()),
            }
            format!("flag {f}")
        }
        "engine" => match rng.below(4) {
            0 | 1 => {
                o.default_engine = true;
                "engine auto (default)".into()
            }
            2 => {
                o.default_engine = true;
                o.extra.extend(["--engine".to_string(), "gpu".to_string()]);
                o.at_least(Expect::Either);
                "engine gpu".into()
            }
            _ => {
                o.default_engine = true;
                o.extra.extend([
                    "--engine".to_string(),
                    rng.pick(&["GPU", "", "cuda"]).to_string(),
                ]);
                o.bad_syntax();
                "engine bogus".into()
            }
        },
        "out" => {
            let v = rng.pick(&[
                "equal-input",
                "inside-input",
                "url",
                "file-url",
                "existing-file",
                "foreign-dir",
                "empty",
                "groupings",
                "new-parents",
                "bad-template",
                "container",
                "input-parent",
                "existing-array",
            ]);
            match v {
                // docs/cli.md: an output equal to the input, inside it or containing it is
                // refused; `file://` URLs are local paths, other schemes are refused.
                "equal-input" => {
                    o.out = rng.pick(&[
                        crop.path.display().to_string(),
                        format!("{}/", crop.path.display()),
                        format!("{}/.", crop.path.display()),
                        format!("{}/../labels", crop.path.display()),
                    ]);
                    o.mask_at = crop.path.clone();
                    o.at_least(Expect::Fail);
                }
                "inside-input" => {
                    let sub = rng.pick(&["mask.zarr", "c", "0", "c/0", "0/0", "sub/dir/m.zarr"]);
                    o.out = crop.path.join(sub).display().to_string();
                    o.mask_at = crop.path.join(sub);
                    o.at_least(Expect::Fail);
                }
                "url" => {
                    let u = rng.pick(&[
                        "s3://bucket/mask.zarr",
                        "gs://b/m.zarr",
                        "https://example.org/m.zarr",
                        "S3://bucket/m.zarr",
                    ]);
                    o.out = u.to_string();
                    o.at_least(Expect::Fail);
                }
                "file-url" => {
                    let p = case.path("url-out.zarr");
                    o.out = format!("file://{}", p.display());
                    o.mask_at = p;
                }
                "existing-file" => {
                    let p = case.path("afile");
                    std::fs::write(&p, "x").unwrap();
                    o.out = p.display().to_string();
                    o.at_least(Expect::Fail);
                }
                "foreign-dir" => {
                    let p = case.path("foreign");
                    std::fs::create_dir_all(&p).unwrap();
                    std::fs::write(p.join("notes.txt"), "mine").unwrap();
                    o.out = p.display().to_string();
                    o.at_least(Expect::Fail);
                }
                "empty" => {
                    o.out = String::new();
                    o.at_least(Expect::Fail);
                }
                "groupings" => {
                    o.out = crop.groupings.display().to_string();
                    o.at_least(Expect::Fail);
                }
                "new-parents" => {
                    let p = case.path("new/a/b/out.zarr");
                    o.out = p.display().to_string();
                    o.mask_at = p;
                    o.at_least(Expect::Either);
                }
                "bad-template" => {
                    o.out = case.path("o/{bogus}.zarr").display().to_string();
                    o.at_least(Expect::Fail);
                }
                "container" => {
                    o.out = crop.path.parent().unwrap().display().to_string();
                    o.at_least(Expect::Fail);
                }
                "input-parent" => {
                    o.out = case.path("in").display().to_string();
                    o.at_least(Expect::Fail);
                }
                _ => {
                    let p = case.path("other.zarr");
                    let labels = common::labels_of(LabelDtype::U8, &[2, 2], &[0, 1, 2, 3]);
                    annomask::synth::write_labels(
                        &p,
                        &labels,
                        &[2, 2],
                        crop.format,
                        Compression::Raw,
                        Map::new(),
                    )
                    .unwrap();
                    o.out = p.display().to_string();
                    o.at_least(Expect::Fail);
                }
            }
            format!("out {v}")
        }
        _ => {
            // inputs
            let v = rng.pick(&[
                "twice",
                "glob-none",
                "glob-bad",
                "nonexistent",
                "file",
                "empty-dir",
                "dev-null",
                "glob-match",
            ]);
            let input = crop.path.display().to_string();
            match v {
                "twice" => {
                    // The same path twice: one input or an error (README is silent).
                    o.inputs = vec![input.clone(), input];
                    o.at_least(Expect::Either);
                }
                "two-to-one" => {
                    // Two inputs, one output that is no template: "two inputs mapped to one
                    // output" is an error (README).
                    let copy = case.path("in/crop2.zarr/labels");
                    copy_tree(&crop.path, &copy);
                    o.inputs = vec![input, copy.display().to_string()];
                    o.at_least(Expect::Fail);
                }
                "glob-none" => {
                    o.inputs = vec![case.path("in/*.nope").display().to_string()];
                    o.at_least(Expect::Fail);
                }
                "glob-bad" => {
                    o.inputs = vec![case.path("in/[").display().to_string()];
                    o.at_least(Expect::Fail);
                }
                "nonexistent" => {
                    o.inputs = vec![case.path("in/nope.zarr/labels").display().to_string()];
                    o.at_least(Expect::Fail);
                }
                "file" => {
                    o.inputs = vec![crop.groupings.display().to_string()];
                    o.at_least(Expect::Fail);
                }
                "empty-dir" => {
                    let p = case.path("emptydir");
                    std::fs::create_dir_all(&p).unwrap();
                    o.inputs = vec![p.display().to_string()];
                    o.at_least(Expect::Fail);
                }
                "dev-null" => {
                    o.inputs = vec!["/dev/null".into()];
                    o.at_least(Expect::Fail);
                }
                _ => {
                    o.inputs = vec![case.path("in/crop.zarr/lab*").display().to_string()];
                    o.at_least(Expect::Succeed);
                }
            }
            format!("inputs {v}")
        }
    }
}

fn family_options(rng: &mut Rng, case: &mut Case) {
    let cg = CropGen {
        plain_options: true,
        ..CropGen::default()
    };
    let crop = label_crop(rng, case.dir.path(), cg);
    let dims = crop.shape.len();
    case.guarded = vec![crop.path.clone(), crop.groupings.clone()];
    let missing_of =
        |sparse_missing: bool| judge_labels(Some(&crop.attrs), false, sparse_missing).meaning();
    let zero = vec![0u64; dims];
    let bits_of = |start: &[u64], size: &[u64]| match truth_of(&crop, start, size, true) {
        Decoded::Labels(l) => Some(l),
        _ => None,
    };
    let out = case.path("out.zarr");
    let sub = rng.below(100);
    if sub < 6 {
        // demo
        let mut a = vec!["demo".to_string()];
        let mut expect = Expect::Succeed;
        let mut usage_ok = false;
        if rng.chance(0.95) {
            a.extend(["--engine".to_string(), "cpu".to_string()]);
        }
        if rng.chance(0.7) {
            if rng.chance(0.1) {
                std::fs::write(case.path("demo"), "x").unwrap();
                expect = Expect::Fail;
            }
            a.extend(["--out".to_string(), case.path("demo").display().to_string()]);
        }
        let size = if rng.chance(0.8) {
            rng.range(1, 24).to_string()
        } else {
            expect = Expect::Fail;
            usage_ok = true;
            rng.pick(&["0", "4097", "-1", "x", "18446744073709551616"])
                .to_string()
        };
        a.extend(["--size".to_string(), size]);
        if rng.chance(0.4) {
            let f = if rng.chance(0.8) {
                rng.pick(&["2", "3"])
            } else {
                expect = Expect::Fail;
                usage_ok = true;
                "4"
            };
            a.extend(["--zarr-format".to_string(), f.to_string()]);
        }
        if rng.chance(0.4) {
            a.push("--cellmap".into());
        }
        case.mutation(format!(
            "demo {}",
            a[1..]
                .join(" ")
                .replace(&case.dir.path().display().to_string(), "DIR")
        ));
        case.runs.push(Run {
            args: os(&a),
            expect,
            usage_ok,
            json_stdout: false,
        });
        return;
    }
    if sub < 14 {
        // inspect with options
        let mut a = vec!["inspect".to_string(), crop.path.display().to_string()];
        let mut expect = Expect::Succeed;
        let mut usage_ok = false;
        if rng.chance(0.8) {
            a.extend([
                "--groupings".to_string(),
                crop.groupings.display().to_string(),
            ]);
        }
        let json = rng.chance(0.5);
        if json {
            a.push("--json".into());
        }
        let mut d = Vec::new();
        let mut given: Vec<&str> = Vec::new();
        for _ in 0..rng.range(1, 3) {
            let (flag, good, bad): (&str, &[&str], &[&str]) = rng.pick(&[
                (
                    "--policy",
                    &["whole-channel", "per-voxel"][..],
                    &["x", ""][..],
                ),
                ("--sparse", &["missing", "annotated"][..], &["sparse"][..]),
                (
                    "--background",
                    &["0", "18446744073709551615", "3"][..],
                    &["-1", "1e3"][..],
                ),
                ("--scale", &[][..], &["s0"][..]),
                ("--allow-missing-metadata", &[""][..], &[][..]),
            ]);
            if given.contains(&flag) {
                continue;
            }
            given.push(flag);
            let v = if !good.is_empty() && (bad.is_empty() || rng.chance(0.7)) {
                rng.pick(good)
            } else {
                if flag == "--scale" {
                    expect = expect.max(Expect::Fail);
                } else {
                    expect = Expect::Fail;
                    usage_ok = true;
                }
                rng.pick(bad)
            };
            a.push(flag.to_string());
            if !v.is_empty() || flag != "--allow-missing-metadata" {
                a.push(v.to_string());
            }
            d.push(format!("{flag} {v}"));
        }
        case.mutation(format!("inspect {}", d.join(" ")));
        case.runs.push(Run {
            args: os(&a),
            expect,
            usage_ok,
            json_stdout: json,
        });
        return;
    }
    if sub < 24 {
        // Several runs on one output.
        let v = rng.pick(&[
            "shards-all",
            "shard-huge",
            "resume",
            "resume-after-shard",
            "rerun-different",
        ]);
        let base = compute_args(rng, &crop.path, &crop.groupings, &out, &[], false);
        let full = |per_voxel: bool, sparse_missing: bool| {
            label_check(
                out.clone(),
                &crop.shape,
                bits_of(&zero, &crop.shape),
                Some(&crop.channels),
                missing_of(sparse_missing).as_ref(),
                0,
                per_voxel,
            )
        };
        let run = |extra: &[&str], expect| {
            let mut a = base.clone();
            a.extend(extra.iter().map(|s| s.to_string()));
            Run {
                args: os(&a),
                expect,
                usage_ok: false,
                json_stdout: false,
            }
        };
        match v {
            "shards-all" => {
                let n = rng.range(1, 4);
                let mut order: Vec<u64> = (0..n).collect();
                for k in (1..order.len()).rev() {
                    order.swap(k, rng.index(k + 1));
                }
                let resume = rng.chance(0.3);
                for i in &order {
                    let s = format!("{i}/{n}");
                    let mut extra = vec!["--shard", s.as_str()];
                    if resume {
                        extra.push("--resume");
                    }
                    case.runs.push(run(&extra, Expect::Succeed));
                }
                case.check = full(false, true);
                case.mutation(format!("shards {order:?} of {n} resume={resume}"));
            }
            "shard-huge" => {
                let n = rng.pick(&[1000u64, 1 << 32, u64::MAX]);
                let i = rng.below(n.min(4)) + if rng.chance(0.5) { n - n.min(4) } else { 0 };
                let s = format!("{i}/{n}");
                case.runs.push(run(&["--shard", &s], Expect::Succeed));
                case.check = full(false, true);
                if let Check::Mask { partial, .. } = &mut case.check {
                    *partial = true;
                }
                case.mutation(format!("shard {s}"));
            }
            "resume" => {
                case.runs.push(run(&[], Expect::Succeed));
                case.runs.push(run(&["--resume"], Expect::Succeed));
                case.check = full(false, true);
                case.mutation("run, then --resume");
            }
            "resume-after-shard" => {
                case.runs.push(run(&["--shard", "0/2"], Expect::Succeed));
                case.runs.push(run(&["--resume"], Expect::Succeed));
                case.check = full(false, true);
                case.mutation("shard 0/2, then --resume");
            }
            _ => {
                case.runs.push(run(&[], Expect::Succeed));
                let resume = rng.chance(0.5);
                let mut extra = vec!["--policy", "per-voxel"];
                if resume {
                    extra.push("--resume");
                }
                // Different metadata over an existing output: refused with --resume (README),
                // open without; a refused run leaves the first run's mask.
                case.runs.push(run(
                    &extra,
                    if resume { Expect::Fail } else { Expect::Either },
                ));
                case.check = full(true, true);
                case.check_if_last_failed = full(false, true);
                case.mutation(format!("rerun with another policy, resume={resume}"));
            }
        }
        return;
    }
    let mut o = Opts {
        extra: Vec::new(),
        expect: Expect::Succeed,
        usage_ok: false,
        start: zero.clone(),
        size: crop.shape.clone(),
        inputs: vec![crop.path.display().to_string()],
        out: out.display().to_string(),
        mask_at: out.clone(),
        per_voxel: false,
        sparse_missing: true,
        background: 0,
        default_engine: false,
        check: true,
        exclusive: false,
    };
    let categories = [
        "roi",
        "roi",
        "chunks",
        "chunks",
        "threads",
        "memory-budget",
        "queue-depth",
        "readers",
        "writers",
        "compression",
        "zarr-format",
        "policy",
        "sparse",
        "background",
        "flags",
        "engine",
        "out",
        "out",
        "inputs",
    ];
    let mut used: Vec<&str> = Vec::new();
    let mut details = Vec::new();
    for _ in 0..rng.range(1, 3) {
        let c = rng.pick(&categories);
        if used.contains(&c) {
            continue;
        }
        used.push(c);
        details.push(option_mutation(rng, case, &crop, &mut o, c));
    }
    case.mutation(
        details
            .join(" | ")
            .replace(&case.dir.path().display().to_string(), "DIR"),
    );
    if o.default_engine {
        case.mutation("default-engine");
    }
    case.exclusive = o.exclusive;
    let mut a = vec!["compute".to_string()];
    a.extend(o.inputs.iter().cloned());
    a.extend([
        "--groupings".to_string(),
        crop.groupings.display().to_string(),
    ]);
    a.extend(["--out".to_string(), o.out.clone()]);
    if !o.default_engine {
        a.extend(["--engine".to_string(), "cpu".to_string()]);
    }
    a.extend(o.extra.iter().cloned());
    case.runs.push(Run {
        args: os(&a),
        expect: o.expect,
        usage_ok: o.usage_ok,
        json_stdout: false,
    });
    if o.check {
        case.check = label_check(
            o.mask_at.clone(),
            &o.size,
            bits_of(&o.start, &o.size),
            Some(&crop.channels),
            missing_of(o.sparse_missing).as_ref(),
            o.background,
            o.per_voxel,
        );
    }
}

// ------------------------------------------------------------------------------------------
// Family 6: CellMap crop groups
// ------------------------------------------------------------------------------------------

const CLASS_NAMES: [&str; 8] = [
    "mito_mem", "mito_lum", "er_mem", "er_lum", "nuc", "ecs", "mito", "ves",
];

/// Applies `f` to the attributes of a class group and of each of its `scales` arrays (both hold
/// the class's `cellmap.annotation`).
fn edit_class(
    class_dir: &Path,
    format: ZarrFormat,
    scales: usize,
    f: impl Fn(&mut Map<String, Value>),
) {
    let mut dirs = vec![class_dir.to_path_buf()];
    dirs.extend((0..scales).map(|s| class_dir.join(format!("s{s}"))));
    for dir in dirs {
        if !attrs_file(&dir, format).exists() {
            continue;
        }
        let mut a = load_attrs(&dir, format);
        if a.get("cellmap").is_some_and(Value::is_object) {
            f(&mut a);
            save_attrs(&dir, format, &a, None);
        }
    }
}

/// Every second voxel along each axis of C-order `raw` of `shape`.
fn downsample_raw(raw: &[u64], shape: &[usize]) -> (Vec<u64>, Vec<usize>) {
    let n = shape.len();
    let small: Vec<usize> = shape.iter().map(|&s| s.div_ceil(2)).collect();
    let total: usize = small.iter().product();
    let out = (0..total)
        .map(|flat| {
            let mut rest = flat;
            let mut at = 0;
            let mut coord = vec![0; n];
            for d in (0..n).rev() {
                coord[d] = (rest % small[d]) * 2;
                rest /= small[d];
            }
            for d in 0..n {
                at = at * shape[d] + coord[d];
            }
            raw[at]
        })
        .collect();
    (out, small)
}

fn family_crops(rng: &mut Rng, case: &mut Case) {
    let kind = rng.pick(&[
        "valid",
        "scale-s1",
        "scale-missing",
        "crop-attr-removed",
        "crop-attr-garbled",
        "crop-attr-garbled",
        "class-names-reordered",
        "class-names-drop",
        "class-names-extra",
        "class-names-dup",
        "class-names-slash",
        "class-names-dot",
        "version-weird",
        "crop-attr-truncated",
        "crop-attr-utf8",
        "class-type-garbled",
        "class-encoding-bad",
        "class-encoding-changed",
        "class-name-mismatch",
        "class-attr-removed",
        "class-group-missing",
        "class-array-missing",
        "class-array-meta-truncated",
        "class-array-float",
        "class-chunk-corrupt",
        "class-shape-mismatch",
        "class-geometry-mismatch",
        "multiscales-garbled",
        "complement-counts-garbled",
        "label-options",
        "id-groupings",
        "inspect",
        "empty-class-list",
        "random-node",
    ]);
    let dims = if rng.chance(0.8) { 3 } else { 2 };
    let shape: Vec<usize> = (0..dims)
        .map(|_| if dims == 3 { rng.range(2, 8) } else { rng.range(2, 16) } as usize)
        .collect();
    let n: usize = shape.iter().product();
    let format = if rng.chance(0.5) {
        ZarrFormat::V2
    } else {
        ZarrFormat::V3
    };
    let compression = random_compression(rng);
    let scales = if kind == "scale-s1" || rng.chance(0.2) {
        2
    } else {
        1
    };
    let mut pool: Vec<&str> = CLASS_NAMES.to_vec();
    let nclasses = rng.range(1, 4) as usize;
    let mut classes: Vec<OracleClass> = Vec::new();
    for _ in 0..nclasses {
        let name = pool.remove(rng.index(pool.len())).to_string();
        let dtype = dtype_of(rng);
        let mut codes: Vec<u64> = Vec::new();
        while codes.len() < 3 {
            let c = voxel_bits(dtype, rng.pick(&RAW_IDS));
            if !codes.contains(&c) {
                codes.push(c);
            }
        }
        let has: Vec<bool> = (0..3).map(|_| rng.chance(0.8)).collect();
        let code = |i: usize| has[i].then_some(codes[i]);
        let raw: Vec<u64> = (0..n)
            .map(|_| {
                if rng.chance(0.7) {
                    rng.pick(&codes)
                } else if rng.chance(0.5) {
                    rng.pick(&RAW_IDS)
                } else {
                    rng.next()
                }
            })
            .collect();
        classes.push(OracleClass {
            name,
            dtype,
            instance: rng.chance(0.3),
            absent: code(0),
            present: code(1),
            unknown: code(2),
            raw,
        });
    }
    let path = case.path("in/crop7");
    {
        use annomask::cellmap::synth::{ClassSpec, CropSpec, write_crop};
        let specs = classes
            .iter()
            .map(|c| {
                let kind = if c.instance {
                    AnnotationKind::Instance
                } else {
                    AnnotationKind::Semantic
                };
                let encoding = Encoding {
                    absent: c.absent,
                    present: c.present,
                    unknown: c.unknown,
                };
                let mut spec = ClassSpec::new(
                    c.name.clone(),
                    kind,
                    encoding,
                    common::labels_of(c.dtype, &shape, &c.raw),
                );
                spec.chunks = shape.iter().map(|&s| rng.range(1, s as u64)).collect();
                spec.scales = scales;
                spec
            })
            .collect();
        let mut spec = CropSpec::new(specs);
        spec.format = format;
        spec.compression = compression;
        write_crop(&path, &spec).unwrap();
    }
    let names: Vec<String> = classes.iter().map(|c| c.name.clone()).collect();
    let mut choices: Vec<String> = names.clone();
    choices.extend(["lacking_a".to_string(), "lacking_b".to_string()]);
    let nch = rng.range(1, 4) as usize;
    let channels: Vec<Vec<String>> = (0..nch)
        .map(|_| {
            let mut ch: Vec<String> = Vec::new();
            for _ in 0..rng.range(1, 3) {
                let c = if rng.chance(0.85) {
                    rng.pick(&names)
                } else {
                    rng.pick(&choices)
                };
                if !ch.contains(&c) {
                    ch.push(c);
                }
            }
            ch
        })
        .collect();
    let gpath = case.path("classes.json");
    let glist: Vec<Value> = channels
        .iter()
        .enumerate()
        .map(|(i, c)| json!([format!("ch{i}"), c]))
        .collect();
    std::fs::write(&gpath, Value::Array(glist).to_string()).unwrap();

    // What the mask reads: the classes of channels whose classes are all listed.
    let mut listed: Vec<String> = names.clone();
    let read_of = |listed: &[String]| -> BTreeSet<String> {
        channels
            .iter()
            .filter(|ch| ch.iter().all(|c| listed.contains(c)))
            .flatten()
            .cloned()
            .collect()
    };
    let read = read_of(&listed);
    let target = rng.pick(&names);
    let target_read = read.contains(&target);
    let if_read = |e: Expect| if target_read { e } else { Expect::Either };
    let class_dir = path.join(&target);
    let array_dir = class_dir.join("s0");
    let mut expect = Expect::Succeed;
    let mut meaning = true; // a success must equal the oracle (with `listed`, `classes`)
    let mut scale = "s0".to_string();
    let mut extra: Vec<String> = Vec::new();
    let mut groupings = gpath.clone();
    let mut inspect = false;
    let mut crop_attrs = load_attrs(&path, format);
    let mut write_crop_attrs = false;
    let detail: String = match kind {
        "valid" => String::new(),
        "scale-s1" => {
            scale = "s1".into();
            extra.extend(["--scale".to_string(), "s1".to_string()]);
            String::new()
        }
        "scale-missing" => {
            let s = rng.pick(&["s3", "s1/../s0", "", "S0", "../crop7/mito/s0"]);
            extra.extend(["--scale".to_string(), s.to_string()]);
            expect = if s == "s1/../s0" || read.is_empty() {
                Expect::Either
            } else {
                Expect::Fail
            };
            meaning = false;
            format!("--scale {s:?}")
        }
        "crop-attr-removed" => {
            crop_attrs.remove("cellmap");
            write_crop_attrs = true;
            expect = Expect::Fail;
            String::new()
        }
        "crop-attr-garbled" => {
            let at = rng.pick(&[
                "/cellmap",
                "/cellmap/annotation",
                "/cellmap/annotation/class_names",
                "/cellmap/annotation/class_names/0",
            ]);
            let v = rng.pick(&[
                json!(5),
                Value::Null,
                json!([]),
                json!("mito"),
                json!({}),
                json!([[1]]),
                json!(true),
                json!(1.5),
            ]);
            let mut doc = Value::Object(crop_attrs.clone());
            let valid_after = at.ends_with("class_names") && v == json!([]);
            if let Some(x) = doc.pointer_mut(at) {
                *x = v.clone();
            }
            crop_attrs = doc.as_object().unwrap().clone();
            write_crop_attrs = true;
            expect = if valid_after {
                Expect::Either
            } else {
                Expect::Fail
            };
            meaning = false;
            format!("{at}={v}")
        }
        "class-names-reordered" => {
            listed.reverse();
            crop_attrs["cellmap"]["annotation"]["class_names"] = json!(listed);
            write_crop_attrs = true;
            String::new()
        }
        "class-names-drop" => {
            listed.retain(|c| *c != target);
            crop_attrs["cellmap"]["annotation"]["class_names"] = json!(listed);
            write_crop_attrs = true;
            format!("drop {target}")
        }
        "class-names-extra" => {
            let extra_name = rng.pick(&["lacking_a", "ghost", "ves2"]);
            let mut l = listed.clone();
            l.push(extra_name.to_string());
            crop_attrs["cellmap"]["annotation"]["class_names"] = json!(l);
            write_crop_attrs = true;
            // Listed without a sub-group: the crop does not open (synth's documented example).
            expect = Expect::Fail;
            meaning = false;
            format!("+{extra_name}")
        }
        "class-names-dup" => {
            let mut l = listed.clone();
            l.insert(rng.index(l.len() + 1), target.clone());
            crop_attrs["cellmap"]["annotation"]["class_names"] = json!(l);
            write_crop_attrs = true;
            expect = Expect::Fail; // docs/contract.md 1.4: listed twice is an error
            meaning = false;
            format!("{target} twice")
        }
        "class-names-slash" => {
            let bad = rng.pick(&[
                "a/b", "../crop7", "/etc", "mito/s0", "./mito", "a\\b", "..\\x",
            ]);
            let mut l = listed.clone();
            l.push(bad.to_string());
            crop_attrs["cellmap"]["annotation"]["class_names"] = json!(l);
            write_crop_attrs = true;
            expect = Expect::Fail;
            meaning = false;
            format!("+{bad}")
        }
        "class-names-dot" => {
            // Names that cannot name a sub-group (or name none): errors (contract 1.4).
            let bad = rng.pick(&[".", "..", "", " ", "\u{0}"]);
            let mut l = listed.clone();
            l.push(bad.to_string());
            crop_attrs["cellmap"]["annotation"]["class_names"] = json!(l);
            write_crop_attrs = true;
            expect = Expect::Fail;
            meaning = false;
            format!("+{bad:?}")
        }
        "version-weird" => {
            let v = rng.pick(&[
                json!("9.9.9"),
                json!(5),
                Value::Null,
                json!(""),
                json!(["0.1.1"]),
            ]);
            let d = format!("version={v}");
            crop_attrs["cellmap"]["annotation"]["version"] = v;
            write_crop_attrs = true;
            expect = Expect::Either;
            d
        }
        "crop-attr-truncated" | "crop-attr-utf8" => {
            let file = attrs_file(&path, format);
            let original = std::fs::read(&file).unwrap();
            let b = if kind == "crop-attr-truncated" {
                truncate_json(rng, &original)
            } else {
                break_utf8(rng, &original)
            };
            std::fs::write(&file, b).unwrap();
            expect = Expect::Fail;
            meaning = false;
            String::new()
        }
        "class-type-garbled" => {
            let v = rng.pick(&[
                json!("semantic"),
                json!(5),
                Value::Null,
                json!("instance_segmentations"),
                json!({}),
            ]);
            let d = format!("{target} type={v}");
            edit_class(&class_dir, format, scales, |a| {
                a["cellmap"]["annotation"]["annotation_type"]["type"] = v.clone()
            });
            expect = if_read(Expect::Fail);
            d
        }
        "class-encoding-bad" => {
            let how = rng.pick(&[
                "string",
                "float",
                "too-big",
                "too-small",
                "unknown-key",
                "duplicate",
                "not-object",
            ]);
            let c = classes.iter().find(|c| c.name == target).unwrap();
            edit_class(&class_dir, format, scales, |a| {
                let enc = &mut a["cellmap"]["annotation"]["annotation_type"]["encoding"];
                match how {
                    "string" => enc["absent"] = json!("0"),
                    "float" => enc["present"] = json!(1.5),
                    "too-big" => enc["unknown"] = json!(1.8446744073709552e19),
                    "too-small" => enc["unknown"] = json!(-1e19),
                    "unknown-key" => enc["maybe"] = json!(7),
                    "duplicate" => {
                        let codes: Vec<u64> = [c.absent, c.present, c.unknown]
                            .into_iter()
                            .flatten()
                            .collect();
                        let v = codes.first().copied().unwrap_or(0);
                        enc["absent"] = json!(v);
                        enc["present"] = json!(v);
                    }
                    _ => *enc = json!([0, 1, 255]),
                }
            });
            expect = if_read(Expect::Fail);
            format!("{target} {how}")
        }
        "class-encoding-changed" => {
            let i = classes.iter().position(|c| c.name == target).unwrap();
            let c = &mut classes[i];
            let key = rng.pick(&["absent", "present", "unknown"]);
            let others: Vec<u64> = [c.absent, c.present, c.unknown]
                .into_iter()
                .flatten()
                .collect();
            if rng.chance(0.3) {
                match key {
                    "absent" => c.absent = None,
                    "present" => c.present = None,
                    _ => c.unknown = None,
                }
                edit_class(&class_dir, format, scales, |a| {
                    if let Some(e) =
                        a["cellmap"]["annotation"]["annotation_type"]["encoding"].as_object_mut()
                    {
                        e.remove(key);
                    }
                });
                format!("{target} without {key}")
            } else {
                let mut v = voxel_bits(c.dtype, rng.pick(&RAW_IDS));
                if others.contains(&v) {
                    v = rng.next() | 1 << 62;
                }
                match key {
                    "absent" => c.absent = Some(v),
                    "present" => c.present = Some(v),
                    _ => c.unknown = Some(v),
                }
                // Written negative where the bits say so (SPEC: codes sign-extended).
                let j = if v >= 1 << 63 && rng.chance(0.5) {
                    json!(v as i64)
                } else {
                    json!(v)
                };
                edit_class(&class_dir, format, scales, |a| {
                    a["cellmap"]["annotation"]["annotation_type"]["encoding"][key] = j.clone()
                });
                format!("{target} {key}={j}")
            }
        }
        "class-name-mismatch" => {
            let v = rng.pick(&[
                json!("other"),
                json!(5),
                Value::Null,
                json!(format!("{target} ")),
            ]);
            let d = format!("{target} class_name={v}");
            edit_class(&class_dir, format, scales, |a| {
                a["cellmap"]["annotation"]["class_name"] = v.clone()
            });
            expect = if_read(Expect::Fail);
            d
        }
        "class-attr-removed" => {
            let mut a = load_attrs(&class_dir, format);
            a.remove("cellmap");
            save_attrs(&class_dir, format, &a, None);
            expect = if_read(Expect::Fail);
            target.clone()
        }
        "class-group-missing" => {
            std::fs::remove_dir_all(&class_dir).unwrap();
            expect = Expect::Fail;
            meaning = false;
            target.clone()
        }
        "class-array-missing" => {
            std::fs::remove_dir_all(&array_dir).unwrap();
            expect = if_read(Expect::Fail);
            target.clone()
        }
        "class-array-meta-truncated" => {
            let file = meta_file(&array_dir, format);
            let original = std::fs::read(&file).unwrap();
            std::fs::write(&file, truncate_json(rng, &original)).unwrap();
            expect = if_read(Expect::Fail);
            target.clone()
        }
        "class-array-float" => {
            let file = meta_file(&array_dir, format);
            let mut doc: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
            match format {
                ZarrFormat::V2 => doc["dtype"] = json!("<f4"),
                ZarrFormat::V3 => doc["data_type"] = json!("float32"),
            }
            std::fs::write(&file, doc.to_string()).unwrap();
            expect = if_read(Expect::Fail);
            target.clone()
        }
        "class-chunk-corrupt" => {
            let mut chunks = Vec::new();
            fn walk(p: &Path, out: &mut Vec<PathBuf>) {
                for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
                    let path = e.path();
                    if path.is_dir() {
                        walk(&path, out);
                    } else if e
                        .file_name()
                        .to_string_lossy()
                        .chars()
                        .all(|c| c.is_ascii_digit())
                    {
                        out.push(path);
                    }
                }
            }
            walk(&array_dir, &mut chunks);
            chunks.sort();
            if chunks.is_empty() {
                "no chunk".into()
            } else {
                let f = rng.pick(&chunks);
                let b = std::fs::read(&f).unwrap();
                let len = if rng.chance(0.3) {
                    0
                } else {
                    rng.below(b.len().max(1) as u64) as usize
                };
                std::fs::write(&f, &b[..len.min(b.len())]).unwrap();
                expect = if len == 0 {
                    if_read(Expect::Fail)
                } else {
                    Expect::Either
                };
                format!(
                    "{} -> {len} bytes",
                    f.strip_prefix(&path).unwrap().display()
                )
            }
        }
        "class-shape-mismatch" | "class-geometry-mismatch" if read.len() >= 2 && target_read => {
            // Arrays the mask reads must agree in shape, voxel size and offset (contract 1.4).
            expect = Expect::Fail;
            meaning = false;
            if kind == "class-shape-mismatch" {
                let c = classes.iter().find(|c| c.name == target).unwrap();
                let mut s2 = shape.clone();
                s2[0] += 1;
                let m: usize = s2.iter().product();
                let raw: Vec<u64> = (0..m).map(|_| rng.pick(&c.raw)).collect();
                let chunks: Vec<u64> = s2.iter().map(|&s| s as u64).collect();
                let attrs = load_attrs(&array_dir, format);
                std::fs::remove_dir_all(&array_dir).unwrap();
                annomask::synth::write_labels(
                    &array_dir,
                    &common::labels_of(c.dtype, &s2, &raw),
                    &chunks,
                    format,
                    compression,
                    attrs,
                )
                .unwrap();
                format!("{target} shape {s2:?}")
            } else {
                let mut a = load_attrs(&class_dir, format);
                let t = &mut a["multiscales"][0]["datasets"][0]["coordinateTransformations"];
                let d = if rng.chance(0.5) {
                    t[0]["scale"][0] = json!(16.0);
                    "voxel size".to_string()
                } else {
                    t[1]["translation"][0] = json!(8.0);
                    "offset".to_string()
                };
                save_attrs(&class_dir, format, &a, None);
                format!("{target} {d}")
            }
        }
        "class-shape-mismatch" | "class-geometry-mismatch" => "fewer than two classes read".into(),
        "multiscales-garbled" => {
            let mut a = load_attrs(&class_dir, format);
            let mut m = a["multiscales"].clone();
            let d = mutate_json(rng, &mut m, true);
            a.insert("multiscales".into(), m);
            save_attrs(&class_dir, format, &a, None);
            expect = Expect::Either;
            format!("{target} {d}")
        }
        "complement-counts-garbled" => {
            let mut a = load_attrs(&array_dir, format);
            a["cellmap"]["annotation"]["complement_counts"] = hostile_value(rng);
            save_attrs(&array_dir, format, &a, None);
            expect = Expect::Either;
            target.clone()
        }
        "label-options" => {
            let f = rng.pick(&[
                vec!["--policy", "per-voxel"],
                vec!["--background", "0"],
                vec!["--sparse", "missing"],
                vec!["--allow-missing-metadata"],
            ]);
            extra.extend(f.iter().map(|s| s.to_string()));
            expect = Expect::Fail;
            f.join(" ")
        }
        "id-groupings" => {
            groupings = case.path("ids.json");
            std::fs::write(&groupings, r#"[["mito", [3, 4]], ["all", []]]"#).unwrap();
            expect = Expect::Fail;
            String::new()
        }
        "inspect" => {
            inspect = true;
            String::new()
        }
        "empty-class-list" => {
            listed.clear();
            crop_attrs["cellmap"]["annotation"]["class_names"] = json!([]);
            write_crop_attrs = true;
            expect = Expect::Either;
            meaning = false;
            String::new()
        }
        _ => {
            // random node of the crop's or a class's attributes
            let (dir, mut a) = if rng.chance(0.5) {
                (path.clone(), crop_attrs.clone())
            } else {
                (class_dir.clone(), load_attrs(&class_dir, format))
            };
            let mut v = Value::Object(a.clone());
            let d = mutate_json(rng, &mut v, false);
            a = v.as_object().cloned().unwrap_or_default();
            save_attrs(&dir, format, &a, None);
            expect = Expect::Either;
            meaning = false;
            format!(
                "{} {d}",
                dir.strip_prefix(&path).unwrap_or(Path::new("")).display()
            )
        }
    };
    if write_crop_attrs {
        save_attrs(&path, format, &crop_attrs, None);
    }
    case.mutation(format!(
        "{kind} v{} {} {}",
        format.number(),
        compression.name(),
        detail.chars().take(70).collect::<String>()
    ));
    case.guarded = vec![path.clone(), gpath.clone()];
    if inspect || rng.chance(0.06) {
        if !inspect {
            case.mutation("inspect");
        }
        let mut a = vec!["inspect".to_string(), path.display().to_string()];
        if rng.chance(0.8) {
            a.extend(["--groupings".to_string(), groupings.display().to_string()]);
        }
        let json = rng.chance(0.5);
        if json {
            a.push("--json".into());
        }
        a.extend(extra.iter().cloned());
        case.runs.push(Run {
            args: os(&a),
            expect: Expect::Either,
            usage_ok: false,
            json_stdout: json,
        });
        return;
    }
    let out = case.path("mask.zarr");
    let default_engine = rng.chance(0.03);
    if default_engine {
        case.mutation("default-engine");
    }
    let args = compute_args(rng, &path, &groupings, &out, &extra, default_engine);
    case.runs.push(Run {
        args: os(&args),
        expect,
        usage_ok: false,
        json_stdout: false,
    });
    // The oracle: SPEC 1.4 over the classes the crop lists (each once), at the scale.
    let mut seen = BTreeSet::new();
    let mut listed_classes: Vec<OracleClass> = Vec::new();
    for name in &listed {
        if let Some(c) = classes.iter().find(|c| &c.name == name)
            && seen.insert(name.clone())
        {
            listed_classes.push(c.clone());
        }
    }
    let mut at_shape = shape.clone();
    if scale == "s1" {
        for c in &mut listed_classes {
            let (r, s) = downsample_raw(&c.raw, &shape);
            c.raw = r;
            at_shape = s;
        }
        if listed_classes.is_empty() {
            at_shape = shape.iter().map(|s| s.div_ceil(2)).collect();
        }
    }
    let voxels: usize = at_shape.iter().product();
    let mut mask_shape = vec![channels.len() as u64];
    mask_shape.extend(at_shape.iter().map(|&s| s as u64));
    case.check = Check::Mask {
        path: out.join(&scale),
        shape: meaning.then_some(mask_shape),
        data: meaning.then(|| crop_oracle(&listed_classes, &channels, voxels).0),
        partial: false,
        alt: ["multiscales-garbled", "random-node"]
            .contains(&kind)
            .then(|| out.clone()),
    };
}

// ------------------------------------------------------------------------------------------
// Running a case and checking the contract
// ------------------------------------------------------------------------------------------

const DEFAULT_SEED: u64 = 0x5EED_A770_F022_2024;

/// One contract violation.
struct Problem {
    run: usize,
    command: String,
    what: String,
    stderr: String,
}

struct Record {
    family: Family,
    mutation: String,
    index: usize,
    /// Exit code of the last run (None: killed or generator failure).
    code: Option<i32>,
    problems: Vec<Problem>,
    dir: Option<PathBuf>,
    seconds: f64,
    /// A written mask was checked: against the oracle's bytes (`true`) or its shape only.
    checked: Option<bool>,
}

fn shell_quote(a: &str) -> String {
    if !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', "'\\''"))
    }
}

fn command_line(args: &[OsString], dir: &Path) -> String {
    let d = dir.display().to_string();
    let mut s = String::from("annomask");
    for a in args {
        s.push(' ');
        s.push_str(&shell_quote(&a.to_string_lossy().replace(&d, "$CASE")));
    }
    s
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGABRT => "SIGABRT",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGKILL => "SIGKILL",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTRAP => "SIGTRAP",
        _ => "signal",
    }
}

/// Shape and chunk shape of the zarr array at `path`, from its metadata.
fn peek_array(path: &Path) -> Result<(Vec<u64>, Vec<u64>), String> {
    if let Ok(b) = std::fs::read(path.join("zarr.json")) {
        let v: Value = serde_json::from_slice(&b).map_err(|e| e.to_string())?;
        let shape = json_u64_list(v.get("shape")).ok_or("no shape")?;
        let chunks = json_u64_list(v.pointer("/chunk_grid/configuration/chunk_shape"))
            .ok_or("no chunk shape")?;
        return Ok((shape, chunks));
    }
    let b = std::fs::read(path.join(".zarray")).map_err(|e| format!("no array metadata: {e}"))?;
    let v: Value = serde_json::from_slice(&b).map_err(|e| e.to_string())?;
    let shape = json_u64_list(v.get("shape")).ok_or("no shape")?;
    let chunks = json_u64_list(v.get("chunks")).ok_or("no chunks")?;
    Ok((shape, chunks))
}

fn read_mask_array(path: &Path) -> Result<(Vec<u64>, Vec<u8>), String> {
    std::panic::catch_unwind(|| -> Result<(Vec<u64>, Vec<u8>), String> {
        let store = std::sync::Arc::new(
            zarrs::filesystem::FilesystemStore::new(path).map_err(|e| e.to_string())?,
        );
        let array = zarrs::array::Array::open(store, "/").map_err(|e| e.to_string())?;
        let shape = array.shape().to_vec();
        let subset = zarrs::array::ArraySubset::new_with_shape(shape.clone());
        let data: Vec<u8> = array
            .retrieve_array_subset(&subset)
            .map_err(|e| e.to_string())?;
        Ok((shape, data))
    })
    .unwrap_or_else(|_| Err("reading it panicked".into()))
}

fn check_mask(check: &Check) -> Option<String> {
    let Check::Mask {
        path,
        shape,
        data,
        partial,
        alt,
    } = check
    else {
        return None;
    };
    let path = match alt {
        Some(a) if peek_array(path).is_err() && peek_array(a).is_ok() => a,
        _ => path,
    };
    let (got_shape, chunks) = match peek_array(path) {
        Ok(x) => x,
        Err(e) => {
            return Some(format!(
                "exit 0, but no readable mask at {}: {e}",
                path.display()
            ));
        }
    };
    if let Some(shape) = shape
        && &got_shape != shape
    {
        return Some(format!(
            "mask shape {got_shape:?}, the oracle's is {shape:?}"
        ));
    }
    let elems = |v: &[u64]| v.iter().try_fold(1u64, |a, &x| a.checked_mul(x));
    if elems(&got_shape).is_none_or(|n| n > 1 << 26) {
        return Some(format!(
            "mask of shape {got_shape:?}: far larger than the input"
        ));
    }
    if elems(&chunks).is_none_or(|n| n > 1 << 26) && elems(&got_shape).is_some_and(|n| n > 0) {
        return Some(format!(
            "mask chunk shape {chunks:?} (array {got_shape:?}): chunks that large cannot have been written whole"
        ));
    }
    let (got_shape, got) = match read_mask_array(path) {
        Ok(x) => x,
        Err(e) => return Some(format!("the written mask cannot be read back: {e}")),
    };
    if let Some(i) = got.iter().position(|&v| v > 1) {
        return Some(format!(
            "mask value {} at index {i} (must be 0 or 1)",
            got[i]
        ));
    }
    let Some(want) = data else { return None };
    if got.len() != want.len() {
        return Some(format!(
            "mask of {} voxels, the oracle's has {}",
            got.len(),
            want.len()
        ));
    }
    let per_channel = if got_shape.is_empty() {
        1
    } else {
        got_shape[1..].iter().product::<u64>().max(1) as usize
    };
    let bad: Vec<usize> = (0..got.len())
        .filter(|&i| got[i] != want[i] && !(*partial && got[i] == 0))
        .collect();
    bad.first().map(|&i| {
        format!(
            "mask differs from the oracle at {} voxel(s); first: channel {}, voxel {} (C order): got {}, expected {}",
            bad.len(),
            i / per_channel,
            i % per_channel,
            got[i],
            want[i]
        )
    })
}

fn generate(family: Family, rng: &mut Rng, case: &mut Case) {
    match family {
        Family::LabelMeta => family_label_meta(rng, case),
        Family::ArrayMeta => family_array_meta(rng, case),
        Family::Chunks => family_chunks(rng, case),
        Family::Groupings => family_groupings(rng, case),
        Family::Options => family_options(rng, case),
        Family::Crops => family_crops(rng, case),
    }
}

fn run_case(seed: u64, index: usize, keep: bool) -> Record {
    let t0 = Instant::now();
    let family = Family::ALL[index % Family::ALL.len()];
    let mut rng = Rng(mix(seed, index as u64));
    let mut case = Case::new();
    let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        generate(family, &mut rng, &mut case)
    }));
    let mut record = Record {
        family,
        mutation: case.mutation.clone(),
        index,
        code: None,
        problems: Vec::new(),
        dir: None,
        seconds: 0.0,
        checked: None,
    };
    if let Err(e) = made {
        let msg = e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        record.problems.push(Problem {
            run: 0,
            command: String::new(),
            what: format!("the fuzz suite itself failed to make the case: {msg}"),
            stderr: String::new(),
        });
        return record;
    }
    let dir = case.dir.path().to_path_buf();
    let mut codes = Vec::new();
    static GATE: std::sync::RwLock<()> = std::sync::RwLock::new(());
    let (_alone, _shared) = if case.exclusive {
        (Some(GATE.write().unwrap_or_else(|e| e.into_inner())), None)
    } else {
        (None, Some(GATE.read().unwrap_or_else(|e| e.into_inner())))
    };
    for (k, run) in case.runs.iter().enumerate() {
        let before = snapshot(&case.guarded);
        let out = run_binary(&run.args, &dir);
        let after = snapshot(&case.guarded);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let mut found: Vec<String> = Vec::new();
        if out.timed_out {
            found.push(format!(
                "hang: still running after {} s, killed",
                TIMEOUT.as_secs()
            ));
        } else if let Some(sig) = out.signal {
            found.push(format!("killed by {} ({sig})", signal_name(sig)));
        }
        if stderr.contains("panicked") {
            found.push("panic".into());
        }
        if out.peak_rss > PEAK_RSS {
            found.push(format!(
                "memory: peak RSS {} MiB on a tiny input (limit {} MiB)",
                out.peak_rss >> 20,
                PEAK_RSS >> 20
            ));
        }
        let error_lines = stderr.lines().filter(|l| l.starts_with("error:")).count();
        if !out.timed_out && out.signal.is_none() {
            match out.code {
                Some(0) => {
                    if run.expect == Expect::Fail {
                        found.push("accepted an invalid input: exit 0".into());
                    }
                    if error_lines > 0 {
                        found.push(format!(
                            "exit 0 with {error_lines} stderr lines starting with `error:`"
                        ));
                    }
                    if run.json_stdout && serde_json::from_slice::<Value>(&out.stdout).is_err() {
                        found.push("inspect --json printed no valid JSON".into());
                    }
                }
                Some(1) => {
                    if error_lines != 1 {
                        found.push(format!(
                            "exit 1 with {error_lines} stderr lines starting with `error:`"
                        ));
                    }
                    if run.expect == Expect::Succeed {
                        found.push("rejected a valid input: exit 1".into());
                    }
                }
                Some(2) if run.usage_ok && error_lines != 1 => found.push(format!(
                    "exit 2 with {error_lines} stderr lines starting with `error:`"
                )),
                Some(2) if run.usage_ok => {}
                Some(2) => found.push(
                    "exit 2 (command-line syntax error) for a well-formed command line".into(),
                ),
                Some(101) if stderr.contains("panicked") => {} // reported as a panic
                Some(c) => found.push(format!("exit code {c}")),
                None => {}
            }
        }
        if let Some(d) = snapshot_difference(&before, &after) {
            found.push(format!("input modified: {d}"));
        }
        if out.code == Some(1)
            && let Some(p) = &case.untouched_on_error
            && std::fs::symlink_metadata(p).is_ok()
        {
            found.push(format!(
                "failed before computing (bad metadata or groupings) yet wrote {}",
                p.display()
                    .to_string()
                    .replace(&dir.display().to_string(), "$CASE")
            ));
        }
        codes.push(out.code);
        if std::env::var("ANNOMASK_FUZZ_TRACE").is_ok_and(|v| v == "1") {
            let first = stderr
                .lines()
                .find(|l| l.starts_with("error"))
                .unwrap_or("");
            eprintln!(
                "trace #{} [{}] {} | expect {:?} | exit {:?} | {} MiB | {}",
                record.index,
                family.name(),
                record.mutation,
                run.expect,
                out.code,
                out.peak_rss >> 20,
                first.chars().take(200).collect::<String>()
            );
        }
        for what in found {
            record.problems.push(Problem {
                run: k,
                command: command_line(&run.args, &dir),
                what,
                stderr: stderr.clone(),
            });
        }
        if !record.problems.is_empty() {
            break;
        }
    }
    record.code = codes.last().copied().flatten();
    if record.problems.is_empty() && !codes.is_empty() {
        let n = codes.len();
        let check = if codes.iter().all(|c| *c == Some(0)) {
            Some(&case.check)
        } else if codes[..n - 1].iter().all(|c| *c == Some(0)) {
            Some(&case.check_if_last_failed)
        } else {
            None
        };
        record.checked = match check {
            Some(Check::Mask { data: Some(_), .. }) => Some(true),
            Some(Check::Mask { .. }) => Some(false),
            _ => None,
        };
        if let Some(problem) = check.and_then(check_mask) {
            let last = case.runs.last().unwrap();
            record.problems.push(Problem {
                run: n - 1,
                command: command_line(&last.args, &dir),
                what: problem,
                stderr: String::new(),
            });
        }
    }
    if keep {
        record.dir = Some(case.dir.keep());
    }
    record.seconds = t0.elapsed().as_secs_f64();
    record
}

fn env_number(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

/// The kind of a mutation: its first word.
fn kind_of(mutation: &str) -> String {
    mutation.split_whitespace().next().unwrap_or("").to_string()
}

/// What a problem is, without the details that differ from case to case.
fn problem_kind(what: &str) -> String {
    let cut = what
        .find(|c: char| c == ':' || c == ';' || c.is_ascii_digit())
        .unwrap_or(what.len());
    let mut k = what[..cut].trim().to_string();
    if what.starts_with("exit 0 with")
        || what.starts_with("exit 1 with")
        || what.starts_with("exit 2 with")
        || what.starts_with("killed by")
    {
        k = what.split(" (").next().unwrap_or(what).to_string();
    }
    k
}

#[test]
fn the_command_line_keeps_its_contract_on_hostile_inputs() {
    let cases = env_number("ANNOMASK_FUZZ_CASES").unwrap_or(2000) as usize;
    let seed = env_number("ANNOMASK_FUZZ_SEED").unwrap_or(DEFAULT_SEED);
    let threads = env_number("ANNOMASK_FUZZ_THREADS").unwrap_or(2).max(1) as usize;
    let keep = std::env::var("ANNOMASK_FUZZ_KEEP").is_ok_and(|v| v == "1");
    let verbose = std::env::var("ANNOMASK_FUZZ_VERBOSE").is_ok_and(|v| v == "1");
    let indices: Vec<usize> = match std::env::var("ANNOMASK_FUZZ_ONLY") {
        Ok(list) => list
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect(),
        Err(_) => (0..cases).collect(),
    };
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let records: Mutex<Vec<Record>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads.min(indices.len().max(1)) {
            s.spawn(|| {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&i) = indices.get(k) else { break };
                    let r = run_case(seed, i, keep);
                    records.lock().unwrap().push(r);
                }
            });
        }
    });
    let mut records = records.into_inner().unwrap();
    records.sort_by_key(|r| r.index);
    let elapsed = started.elapsed();

    // Counts per family and outcome.
    let mut table: BTreeMap<Family, [usize; 5]> = BTreeMap::new();
    let mut per_kind: BTreeMap<(Family, String), [usize; 5]> = BTreeMap::new();
    let mut kind_seconds: BTreeMap<(Family, String), f64> = BTreeMap::new();
    for r in &records {
        let slot = match (r.problems.is_empty(), r.code) {
            (false, _) => 4,
            (true, Some(0)) => 1,
            (true, Some(1)) => 2,
            (true, _) => 3,
        };
        *kind_seconds
            .entry((r.family, kind_of(&r.mutation)))
            .or_default() += r.seconds;
        for row in [
            table.entry(r.family).or_default(),
            per_kind
                .entry((r.family, kind_of(&r.mutation)))
                .or_default(),
        ] {
            row[0] += 1;
            row[slot] += 1;
        }
    }
    eprintln!(
        "\nannomask fuzz: {} case(s), seed {seed:#x}, {threads} thread(s), {:.1} s, binary {}",
        records.len(),
        elapsed.as_secs_f64(),
        binary().display()
    );
    eprintln!(
        "{:<20} {:>6} {:>6} {:>12} {:>12} {:>9}",
        "family", "cases", "ok", "clean error", "usage (2)", "FAILURES"
    );
    let mut total = [0usize; 5];
    for (f, row) in &table {
        eprintln!(
            "{:<20} {:>6} {:>6} {:>12} {:>12} {:>9}",
            f.name(),
            row[0],
            row[1],
            row[2],
            row[3],
            row[4]
        );
        for (t, v) in total.iter_mut().zip(row) {
            *t += v;
        }
    }
    eprintln!(
        "{:<20} {:>6} {:>6} {:>12} {:>12} {:>9}",
        "all", total[0], total[1], total[2], total[3], total[4]
    );
    let full = records.iter().filter(|r| r.checked == Some(true)).count();
    let shape = records.iter().filter(|r| r.checked == Some(false)).count();
    eprintln!(
        "written masks checked: {full} voxel by voxel against the oracle, {shape} by shape and 0/1 only"
    );
    if verbose {
        let mut slow: Vec<&Record> = records.iter().collect();
        slow.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
        eprintln!("\nslowest cases:");
        for r in slow.iter().take(25) {
            eprintln!(
                "  {:>6.2} s  #{} [{}] {}",
                r.seconds,
                r.index,
                r.family.name(),
                r.mutation.chars().take(100).collect::<String>()
            );
        }
        eprintln!("\nper mutation kind:");
        for ((f, k), row) in &per_kind {
            eprintln!(
                "  {:<20} {:<28} cases {:>4}  ok {:>4}  error {:>4}  usage {:>4}  FAILURES {:>4}  {:>6.1} s",
                f.name(),
                k,
                row[0],
                row[1],
                row[2],
                row[3],
                row[4],
                kind_seconds[&(*f, k.clone())]
            );
        }
    }

    // Failures: distinct kinds first, then each case (truncated).
    let failed: Vec<&Record> = records.iter().filter(|r| !r.problems.is_empty()).collect();
    if !failed.is_empty() {
        let mut distinct: BTreeMap<(Family, String, String), Vec<usize>> = BTreeMap::new();
        for r in &failed {
            for p in &r.problems {
                distinct
                    .entry((r.family, kind_of(&r.mutation), problem_kind(&p.what)))
                    .or_default()
                    .push(r.index);
            }
        }
        eprintln!("\ndistinct failures (family / mutation kind / problem: cases):");
        for ((f, k, p), idx) in &distinct {
            let shown: Vec<String> = idx.iter().take(8).map(usize::to_string).collect();
            eprintln!(
                "  {} / {k} / {p}: {} case(s) [{}{}]",
                f.name(),
                idx.len(),
                shown.join(","),
                if idx.len() > 8 { ",..." } else { "" }
            );
        }
        let limit = env_number("ANNOMASK_FUZZ_SHOW").unwrap_or(60) as usize;
        eprintln!(
            "\nfailed cases ({} of {}):",
            failed.len().min(limit),
            failed.len()
        );
        for r in failed.iter().take(limit) {
            eprintln!(
                "\n#{} [{}] {}\n  reproduce: ANNOMASK_FUZZ_SEED={seed:#x} ANNOMASK_FUZZ_ONLY={} ANNOMASK_FUZZ_KEEP=1 cargo test --test fuzz -- --nocapture",
                r.index,
                r.family.name(),
                r.mutation,
                r.index
            );
            if let Some(d) = &r.dir {
                eprintln!("  kept in {}", d.display());
            }
            for p in &r.problems {
                eprintln!("  run {}: {}", p.run + 1, p.command);
                eprintln!("  PROBLEM: {}", p.what);
                if !p.stderr.is_empty() {
                    let s: String = p.stderr.chars().take(600).collect();
                    for line in s.lines() {
                        eprintln!("    stderr| {line}");
                    }
                }
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} fuzz case(s) broke the contract (listed above)",
        failed.len(),
        records.len()
    );
}
