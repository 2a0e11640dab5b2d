//! Driver chatter kept off the terminal while adapters are probed.
//!
//! Vulkan and GL drivers print to the process's standard error on their own (Mesa's EGL prints
//! `error: XDG_RUNTIME_DIR is invalid or not set` twice when that variable is unset, as on a
//! batch node), which makes a successful run look failed and a failed one show three `error:`
//! lines, `--quiet` or not. [`silenced`] sends file descriptor 2 to a temporary file while the
//! instance, adapters and device are created, and puts it back afterwards; with
//! `ANNOMASK_DRIVER_LOG=1` what the drivers said is printed after all, each line prefixed with
//! `driver: `.

/// The environment variable that shows the drivers' output.
pub const DRIVER_LOG_VARIABLE: &str = "ANNOMASK_DRIVER_LOG";

/// Runs `f` with standard error (the file descriptor, where C code writes) captured.
#[cfg(unix)]
pub fn silenced<T>(f: impl FnOnce() -> T) -> T {
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsRawFd;
    use std::sync::Mutex;
    // One capture at a time: nested or concurrent probes would restore each other's fd.
    static CAPTURE: Mutex<()> = Mutex::new(());
    let _guard = CAPTURE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let Ok(mut file) = tempfile::tempfile() else {
        return f();
    };
    let _ = std::io::stderr().flush();
    // SAFETY: dup/dup2/close on file descriptors this function owns (the duplicate of 2 and
    // the temporary file's); fd 2 is restored before returning, also if `f` panics (guard).
    let saved = unsafe { libc::dup(2) };
    if saved < 0 || unsafe { libc::dup2(file.as_raw_fd(), 2) } < 0 {
        if saved >= 0 {
            unsafe { libc::close(saved) };
        }
        return f();
    }
    struct Restore(i32);
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: `self.0` is the duplicate of the original fd 2, owned here.
            unsafe {
                libc::dup2(self.0, 2);
                libc::close(self.0);
            }
        }
    }
    let restore = Restore(saved);
    let value = f();
    drop(restore);
    if std::env::var_os(DRIVER_LOG_VARIABLE).is_some_and(|v| !v.is_empty() && v != "0") {
        let mut said = String::new();
        if file.rewind().is_ok() && file.read_to_string(&mut said).is_ok() {
            for line in said.lines().filter(|l| !l.trim().is_empty()) {
                eprintln!("driver: {line}");
            }
        }
    }
    value
}

/// Runs `f` (no capture on this platform).
#[cfg(not(unix))]
pub fn silenced<T>(f: impl FnOnce() -> T) -> T {
    f()
}
