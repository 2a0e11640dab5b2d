//! The CellMap part of `annomask bench --feeder`: annomask's feeder and cellmap-data's loader
//! on one crop group in the challenge layout, over the same ROIs, interleaved.
//!
//! [`write_challenge_dataset`] writes the demo crop group (`SIZE`³, four classes, unknown 255 /
//! 2^64-1 in the slab `z < SIZE/4`) translated onto a larger raw (`recon-1/em/fibsem-uint8`,
//! OME-NGFF, `s0` and `s1`), both zarr v2 with 8 nm voxels. The channels are the crop's
//! classes one by one plus `er_lum`, which the crop does not annotate, so both sides read the
//! same four arrays and give five channels. Rows:
//!
//! - annomask's feeder on the crop group with its decoded-chunk cache (the default), and with
//!   `FeederConfig::chunk_cache(0)`: every ROI decodes its chunks again, as when the crops
//!   of a training set outnumber the cache. Each row has its own opened mask, so the cached
//!   row's cache does not serve the other. Targets and mask only: see `crop_feeder` for raw.
//! - cellmap-data's `CellMapDataSplit` + `CellMapDataLoader` (0 workers) through
//!   `scripts/cellmap_data_feeder.py`, raw input array + target array, and the same without
//!   the raw, where a Python with `cellmap_data` is found; else a note says it was skipped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use crate::Coordinate;
use crate::cellmap::synth::{ChallengeDataset, write_challenge_dataset};
use crate::engine::Engine;
use crate::error::Result;
use crate::feeder::{Feeder, FeederConfig};
use crate::groupings::ClassGroupings;
use crate::mask::MissingAnnotationsMask;
use crate::options::MaskOptions;
use crate::raw::RawVolume;
use crate::remote::StoreOptions;
use serde_json::{Value, json};

use super::compute::{TimedRow, run_script, storage};

/// The cellmap-data loader, written next to the dataset and run by the given Python.
pub const CELLMAP_FEEDER: &str = include_str!("../../../scripts/cellmap_data_feeder.py");

/// The channels: each class of the demo crop alone, and `er_lum`, which it does not annotate.
pub const CLASSES: [&str; 5] = ["mito_mem", "mito_lum", "mito", "er_mem", "er_lum"];

/// Voxels of raw around the crop on every side.
const MARGIN: usize = 16;

/// The rows measured on the crop group.
#[derive(Clone, Debug)]
pub struct CellmapSection {
    /// What was measured.
    pub config: String,
    /// annomask's feeder, chunk cache on (the default 1 GiB).
    pub annomask: TimedRow,
    /// annomask's feeder, `chunk_cache(0)`.
    pub annomask_no_cache: TimedRow,
    /// cellmap-data, raw + targets, where run.
    pub cellmap: Option<TimedRow>,
    /// cellmap-data, targets only, where run.
    pub cellmap_no_raw: Option<TimedRow>,
    /// cellmap-data's version and its stack, where run.
    pub versions: Option<Value>,
    /// Whether annomask's rows read the raw too.
    pub annomask_raw: bool,
}

/// What the rounds share.
pub struct CellmapBench {
    dataset: ChallengeDataset,
    cached: Arc<MissingAnnotationsMask>,
    uncached: Arc<MissingAnnotationsMask>,
    /// The raw, opened once per row (the uncached row's never caches chunks).
    raw_cached: Arc<RawVolume>,
    raw_uncached: Arc<RawVolume>,
    config: FeederConfig,
    commands: Option<(Command, Command)>,
    roi_voxels: u64,
    /// Filled by the rounds.
    pub section: CellmapSection,
}

/// Per-class sums of the targets and the mask of a batch's first ROI.
type FirstSums = (Vec<u64>, Vec<u64>);

/// The feeder of one row: targets, mask and the raw at each ROI (cellmap-data's input and
/// target arrays have the same shape here, so no context).
fn crop_feeder(
    mask: &Arc<MissingAnnotationsMask>,
    raw: &Arc<RawVolume>,
    config: &FeederConfig,
) -> Result<Feeder> {
    Feeder::with_raw(vec![mask.clone()], vec![raw.clone()], config.clone())
}

/// Runs a feeder to its end: the seconds after its first batch (a warm-up, not timed, as
/// cellmap-data's script does), and the first ROI's per-channel sums.
fn time_feeder(mut feeder: Feeder) -> Result<(f64, Option<FirstSums>)> {
    let first = match feeder.next() {
        Some(batch) => {
            let batch = batch?;
            Some((
                super::feeder::channel_sums(&batch.targets, 0),
                super::feeder::channel_sums(&batch.mask, 0),
            ))
        }
        None => None,
    };
    let t = Instant::now();
    for batch in feeder {
        let batch = batch?;
        std::hint::black_box(batch.raw.as_ref().expect("with_raw gives raw"));
    }
    Ok((t.elapsed().as_secs_f64(), first))
}

impl CellmapBench {
    /// Writes the dataset into `dir`, opens the crop twice, and prepares the cellmap-data
    /// commands where `python` is given (ROIs: the starts in `rois`, a JSON file).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        dir: &Path,
        size: usize,
        roi: usize,
        batches: usize,
        engine: Engine,
        python: Option<&PathBuf>,
        rois: &Path,
        log: &dyn Fn(&str),
    ) -> Result<Self> {
        log(&format!(
            "writing a CellMap challenge-layout dataset (crop {size}^3, raw {}^3) into {}",
            size + 2 * MARGIN,
            dir.display()
        ));
        let dataset = write_challenge_dataset(dir, "jrc_synth", size, MARGIN)?;
        let groupings = ClassGroupings::new(CLASSES.iter().map(|c| (*c, vec![*c])))
            .expect("distinct class channels");
        let open = || -> Result<Arc<MissingAnnotationsMask>> {
            Ok(Arc::new(MissingAnnotationsMask::open_with_engine(
                &dataset.crop,
                groupings.clone(),
                MaskOptions::default(),
                &Default::default(),
                engine.clone(),
            )?))
        };
        let (cached, uncached) = (open()?, open()?);
        // One warm-up batch, then the timed ones (cellmap-data's script does the same).
        let config = FeederConfig::new(vec![roi as u64; 3])
            .seed(0)
            .batches(batches + 1);
        let commands = match python {
            None => None,
            Some(python) => {
                let script = dir.join("cellmap_data_feeder.py");
                std::fs::write(&script, CELLMAP_FEEDER)
                    .map_err(|e| storage(&script, "the cellmap-data feeder", e))?;
                let command = |raw: bool| {
                    let mut c = Command::new(python);
                    c.arg(&script)
                        .arg("--raw")
                        .arg(&dataset.raw)
                        .arg("--crop")
                        .arg(&dataset.crop)
                        .args(["--classes", &CLASSES.join(",")])
                        .args(["--roi", &roi.to_string()])
                        .args(["--batches", &batches.to_string()])
                        .arg("--rois")
                        .arg(rois);
                    if !raw {
                        c.arg("--no-raw");
                    }
                    c
                };
                Some((command(true), command(false)))
            }
        };
        let section = CellmapSection {
            config: format!(
                "{roi}^3 ROIs of the demo crop group in the CellMap challenge layout ({size}^3, \
                 zarr v2, blosc-lz4, 64^3 chunks, 4 classes + 1 not annotated = 5 channels; raw \
                 uint8 {}^3 around it), {batches} batches of 1 ROI per round, the same ROIs on \
                 every row",
                size + 2 * MARGIN
            ),
            annomask: TimedRow::new("annomask feeder, chunk cache (default)"),
            annomask_no_cache: TimedRow::new("annomask feeder, chunk_cache(0)"),
            cellmap: commands
                .as_ref()
                .map(|_| TimedRow::new("cellmap-data loader, raw + targets")),
            cellmap_no_raw: commands
                .as_ref()
                .map(|_| TimedRow::new("cellmap-data loader, targets only")),
            versions: None,
            annomask_raw: true,
        };
        let open_raw = || -> Result<Arc<RawVolume>> {
            Ok(Arc::new(RawVolume::open(
                &dataset.raw.to_string_lossy(),
                &Coordinate::new(dataset.voxel_size.clone()),
                StoreOptions::default(),
            )?))
        };
        let (raw_cached, raw_uncached) = (open_raw()?, open_raw()?);
        Ok(Self {
            dataset,
            cached,
            uncached,
            raw_cached,
            raw_uncached,
            config,
            commands,
            roi_voxels: (roi as u64).pow(3),
            section,
        })
    }

    /// One interleaved round of every row; checks go to `notes` in the first round.
    pub fn round(&mut self, first_round: bool, notes: &mut Vec<String>) -> Result<()> {
        let (seconds, first) =
            time_feeder(crop_feeder(&self.cached, &self.raw_cached, &self.config)?)?;
        self.section.annomask.push(seconds);
        let no_cache = self.config.clone().chunk_cache(0);
        let (seconds, _) =
            time_feeder(crop_feeder(&self.uncached, &self.raw_uncached, &no_cache)?)?;
        self.section.annomask_no_cache.push(seconds);
        let Some((with_raw, without_raw)) = self.commands.as_mut() else {
            return Ok(());
        };
        let results: std::result::Result<Vec<Value>, String> = [with_raw, without_raw]
            .into_iter()
            .map(|command| run_script(command, "the cellmap-data loader").map(|(line, _)| line))
            .collect();
        let results = match results {
            Ok(results) => results,
            Err(e) => {
                notes.push(format!("cellmap-data rows skipped: {e}"));
                self.commands = None;
                self.section.cellmap = None;
                self.section.cellmap_no_raw = None;
                return Ok(());
            }
        };
        for (line, row) in results.iter().zip([
            self.section.cellmap.as_mut(),
            self.section.cellmap_no_raw.as_mut(),
        ]) {
            if let (Some(s), Some(row)) = (line["seconds"].as_f64(), row) {
                row.push(s);
            }
        }
        if first_round {
            self.section.versions = Some(results[0]["versions"].clone());
            notes.push(self.check(&results[0], first.as_ref()));
        }
        Ok(())
    }

    /// cellmap-data's first-ROI target sums against annomask's: for each annotated class,
    /// cellmap-data's positives are annomask's positives plus the voxels annomask masks out
    /// (the class's unknown code, which `Binarize` (`value > 0`) counts as positive); the
    /// class the crop lacks is NaN there and zeroed (mask 0) here.
    fn check(&self, line: &Value, first: Option<&FirstSums>) -> String {
        let Some((targets, mask)) = first else {
            return "cellmap-data check skipped: annomask gave no batch".into();
        };
        let theirs: Vec<u64> = line["first"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        let nan: Vec<u64> = line["first_nan"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        let v = self.roi_voxels;
        let expected: Vec<u64> = (0..CLASSES.len())
            .map(|c| {
                if mask[c] == 0 && CLASSES[c] == "er_lum" {
                    0
                } else {
                    targets[c] + (v - mask[c])
                }
            })
            .collect();
        let nan_expected: Vec<u64> = CLASSES
            .iter()
            .map(|c| if *c == "er_lum" { v } else { 0 })
            .collect();
        if theirs == expected && nan == nan_expected {
            let unknown: u64 = (0..CLASSES.len())
                .filter(|&c| CLASSES[c] != "er_lum")
                .map(|c| v - mask[c])
                .sum();
            format!(
                "checked: on the first ROI, cellmap-data's positives per class = annomask's \
                 targets + the voxels annomask masks out as unknown ({} such voxels over the \
                 classes here, positive there), and er_lum (not annotated) is NaN there, \
                 zeroed (mask 0) here",
                unknown
            )
        } else {
            format!(
                "cellmap-data's first ROI differs from the expected relation: positives \
                 {theirs:?} (NaN {nan:?}), expected {expected:?} (NaN {nan_expected:?}) from \
                 annomask's targets {targets:?} and mask {mask:?}"
            )
        }
    }

    /// Where the dataset was written (for the logs).
    pub fn root(&self) -> &Path {
        &self.dataset.root
    }
}

impl CellmapSection {
    /// The rows, in order.
    pub fn rows(&self) -> Vec<&TimedRow> {
        let mut rows = vec![&self.annomask, &self.annomask_no_cache];
        rows.extend(self.cellmap.as_ref());
        rows.extend(self.cellmap_no_raw.as_ref());
        rows
    }

    /// `(what, ratio of best times)`: how many times cellmap-data's time each annomask row takes.
    pub fn ratios(&self) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        for (peer, peer_name) in [
            (&self.cellmap, "cellmap-data raw + targets"),
            (&self.cellmap_no_raw, "cellmap-data targets only"),
        ] {
            let Some(peer) = peer else { continue };
            for (ours, name) in [
                (&self.annomask, "annomask"),
                (&self.annomask_no_cache, "annomask chunk_cache(0)"),
            ] {
                out.push((format!("{name} / {peer_name}"), peer.best() / ours.best()));
            }
        }
        out
    }

    /// Machine-readable form (`row` renders one row).
    pub fn to_json(&self, row: &dyn Fn(&TimedRow) -> Value) -> Value {
        json!({
            "config": self.config,
            "rows": self.rows().into_iter().map(row).collect::<Vec<_>>(),
            "ratios": self.ratios().into_iter().map(|(k, v)| json!({"what": k, "batches_per_s_ratio": v})).collect::<Vec<_>>(),
            "cellmap_versions": self.versions,
            "annomask_reads_raw": self.annomask_raw,
        })
    }
}
