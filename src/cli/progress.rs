//! Progress of a `compute` run: an indicatif bar on a terminal (voxels/s, ETA), plain log lines
//! otherwise (a batch job's log), or nothing under `--quiet`. Both go to stderr, so stdout holds
//! only results.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::pipeline::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Seconds between two plain log lines.
const LOG_EVERY: Duration = Duration::from_secs(5);

pub enum Reporter {
    Quiet,
    Bar(ProgressBar),
    Log {
        label: String,
        last: Mutex<Option<Instant>>,
    },
}

impl Reporter {
    /// A reporter for one crop, labelled `label`.
    pub fn new(quiet: bool, label: &str) -> Self {
        if quiet {
            Reporter::Quiet
        } else if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {percent:>3}% {msg}")
                    .expect("the template is valid")
                    .progress_chars("=> "),
            );
            bar.set_prefix(label.to_string());
            Reporter::Bar(bar)
        } else {
            Reporter::Log {
                label: label.to_string(),
                last: Mutex::new(None),
            }
        }
    }

    pub fn update(&self, p: &Progress) {
        match self {
            Reporter::Quiet => {}
            Reporter::Bar(bar) => {
                bar.set_length(p.voxels_total.max(1));
                bar.set_position(p.voxels_done);
                bar.set_message(status(p));
            }
            Reporter::Log { label, last } => {
                let mut last = last.lock().expect("log lock");
                let now = Instant::now();
                let finished = p.blocks_done == p.blocks_total;
                let due = last.is_none_or(|t| now.duration_since(t) >= LOG_EVERY);
                if p.blocks_done == 0 && last.is_none() {
                    let skipped = if p.blocks_skipped > 0 {
                        format!(" ({} skipped as complete)", p.blocks_skipped)
                    } else {
                        String::new()
                    };
                    eprintln!(
                        "{label}: starting: {} blocks, {} voxels{skipped}",
                        p.blocks_total, p.voxels_total
                    );
                    *last = Some(now);
                } else if finished || due {
                    let percent = if p.voxels_total == 0 {
                        100.0
                    } else {
                        100.0 * p.voxels_done as f64 / p.voxels_total as f64
                    };
                    eprintln!("{label}: {percent:.0}% {}", status(p));
                    *last = Some(now);
                }
            }
        }
    }

    pub fn finish(&self) {
        if let Reporter::Bar(bar) = self {
            bar.finish();
            // indicatif leaves the cursor at the end of the finished bar's line.
            eprintln!();
        }
    }
}

/// `12/40 blocks (3 skipped), 18.2 Mvox/s, ETA 7 s`.
fn status(p: &Progress) -> String {
    let seconds = p.elapsed.as_secs_f64();
    let rate = if seconds > 0.0 {
        p.voxels_done as f64 / seconds
    } else {
        0.0
    };
    let skipped = if p.blocks_skipped > 0 {
        format!(" ({} skipped as complete)", p.blocks_skipped)
    } else {
        String::new()
    };
    let eta = if p.blocks_done == p.blocks_total {
        format!("done in {}", duration(seconds))
    } else if rate > 0.0 {
        format!(
            "ETA {}",
            duration((p.voxels_total - p.voxels_done) as f64 / rate)
        )
    } else {
        "ETA -".to_string()
    };
    format!(
        "{}/{} blocks{skipped}, {}, {eta}",
        p.blocks_done,
        p.blocks_total,
        voxel_rate(rate)
    )
}

/// `18.2 Mvox/s`.
pub fn voxel_rate(per_second: f64) -> String {
    let (value, unit) = if per_second >= 1e9 {
        (per_second / 1e9, "Gvox/s")
    } else if per_second >= 1e6 {
        (per_second / 1e6, "Mvox/s")
    } else if per_second >= 1e3 {
        (per_second / 1e3, "kvox/s")
    } else {
        (per_second, "vox/s")
    };
    format!("{value:.1} {unit}")
}

/// `850 ms`, `7.2 s`, `3 min 20 s`.
pub fn duration(seconds: f64) -> String {
    if seconds < 1.0 {
        format!("{:.0} ms", seconds * 1e3)
    } else if seconds < 60.0 {
        format!("{seconds:.1} s")
    } else {
        let s = seconds.round() as u64;
        format!("{} min {} s", s / 60, s % 60)
    }
}
