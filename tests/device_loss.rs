//! A GPU device lost mid-run (issue 17): the GPU engine hands the remaining blocks to the CPU
//! engine, warns once on standard error, and the output is complete and equal, byte for byte,
//! to a CPU-engine run. The loss is injected (`GpuContext::inject_device_loss_after`, or
//! `ANNOMASK_GPU_FAIL_AFTER` for a whole `annomask compute` process): the device is destroyed
//! before the next block's submission, as a driver reset would leave it. Also `auto`'s trial
//! block. Needs a GPU adapter (lavapipe will do): skipped with a note without one, unless
//! `REQUIRE_GPU=1`.

mod common;

use std::path::Path;
use std::sync::Arc;

use annomask::engine::Outputs;
use annomask::gpu::{AdapterPolicy, GpuEngine};
use annomask::output::{MaskOutput, OutputOptions};
use annomask::pipeline::{self, RunOptions};
use annomask::{Engine, EngineChoice, MaskOptions, MissingAnnotationsMask, ZarrFormat};
use common::{annomask, files};

/// A fresh GPU engine (each test loses its own device), or `None` with a note.
fn gpu() -> Option<GpuEngine> {
    match GpuEngine::new() {
        Ok(g) => Some(g),
        Err(e) if std::env::var("REQUIRE_GPU").is_ok_and(|v| v == "1") => {
            panic!("REQUIRE_GPU=1 but no GPU engine: {e}")
        }
        Err(e) => {
            eprintln!("skipping: no GPU adapter ({e}; set REQUIRE_GPU=1 to fail instead)");
            None
        }
    }
}

/// Runs the pipeline over `crop` into `out` (8^3 output chunks: many blocks) with `engine`.
fn run(crop: &Path, groupings: annomask::ChannelGroupings, engine: Engine, out: &Path) -> Vec<u64> {
    let mask = MissingAnnotationsMask::open_with_engine(
        crop,
        groupings,
        MaskOptions::default(),
        &Default::default(),
        engine,
    )
    .unwrap();
    let options = OutputOptions {
        chunks: Some(vec![8, 8, 8]),
        ..OutputOptions::default()
    };
    let output = MaskOutput::new(out, &mask, None, &options).unwrap();
    let summary = pipeline::run(&mask, &output, &RunOptions::default(), &|_| {}).unwrap();
    summary.trained
}

#[test]
fn a_device_lost_mid_run_falls_back_to_the_cpu_with_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let labels = annomask::synth::write_demo_crop(dir.path(), 24, ZarrFormat::V3).unwrap();
    let cellmap_dir = dir.path().join("cellmap");
    std::fs::create_dir(&cellmap_dir).unwrap();
    let crop = annomask::cellmap::synth::write_demo_crop(&cellmap_dir, 24, ZarrFormat::V3).unwrap();
    let sources: [(_, annomask::ChannelGroupings); 2] = [
        (labels, annomask::synth::demo_groupings().into()),
        (crop, annomask::cellmap::synth::demo_groupings().into()),
    ];
    for (k, (source, groupings)) in sources.into_iter().enumerate() {
        let cpu_out = dir.path().join(format!("cpu{k}.zarr"));
        let want = run(&source, groupings.clone(), Engine::cpu(), &cpu_out);
        // Blocks of 256 voxels: each 8^3 pipeline block is two GPU blocks, so the loss comes
        // in the middle of a block, with half of it already read back.
        let Some(gpu) = gpu() else { return };
        let gpu = Arc::new(gpu.with_max_block_voxels(256));
        gpu.context().inject_device_loss_after(5);
        let engine = Engine::gpu(gpu.clone());
        let gpu_out = dir.path().join(format!("gpu{k}.zarr"));
        let got = run(&source, groupings, engine.clone(), &gpu_out);
        let failure = engine.gpu_failure().expect("the injected loss was seen");
        assert!(
            matches!(failure, annomask::GpuError::DeviceLost { .. }),
            "{failure:?}"
        );
        assert!(gpu.context().lost().is_some());
        assert!(
            engine.describe().contains("fell back to the cpu"),
            "{}",
            engine.describe()
        );
        assert_eq!(got, want, "trained voxels, source {k}");
        assert_eq!(files(&gpu_out), files(&cpu_out), "source {k}");
    }
}

#[test]
fn a_failed_gpu_engine_keeps_computing_on_the_cpu() {
    let Some(gpu) = gpu() else { return };
    let gpu = Arc::new(gpu.with_max_block_voxels(64));
    let engine = Engine::gpu(gpu.clone());
    let (labels, groupings, missing) =
        annomask::synth::bench_inputs(12, annomask::LabelDtype::U32, 3);
    let plan = annomask::MaskPlan::new(&groupings, &missing, &MaskOptions::default());
    let inputs = [labels.as_slice()];
    let compute = |engine: &Engine| {
        let mut out = vec![0u8; 3 * labels.as_slice().len()];
        engine
            .run(
                &plan,
                &inputs,
                labels.shape(),
                Outputs::bytes(&mut out),
                true,
            )
            .map(|()| out)
    };
    let want = compute(&Engine::cpu()).unwrap();
    assert_eq!(compute(&engine).unwrap(), want);
    assert!(engine.gpu_failure().is_none());
    // The loss comes at the third of 27 blocks; the call still returns the whole mask, and so
    // do the calls after it (on the CPU), verify included.
    gpu.context().inject_device_loss_after(2);
    for _ in 0..3 {
        assert_eq!(compute(&engine).unwrap(), want);
    }
    assert!(engine.gpu_failure().is_some());
    // The GPU engine itself says it is lost.
    let mut out = vec![0u8; 3 * labels.as_slice().len()];
    let err = gpu
        .run(&plan, &inputs, Outputs::bytes(&mut out))
        .unwrap_err();
    assert!(
        matches!(err, annomask::GpuError::DeviceLost { .. }),
        "{err:?}"
    );
}

#[test]
fn compute_with_a_device_lost_warns_once_and_writes_the_cpu_bytes() {
    if gpu().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let labels = annomask::synth::write_demo_crop(dir.path(), 40, ZarrFormat::V3).unwrap();
    let groupings = dir.path().join("groupings.json");
    let list: Vec<serde_json::Value> = annomask::synth::demo_groupings()
        .channels()
        .iter()
        .map(|c| serde_json::json!([c.name, c.ids]))
        .collect();
    std::fs::write(&groupings, serde_json::Value::Array(list).to_string()).unwrap();
    let compute = |engine: &str, out: &Path| {
        let mut cmd = annomask();
        cmd.args(["compute", "--engine", engine, "--chunks", "8,8,8"])
            .arg(&labels)
            .arg("--groupings")
            .arg(&groupings)
            .arg("--out")
            .arg(out);
        cmd
    };
    let (cpu, gpu) = (dir.path().join("cpu.zarr"), dir.path().join("gpu.zarr"));
    compute("cpu", &cpu).assert().success();
    let run = compute("gpu", &gpu)
        .env("ANNOMASK_GPU_FAIL_AFTER", "3")
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&run.get_output().stdout).to_string();
    let stderr = String::from_utf8_lossy(&run.get_output().stderr).to_string();
    assert!(stdout.contains("engine: gpu"), "{stdout}");
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 1, "one warning: {stderr}");
    assert!(
        warnings[0].contains("GPU engine")
            && warnings[0].contains("lost")
            && warnings[0].contains("cpu engine"),
        "{stderr}"
    );
    assert!(!stderr.contains("error"), "{stderr}");
    assert_eq!(files(&gpu), files(&cpu));
}

#[test]
fn auto_times_a_trial_block_and_says_what_it_measured() {
    if gpu().is_none() {
        return;
    }
    // On a software adapter (lavapipe, the CI's) the CPU engine is far faster: auto keeps it.
    // On a hardware GPU either may win; the note says which and the times.
    let engine = Engine::select_auto(AdapterPolicy::AnyAdapter);
    let note = engine.describe();
    assert!(note.contains("auto: the "), "{note}");
    assert!(note.contains("measured faster"), "{note}");
    assert!(note.contains("end to end"), "{note}");
    let software = GpuEngine::new().unwrap().context().is_software();
    if software {
        assert_eq!(engine.name(), "cpu", "{note}");
        assert!(note.contains("--engine gpu forces it"), "{note}");
    }
    // `Engine::select(Auto)` never tries a software adapter.
    let auto = Engine::select(EngineChoice::Auto).unwrap();
    if software {
        assert!(
            auto.describe().contains("auto: no hardware GPU"),
            "{}",
            auto.describe()
        );
    }
    assert!(auto.describe().contains("auto: "), "{}", auto.describe());
}
