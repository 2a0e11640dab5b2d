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
//! | `gpu`, `layout`, `twin` | the GPU kernel `shaders/cellmap.wgsl`: host code, host layout and CPU twin (the last two for the tests only); with the `gpu` feature |
//! | [`report`] | the `inspect` report: class table, plan, warnings |
//! | [`synth`] | writing synthetic crops (tests, demo, docs) |

pub mod attrs;
pub mod cpu;
pub mod crop;
#[cfg(feature = "gpu")]
pub mod gpu;
#[cfg(feature = "gpu")]
#[doc(hidden)]
pub mod layout;
pub mod plan;
pub mod report;
pub mod source;
pub mod synth;
#[cfg(feature = "gpu")]
#[doc(hidden)]
pub mod twin;

pub use crop::{ClassGroup, CropGroup, CropOptions};
pub use plan::{ClassPlan, CropChannelPlan, CropPlan};
pub use report::CropReport;
pub use source::{CropFormat, CropSource};
