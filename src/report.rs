//! Human-readable summaries of a computed mask.

use std::fmt::Write;

use ndarray::{ArrayD, Axis};

use crate::mask::MissingAnnotationsMask;

/// One line per channel: its members (ids, or classes for a crop group), trained voxels (count
/// and share), and why a channel is off or partly off, in the words of the metadata.
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
    let (members, rules) = mask.source().channel_rules();
    let names = mask.channels();
    let rows: Vec<[String; 4]> = rules
        .into_iter()
        .enumerate()
        .map(|(c, (list, rule))| {
            let trained = trained.get(c).copied().unwrap_or(0);
            let total = voxels.max(1);
            [
                names[c].to_string(),
                list,
                format!("{trained} ({:.1}%)", 100.0 * trained as f64 / total as f64),
                rule,
            ]
        })
        .collect();
    let header = ["channel", members, "trained voxels", "why"];
    table(&header, &rows, &[2])
}

/// A text table: `header` and `rows` in columns two spaces apart, each as wide as its widest
/// cell, left-aligned except the columns in `right`; the last column is not padded.
pub(crate) fn table<R: AsRef<[String]>>(header: &[&str], rows: &[R], right: &[usize]) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r.as_ref()[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    let mut out = String::new();
    for row in std::iter::once(&header[..]).chain(rows.iter().map(AsRef::as_ref)) {
        let last = row.len() - 1;
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, &w))| {
                // Padded by hand: `format!`'s width must fit in 16 bits, and a cell listing
                // a channel's ids can be wider.
                let pad = " ".repeat(w.saturating_sub(cell.len()));
                match (i == last, right.contains(&i)) {
                    (true, _) => cell.clone(),
                    (false, true) => format!("{pad}{cell}"),
                    (false, false) => format!("{cell}{pad}"),
                }
            })
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    out
}
