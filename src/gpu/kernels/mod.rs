//! The kernels of the GPU engine and their registry.
//!
//! A kernel ([`GpuKernel`]) is one compiled shader with the buffers it reuses from call to
//! call. A [`crate::gpu::GpuEngine`] keeps the kernels it has built in a [`Kernels`] registry,
//! one per type, built on first use ([`crate::gpu::GpuEngine::with_kernel`]); the engine names
//! none of them. A new kernel is one module here that implements [`GpuKernel`] and an
//! `impl GpuEngine` block of its own that calls `with_kernel` (the pattern of vello's
//! `WgpuEngine::add_compute_shader`, with the type as the handle), plus its CPU twin in
//! `gpu/twins/` and its host layout in `gpu/layout/`.
//!
//! | kernel | shader | computes |
//! | --- | --- | --- |
//! | [`mask::MaskKernel`] | `shaders/mask.wgsl` | the mask of a label array, bytes or bit-packed, and targets |
//! | [`cellmap::CellmapKernel`] | `shaders/cellmap.wgsl` | the mask and targets of a crop group |

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::GpuContext;
use crate::error::GpuError;

pub mod cellmap;
pub mod mask;

/// One compiled kernel and its reusable buffers, built once per engine.
pub trait GpuKernel: Send + 'static {
    /// Compiles the kernel on `ctx` (shader module, layouts, pipelines) and sets up its buffers.
    fn build(ctx: &GpuContext) -> Result<Self, GpuError>
    where
        Self: Sized;
}

/// A built kernel, behind the lock that serialises its calls.
type Entry = Arc<Mutex<Box<dyn Any + Send>>>;

/// The kernels of one engine, by type.
#[derive(Default)]
pub struct Kernels {
    built: Mutex<HashMap<TypeId, Entry>>,
}

/// Locks `m`, keeping the data of a lock poisoned by a panicking caller (a kernel's state is
/// buffers, valid whatever a caller did with them).
fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Kernels {
    /// Runs `f` on kernel `K`, building it on `ctx` first if this registry has not yet. Calls
    /// on one kernel are serialised; different kernels run side by side.
    pub fn with<K: GpuKernel, R>(
        &self,
        ctx: &GpuContext,
        f: impl FnOnce(&mut K) -> Result<R, GpuError>,
    ) -> Result<R, GpuError> {
        let entry = {
            let mut built = lock(&self.built);
            match built.get(&TypeId::of::<K>()) {
                Some(entry) => Arc::clone(entry),
                None => {
                    let entry: Entry = Arc::new(Mutex::new(Box::new(K::build(ctx)?)));
                    built.insert(TypeId::of::<K>(), Arc::clone(&entry));
                    entry
                }
            }
        };
        let mut kernel = lock(&entry);
        f(kernel
            .downcast_mut::<K>()
            .expect("a kernel is registered under its own type"))
    }
}

impl std::fmt::Debug for Kernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernels")
            .field("built", &lock(&self.built).len())
            .finish()
    }
}
