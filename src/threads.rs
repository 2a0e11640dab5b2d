//! A rayon thread pool that works in this process, forked children included.
//!
//! `fork` copies only the calling thread: in a child of a process that used rayon's global
//! pool, that pool's worker threads do not exist, and the first parallel step waits for them
//! forever (PyTorch's `DataLoader` workers and `multiprocessing` fork on Linux). [`install`]
//! runs a closure on the global pool in the process that first called it, and on a pool of
//! this process's own in any other (a forked child, or a child of a child): its parallel steps,
//! and those of zarrs inside it, then run on threads that exist. The pools a child inherited
//! are left alone (never dropped: their locks may be held by threads that are gone).
//!
//! ```
//! let sum: u64 = annomask::threads::install(|| {
//!     use rayon::prelude::*;
//!     (0..1000u64).into_par_iter().sum()
//! });
//! assert_eq!(sum, 499500);
//! ```

use std::sync::{Arc, Mutex, OnceLock};

/// The process whose rayon global pool [`install`] uses: the first that called it.
static FIRST_PID: OnceLock<u32> = OnceLock::new();

/// This process's own pool, when it is not the first: `(pid, pool)`.
static OWN_POOL: Mutex<Option<(u32, Arc<rayon::ThreadPool>)>> = Mutex::new(None);

/// Whether this process is a fork of the one that first used annomask's threads.
pub fn is_forked() -> bool {
    *FIRST_PID.get_or_init(std::process::id) != std::process::id()
}

/// The pool for this process when it is a fork (see the module docs); `None` in the first
/// process, which uses rayon's global pool.
fn own_pool() -> Option<Arc<rayon::ThreadPool>> {
    if !is_forked() {
        return None;
    }
    let pid = std::process::id();
    let mut slot = OWN_POOL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match slot.as_ref() {
        Some((owner, pool)) if *owner == pid => Some(pool.clone()),
        _ => {
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .ok()
                .map(Arc::new);
            // A pool inherited from the parent has no threads here: forget it, never drop it.
            if let Some(inherited) = slot.take() {
                std::mem::forget(inherited);
            }
            if let Some(pool) = &pool {
                *slot = Some((pid, pool.clone()));
            }
            pool
        }
    }
}

/// Runs `f` where its rayon work has threads: the global pool in the first process, this
/// process's own pool in a forked child (see the module docs).
pub fn install<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    match own_pool() {
        Some(pool) => pool.install(f),
        None => f(),
    }
}

/// The value in `slot` if this process made it, else a new one from `make`, kept for the
/// life of the process: a pool or runtime whose threads a `fork` does not copy is made again
/// in the child (the parent's is leaked there, never dropped: its threads are not the child's
/// to join).
pub(crate) fn per_process<T: Sync>(
    slot: &Mutex<Option<(u32, &'static T)>>,
    make: impl FnOnce() -> T,
) -> &'static T {
    let pid = std::process::id();
    let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
    match *slot {
        Some((owner, value)) if owner == pid => value,
        _ => {
            let value: &'static T = Box::leak(Box::new(make()));
            *slot = Some((pid, value));
            value
        }
    }
}
