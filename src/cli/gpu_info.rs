//! `annomask gpu-info`: the adapters found, the one `--engine gpu` selects (its driver and
//! limits), what `--engine auto` picks and why, and `auto`'s trial block timed on the selected
//! adapter (also a software one), as text or JSON.

use crate::engine::{TRIAL_CHANNELS, TRIAL_DTYPE, TRIAL_EDGE, Trial};
use crate::gpu::{GpuContext, GpuEngine};
use crate::{Engine, EngineChoice, LabelDtype};
use clap::Args;
use serde_json::{Map, Value, json};

use crate::cli::CliError;

#[derive(Args, Debug)]
pub struct GpuInfoArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Skip the trial block (`auto` still times its own where it finds a hardware GPU).
    #[arg(long)]
    no_trial: bool,
}

/// The environment variables that choose drivers and backends.
const VARIABLES: [&str; 6] = [
    "WGPU_BACKEND",
    "WGPU_ADAPTER_NAME",
    "VK_DRIVER_FILES",
    "VK_ICD_FILENAMES",
    "VK_ADD_DRIVER_FILES",
    crate::gpu::context::FAIL_AFTER_VARIABLE,
];

fn adapter_json(info: &wgpu::AdapterInfo) -> Value {
    json!({
        "name": info.name,
        "vendor": format!("{:#06x}", info.vendor),
        "device": format!("{:#06x}", info.device),
        "device_type": format!("{:?}", info.device_type),
        "driver": info.driver,
        "driver_info": info.driver_info,
        "backend": format!("{:?}", info.backend),
    })
}

/// `Limits { a: 1, b: 2 }` as `{"a": 1, "b": 2}` (every field of `wgpu::Limits` is a number);
/// the debug text itself if it does not read so.
fn limits_json(limits: &wgpu::Limits) -> Value {
    let text = format!("{limits:?}");
    let inner = text
        .trim()
        .strip_prefix("Limits {")
        .and_then(|t| t.strip_suffix('}'));
    let mut map = Map::new();
    for field in inner.unwrap_or("").split(',') {
        let field = field.trim();
        if field.is_empty() {
            continue;
        }
        match field
            .split_once(':')
            .map(|(k, v)| (k.trim(), v.trim().parse::<u64>()))
        {
            Some((key, Ok(value))) => {
                map.insert(key.to_string(), json!(value));
            }
            _ => return Value::String(text),
        }
    }
    Value::Object(map)
}

fn selected_json(gpu: &GpuEngine) -> Value {
    let ctx = gpu.context();
    let mut value = adapter_json(&ctx.info);
    let blocks: Map<String, Value> = [8usize, 64]
        .into_iter()
        .map(|c| {
            (
                format!("uint64 x {c} channels"),
                json!(gpu.block_voxels(c, LabelDtype::U64.size())),
            )
        })
        .collect();
    let extra = json!({
        "software": ctx.is_software(),
        "describe": ctx.describe(),
        "max_binding_bytes": ctx.max_binding(),
        "block_voxels": blocks,
        "limits": limits_json(&ctx.limits),
    });
    if let (Value::Object(v), Value::Object(e)) = (&mut value, extra) {
        v.extend(e);
    }
    value
}

pub fn run(args: GpuInfoArgs) -> Result<(), CliError> {
    let environment: Map<String, Value> = VARIABLES
        .iter()
        .map(|&k| (k.to_string(), json!(std::env::var(k).ok())))
        .collect();
    let adapters: Vec<Value> = GpuContext::adapters()
        .iter()
        .map(|(info, computes)| {
            let mut a = adapter_json(info);
            if let Value::Object(m) = &mut a {
                m.insert("compute_shaders".into(), json!(computes));
            }
            a
        })
        .collect();
    let gpu = GpuEngine::new();
    let (selected, error) = match &gpu {
        Ok(g) => (selected_json(g), Value::Null),
        Err(e) => (Value::Null, json!(e.to_string())),
    };
    let trial = match (&gpu, args.no_trial) {
        (Ok(g), false) => match Trial::measure(g) {
            Ok(t) => json!({
                "block": format!("{TRIAL_EDGE}^3 {TRIAL_DTYPE} x {TRIAL_CHANNELS} channels"),
                "cpu_seconds": t.cpu_seconds,
                "gpu_seconds": t.gpu_seconds,
                "faster": if t.gpu_wins() { "gpu" } else { "cpu" },
                "describe": t.describe(),
            }),
            Err(e) => json!({ "error": e.to_string() }),
        },
        _ => Value::Null,
    };
    // Done before `auto` makes its own device.
    drop(gpu);
    let auto = Engine::select(EngineChoice::Auto)?.describe();
    let report = json!({
        "annomask": env!("CARGO_PKG_VERSION"),
        "cpu": {
            "model": crate::cli::bench::cpu_model(),
            "threads": rayon::current_num_threads(),
        },
        "environment": environment,
        "adapters": adapters,
        "selected": selected,
        "error": error,
        "trial": trial,
        "auto": auto,
    });
    if args.json {
        say!(
            "{}",
            serde_json::to_string_pretty(&report).expect("JSON values serialise")
        );
    } else {
        print_text(&report);
    }
    match error {
        Value::String(e) => Err(CliError::Usage(e)),
        _ => Ok(()),
    }
}

fn print_text(r: &Value) {
    let s = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    };
    say!(
        "cpu: {}, {} threads",
        s(&r["cpu"]["model"]),
        s(&r["cpu"]["threads"])
    );
    if let Some(env) = r["environment"].as_object() {
        for (k, v) in env.iter().filter(|(_, v)| !v.is_null()) {
            say!("environment: {k}={}", s(v));
        }
    }
    say!("adapters found:");
    for a in r["adapters"].as_array().into_iter().flatten() {
        say!(
            "  {} ({}, {}; vendor {}, device {}; driver {} {}){}",
            s(&a["name"]),
            s(&a["backend"]),
            s(&a["device_type"]),
            s(&a["vendor"]),
            s(&a["device"]),
            s(&a["driver"]),
            s(&a["driver_info"]),
            if a["compute_shaders"] == json!(false) {
                " - no compute shaders, not used"
            } else {
                ""
            }
        );
    }
    let sel = &r["selected"];
    if sel.is_null() {
        say!("selected (--engine gpu): none: {}", s(&r["error"]));
    } else {
        say!("selected (--engine gpu): {}", s(&sel["describe"]));
        say!("  driver: {} {}", s(&sel["driver"]), s(&sel["driver_info"]));
        say!(
            "  largest binding: {} bytes; voxels per block: {}",
            s(&sel["max_binding_bytes"]),
            s(&sel["block_voxels"])
        );
        if let Some(limits) = sel["limits"].as_object() {
            say!("  limits:");
            for (k, v) in limits {
                say!("    {k}: {}", s(v));
            }
        }
    }
    if !r["trial"].is_null() {
        match r["trial"].get("describe") {
            Some(d) => say!(
                "trial on the selected adapter: {} faster {}",
                s(&r["trial"]["faster"]),
                s(d)
            ),
            None => say!(
                "trial on the selected adapter failed: {}",
                s(&r["trial"]["error"])
            ),
        }
    }
    say!("--engine auto: {}", s(&r["auto"]));
}
