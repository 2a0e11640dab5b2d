//! [`GpuContext`]: instance, adapter, device and queue, created once and shared.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::error::{Cause, GpuError};

/// The environment variable that makes every GPU device of the process fail as a lost device
/// would after that many blocks (a testing aid: `ANNOMASK_GPU_FAIL_AFTER=3` lets three blocks
/// through and loses the device before the fourth is submitted). Read once per process.
pub const FAIL_AFTER_VARIABLE: &str = "ANNOMASK_GPU_FAIL_AFTER";

/// [`FAIL_AFTER_VARIABLE`], read once.
fn fail_after_from_env() -> Option<u64> {
    static VALUE: OnceLock<Option<u64>> = OnceLock::new();
    *VALUE.get_or_init(|| {
        std::env::var(FAIL_AFTER_VARIABLE)
            .ok()
            .and_then(|v| v.trim().parse().ok())
    })
}

/// Whether a software adapter (lavapipe, llvmpipe, SwiftShader: device type `Cpu`) may be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdapterPolicy {
    /// Any adapter that runs compute shaders, hardware first (`--engine gpu`).
    AnyAdapter,
    /// Hardware adapters only (`--engine auto`: a software adapter is slower than the CPU
    /// engine on the same cores).
    HardwareOnly,
}

/// The device a GPU engine runs on.
pub struct GpuContext {
    /// The adapter.
    pub adapter: wgpu::Adapter,
    /// The device, created with the adapter's own limits.
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    /// The adapter's description.
    pub info: wgpu::AdapterInfo,
    /// The device's limits.
    pub limits: wgpu::Limits,
    /// The last error no error scope caught (wgpu would otherwise panic on it).
    pub uncaptured: Arc<Mutex<Option<String>>>,
    /// Why the device was lost, once it is (wgpu's device-lost callback, or the testing hook).
    lost: Arc<Mutex<Option<String>>>,
    /// Blocks submitted so far (counted for the testing hook).
    submitted: AtomicU64,
    /// The testing hook: lose the device before submitting more than this many blocks.
    fail_after: AtomicU64,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// Preference order of device types: discrete, integrated, virtual, other, software.
fn device_rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

/// Preference order of backends: native compute APIs before GL.
fn backend_rank(b: wgpu::Backend) -> u8 {
    match b {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        wgpu::Backend::Gl => 1,
        _ => 2,
    }
}

/// Whether an adapter runs compute shaders.
fn computes(a: &wgpu::Adapter) -> bool {
    a.get_downlevel_capabilities()
        .flags
        .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS)
}

/// A wgpu instance over the primary backends (Vulkan, Metal, DX12) unless `WGPU_BACKEND` (and
/// the other `WGPU_*` variables) say otherwise. Not OpenGL by default: annomask needs compute
/// shaders, which every GPU offers through a primary backend, and probing OpenGL loads Mesa's
/// EGL/llvmpipe driver into the process, whose LLVM clashes with other LLVMs there (importing
/// PyTorch's triton after it crashes the process). `WGPU_BACKEND=gl` still selects it.
fn instance() -> wgpu::Instance {
    let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle();
    descriptor.backends = wgpu::Backends::PRIMARY;
    wgpu::Instance::new(descriptor.with_env())
}

impl GpuContext {
    /// Finds the best adapter allowed by `policy` (honouring `WGPU_BACKEND` and the other
    /// `WGPU_*` variables) and creates a device with the adapter's limits.
    /// Driver output on standard error is captured meanwhile (see [`super::quiet`]).
    pub fn new(policy: AdapterPolicy) -> Result<Self, GpuError> {
        super::quiet::silenced(|| Self::create(policy))
    }

    /// Every adapter found (honouring `WGPU_BACKEND`), with whether it runs compute shaders
    /// (those that do not are never used). Driver output is captured meanwhile.
    pub fn adapters() -> Vec<(wgpu::AdapterInfo, bool)> {
        super::quiet::silenced(|| {
            let instance = instance();
            pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
                .into_iter()
                .map(|a| (a.get_info(), computes(&a)))
                .collect()
        })
    }

    fn create(policy: AdapterPolicy) -> Result<Self, GpuError> {
        let instance = instance();
        let mut adapters: Vec<wgpu::Adapter> =
            pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
                .into_iter()
                .filter(computes)
                .collect();
        let found: Vec<String> = adapters
            .iter()
            .map(|a| {
                let i = a.get_info();
                format!("{} ({:?})", i.name, i.backend)
            })
            .collect();
        if policy == AdapterPolicy::HardwareOnly {
            adapters.retain(|a| a.get_info().device_type != wgpu::DeviceType::Cpu);
        }
        adapters.sort_by_key(|a| {
            let i = a.get_info();
            (device_rank(i.device_type), backend_rank(i.backend))
        });
        let Some(adapter) = adapters.into_iter().next() else {
            let message = if found.is_empty() {
                "no adapter with compute shaders".to_string()
            } else {
                format!("only software adapters: {}", found.join(", "))
            };
            return Err(GpuError::NoAdapter { message });
        };
        let info = adapter.get_info();
        let descriptor = wgpu::DeviceDescriptor {
            label: Some("annomask"),
            required_features: wgpu::Features::empty(),
            required_limits: adapter.limits(),
            memory_hints: wgpu::MemoryHints::Performance,
            ..Default::default()
        };
        let (device, queue) =
            pollster::block_on(adapter.request_device(&descriptor)).map_err(|e| {
                GpuError::Device {
                    adapter: info.name.clone(),
                    message: Cause::error(e),
                }
            })?;
        let uncaptured = Arc::new(Mutex::new(None));
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut slot) = sink.lock() {
                *slot = Some(e.to_string());
            }
        }));
        let lost = Arc::new(Mutex::new(None));
        let sink = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut slot) = sink.lock() {
                slot.get_or_insert_with(|| {
                    if message.is_empty() {
                        format!("{reason:?}")
                    } else {
                        format!("{reason:?}: {message}")
                    }
                });
            }
        });
        let limits = device.limits();
        Ok(Self {
            adapter,
            device,
            queue,
            info,
            limits,
            uncaptured,
            lost,
            submitted: AtomicU64::new(0),
            fail_after: AtomicU64::new(fail_after_from_env().unwrap_or(u64::MAX)),
        })
    }

    /// Why the device was lost, if it was. A lost device computes nothing more: every later
    /// operation of the GPU engine fails with [`GpuError::DeviceLost`].
    pub fn lost(&self) -> Option<String> {
        self.lost.lock().ok().and_then(|l| l.clone())
    }

    /// Fails with [`GpuError::DeviceLost`] if the device was lost.
    pub fn check_lost(&self) -> Result<(), GpuError> {
        match self.lost() {
            None => Ok(()),
            Some(message) => Err(GpuError::DeviceLost {
                adapter: self.info.name.clone(),
                message: message.into(),
            }),
        }
    }

    /// A testing aid: after `blocks` more blocks are submitted, the device is destroyed just
    /// before the next submission, which then goes to a lost device (what
    /// [`FAIL_AFTER_VARIABLE`] does for a whole process). Counts the blocks of every kernel.
    /// The loss is recorded at once (a real loss reaches [`GpuContext::lost`] through wgpu's
    /// device-lost callback, which for a destroyed device comes only once its queue is empty).
    #[doc(hidden)]
    pub fn inject_device_loss_after(&self, blocks: u64) {
        let done = self.submitted.load(Ordering::SeqCst);
        self.fail_after
            .store(done.saturating_add(blocks), Ordering::SeqCst);
    }

    /// Counts a block about to be submitted; loses the device first when the testing hook says
    /// so ([`GpuContext::inject_device_loss_after`]).
    pub(crate) fn before_submit(&self) {
        let n = self.submitted.fetch_add(1, Ordering::SeqCst);
        if n == self.fail_after.load(Ordering::SeqCst) {
            let why = format!(
                "lost on purpose before block {} ({FAIL_AFTER_VARIABLE} or \
                 inject_device_loss_after)",
                n + 1
            );
            if let Ok(mut slot) = self.lost.lock() {
                slot.get_or_insert(why);
            }
            self.device.destroy();
        }
    }

    /// "name (backend, device type)".
    pub fn describe(&self) -> String {
        format!(
            "{} ({:?}, {:?})",
            self.info.name, self.info.backend, self.info.device_type
        )
    }

    /// Whether the adapter is a software rasteriser on the CPU.
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// The largest storage binding, in bytes (also bounded by the largest buffer).
    pub fn max_binding(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
    }

    /// Runs `f` inside validation and out-of-memory error scopes and turns what they catch
    /// into a [`GpuError::Operation`] naming `operation`.
    pub fn scoped<T>(&self, operation: &str, f: impl FnOnce() -> T) -> Result<T, GpuError> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let value = f();
        let errors = [
            pollster::block_on(validation.pop()),
            pollster::block_on(oom.pop()),
        ];
        match errors.into_iter().flatten().next() {
            None => Ok(value),
            Some(e) => Err(GpuError::Operation {
                operation: operation.to_string(),
                message: Cause::error(e),
            }),
        }
    }
}
