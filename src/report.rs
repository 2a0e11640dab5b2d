//! Human-readable summaries of a computed mask.

use std::fmt::Write;

use ndarray::{ArrayD, Axis};

use crate::mask::MissingAnnotationsMask;
use crate::options::MaskPolicy;

/// One line per channel: ids, trained voxels (count and share), and why a channel is off or
/// partly off, in the words of the metadata.
pub fn channel_table(mask: &MissingAnnotationsMask, data: &ArrayD<u8>) -> String {
    let trained: Vec<u64> = (0..mask.num_channels())
        .map(|c| {
            data.index_axis(Axis(0), c)
                .iter()
                .filter(|&&v| v == 1)
                .count() as u64
        })
        .collect();
    let voxels = data.len().checked_div(mask.num_channels()).unwrap_or(0) as u64;
    channel_table_counts(mask, &trained, voxels)
}

/// [`channel_table`] from counts: `trained[c]` voxels of channel `c` are 1, out of `voxels`
/// (what a streaming run accumulates, as it never holds the whole mask).
///
/// ```
/// use annomask::{report, synth, EngineChoice, MaskOptions, MissingAnnotationsMask, ZarrFormat};
/// let dir = tempfile::tempdir()?;
/// let crop = synth::write_demo_crop(dir.path(), 8, ZarrFormat::V3)?;
/// let mask = MissingAnnotationsMask::open(&crop, synth::demo_groupings(),
///     MaskOptions::default().engine(EngineChoice::Cpu))?;
/// let table = report::channel_table_counts(&mask, &[0, 0, 10, 20, 256], 512);
/// assert!(table.contains("256 (50.0%)"), "{table}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn channel_table_counts(mask: &MissingAnnotationsMask, trained: &[u64], voxels: u64) -> String {
    let plan = mask.plan();
    let sparse = mask.options().sparse;
    let rows: Vec<[String; 4]> = plan
        .channels()
        .iter()
        .enumerate()
        .map(|(c, ch)| {
            let trained = trained.get(c).copied().unwrap_or(0);
            let total = voxels.max(1);
            let why: Vec<String> = ch
                .missing
                .iter()
                .map(|&id| {
                    let name = mask
                        .metadata()
                        .entry(id)
                        .and_then(|e| e.name.clone())
                        .map_or_else(String::new, |n| format!(" ({n})"));
                    format!(
                        "id {id}{name} {}",
                        mask.metadata().status(id, sparse).explain()
                    )
                })
                .collect();
            let rule = if ch.zeroed {
                format!("off everywhere: {}", why.join("; "))
            } else if plan.policy() == MaskPolicy::PerVoxel && !why.is_empty() {
                format!(
                    "on where labels != {}, except {}",
                    plan.background(),
                    why.join("; ")
                )
            } else {
                format!("on where labels != {}", plan.background())
            };
            [
                ch.name.clone(),
                format!("{:?}", ch.ids),
                format!("{trained} ({:.1}%)", 100.0 * trained as f64 / total as f64),
                rule,
            ]
        })
        .collect();
    let header = ["channel", "ids", "trained voxels", "why"];
    let widths: Vec<usize> = (0..4)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in std::iter::once(header.map(str::to_string)).chain(rows) {
        let _ = writeln!(
            out,
            "{:<w0$}  {:<w1$}  {:>w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
    }
    out
}
