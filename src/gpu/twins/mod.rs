//! The CPU twins of the shaders, one per kernel, side by side: the same names, bindings and
//! steps as the WGSL, one invocation at a time, run by the tests on the same buffers as the GPU
//! (through the kernels' own host layouts in `gpu/layout/`), so that a mismatch points at the
//! shader or at the host side.
//!
//! | twin | shader | kernel |
//! | --- | --- | --- |
//! | [`mask`] | `shaders/mask.wgsl` | [`crate::gpu::kernels::mask`] |
//! | [`cellmap`] | `shaders/cellmap.wgsl` | [`crate::gpu::kernels::cellmap`] |

pub mod cellmap;
pub mod mask;
