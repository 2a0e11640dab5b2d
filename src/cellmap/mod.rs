//! CellMap crop groups (SPEC 1.4): the format of the CellMap segmentation challenge data.
//!
//! A crop is a zarr group listing its annotated classes in `cellmap.annotation.class_names`;
//! each class is a sub-group with its own encoding (`absent` / `present` / `unknown` codes) and
//! OME-NGFF multiscale arrays. Channels group classes by name, and the mask is
//!
//! - 0 everywhere for a channel with a class the crop does not list (never annotated);
//! - elsewhere 1 where every class of the channel is known (not `unknown`).
//!
//! Targets (for training feeders) are 1 where some class of the channel is positive; `unknown`
//! never is.
//!
//! | module | what |
//! | --- | --- |
//! | [`attrs`] | parsing `cellmap.annotation` of the crop and of each class |
//! | [`crop`] | [`CropGroup`]: opening a crop, its classes and their arrays at a scale |
//! | [`plan`] | [`CropPlan`]: the one description both engines execute |
//! | [`cpu`] | the CPU engine |
//! | [`report`] | the `inspect` report: class table, plan, warnings |
//! | [`synth`] | writing synthetic crops (tests, demo, docs) |
//!
//! The GPU kernel of crop groups (`shaders/cellmap.wgsl`) is the GPU engine's, beside the
//! label-array kernel: `gpu/kernels/cellmap.rs`, its host layout `gpu/layout/cellmap.rs` and
//! its CPU twin `gpu/twins/cellmap.rs` (feature `gpu`).

pub mod attrs;
pub mod cpu;
pub mod crop;
pub mod error;
pub mod plan;
pub mod report;
pub mod source;
pub mod synth;

pub use crop::{ClassGroup, CropGroup, CropOptions};
pub use plan::{ClassPlan, CropPlan};
pub use report::CropReport;
pub use source::{CropFormat, CropSource};
