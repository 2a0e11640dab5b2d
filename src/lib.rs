//! # annomask
//!
//! Missing-annotation masks for volumetric electron-microscopy label data, computed on the GPU
//! (wgpu + WGSL) or on the CPU, bit for bit the same.
//!
//! A label crop (a zarr array of integer ids) carries metadata saying, per id, whether the class
//! is *present* in the crop and whether it was *annotated*. A training channel groups ids
//! (`mito = [3, 4, 5]`). Where a class is present but not annotated, training its channel would
//! teach false negatives; the mask switches it off. The mask is `u8`, shape
//! `(channels, *spatial)`: 1 = train here, 0 = don't. The contract is `docs/contract.md`
//! (code comments cite its sections as `SPEC n`).
//!
//! CellMap crop groups (per-class arrays with `absent` / `present` / `unknown` codes, the format
//! of the CellMap segmentation challenge) open through the same API with groupings by class
//! name, and also give training targets; see [`cellmap`].
//!
//! ```
//! use annomask::{synth, Groupings, MaskOptions, MissingAnnotationsMask, ZarrFormat};
//! let dir = tempfile::tempdir()?;
//! let crop = synth::write_demo_crop(dir.path(), 16, ZarrFormat::V2)?;
//! let groupings = Groupings::from_json_str(r#"[["mito", [3, 4, 5]], ["nucleus", [20]]]"#, "inline")?;
//! let mask = MissingAnnotationsMask::open(&crop, groupings, MaskOptions::default())?;
//! println!("{}", mask.plan());
//! let m = mask.get(&mask.roi())?;
//! assert_eq!(m.shape(), &[2, 16, 16, 16]);
//! // id 5 (mito_ribo) is present but not annotated: the mito channel is off everywhere.
//! assert!(m.index_axis(ndarray::Axis(0), 0).iter().all(|&v| v == 0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Whole volumes, block by block (the `compute` command): [`output::MaskOutput`] lays out and
//! creates the mask array, [`pipeline::run`] reads, computes and writes it in overlapping
//! stages with bounded memory, [`blocks`] cuts it into chunk-aligned blocks and shards,
//! [`store::AtomicStore`] writes every chunk atomically, [`batch`] expands many crops
//! and names their outputs, and [`MaskSource`] is the seam every source format implements ([`labels`], [`cellmap`]).
#![warn(missing_docs)]

pub mod batch;
pub mod bits;
pub mod blocks;
pub mod bounded_codecs;
pub mod budget;
pub mod cellmap;
mod chunk_reader;
#[cfg(feature = "cli")]
pub mod cli;
pub mod cpu;
pub mod engine;
pub mod error;
pub mod feeder;
pub mod formats;
pub mod geometry;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod groupings;
pub mod label;
pub mod labels;
pub mod mask;
pub mod n5;
pub mod node;
pub mod options;
pub mod output;
pub mod pipeline;
pub mod raw;
pub mod remote;
pub mod report;
pub mod sink;
pub mod source;
pub mod store;
pub mod synth;
pub mod threads;
pub mod volume;
pub mod zarr_array;

pub use cellmap::{CropGroup, CropOptions, CropPlan};
pub use engine::Engine;
pub use error::{
    CropError, Error, GeometryError, GpuError, GroupingsError, MetadataError, Result, StorageError,
};
pub use geometry::{Coordinate, Geometry, Roi, VoxelRegion};
pub use groupings::{Channel, ChannelGroupings, ClassChannel, ClassGroupings, Groupings};
pub use label::{Label, LabelArray, LabelDtype, LabelSlice};
pub use labels::metadata::{AnnotationState, IdStatus, LabelMetadata, SparsePolicy};
pub use labels::plan::MaskPlan;
pub use labels::{LabelFormat, LabelSource};
pub use mask::MissingAnnotationsMask;
pub use options::{EngineChoice, MaskOptions, MaskPolicy};
pub use source::{MaskSource, SourceBlock, SourceFormat, SourcePlan, SourceReport};
pub use volume::{LabelVolume, ZarrFormat};
