//! Criterion benchmarks of the mask engines, each next to a memcpy of the same bytes (labels
//! read once + mask written once) in the same run.
//!
//! Matrix: label dtypes u8/u16/u32/u64 x 1/8/32/64 channels x 128^3 and 256^3, whole-channel
//! policy, plus the per-voxel policy for the headline case (u64, 8 channels). Engines: CPU (bytes
//! and bit-packed); on a GPU: kernel only, end to end (upload + kernel + readback), transfers
//! only. On a software adapter (lavapipe) the GPU benches run only for the headline case: they
//! exercise the path, their numbers say nothing about GPUs. Inputs as `reference_mask.py bench`
//! (labels uniform in 0..40, ids 4 and 11 missing).
//!
//! `cargo bench` runs all; `cargo bench -- u64/8ch` filters.

use std::time::Duration;

use annomask::bits::{MaskLayout, packed_len};
use annomask::engine::{Engine, Outputs};
use annomask::gpu::GpuEngine;
use annomask::synth::{bench_inputs, parallel_copy};
use annomask::{LabelDtype, MaskOptions, MaskPlan, MaskPolicy};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn configs() -> Vec<(usize, LabelDtype, usize, MaskPolicy)> {
    let mut out = Vec::new();
    for size in [128, 256] {
        for dtype in [
            LabelDtype::U8,
            LabelDtype::U16,
            LabelDtype::U32,
            LabelDtype::U64,
        ] {
            for channels in [1, 8, 32, 64] {
                out.push((size, dtype, channels, MaskPolicy::WholeChannel));
            }
        }
        out.push((size, LabelDtype::U64, 8, MaskPolicy::PerVoxel));
    }
    out
}

fn benches(c: &mut Criterion) {
    let gpu = match GpuEngine::new() {
        Ok(g) => {
            eprintln!("GPU benches on {}", g.context().describe());
            Some(g)
        }
        Err(e) => {
            eprintln!("GPU benches skipped: {e}");
            None
        }
    };
    for (size, dtype, channels, policy) in configs() {
        let (labels, groupings, missing) = bench_inputs(size, dtype, channels);
        let plan = MaskPlan::new(&groupings, &missing, &MaskOptions::default().policy(policy));
        let slice = labels.as_slice();
        let (inputs, shape) = ([slice], labels.shape());
        let cpu = Engine::cpu();
        let n = slice.len();
        let label_bytes = (n * dtype.size()) as u64;
        let mask_bytes = (n * channels) as u64;
        let packed_bytes = (packed_len(n) * channels) as u64;
        let mut group = c.benchmark_group(format!("{size}^3/{dtype}/{channels}ch/{policy}"));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(2));

        group.throughput(Throughput::Bytes(label_bytes + mask_bytes));
        let half = ((label_bytes + mask_bytes) / 2) as usize;
        let (src, mut dst) = (vec![7u8; half], vec![1u8; half]);
        group.bench_function("memcpy", |b| {
            b.iter(|| parallel_copy(std::hint::black_box(&mut dst), std::hint::black_box(&src)))
        });
        drop((src, dst));
        let mut out = vec![1u8; mask_bytes as usize];
        group.bench_function("cpu", |b| {
            b.iter(|| {
                cpu.run(&plan, &inputs, shape, Outputs::bytes(&mut out), false)
                    .expect("cpu")
            })
        });
        let mut packed = vec![1u8; packed_bytes as usize];
        group.throughput(Throughput::Bytes(label_bytes + packed_bytes));
        group.bench_function("cpu_bitpacked", |b| {
            b.iter(|| {
                cpu.run(&plan, &inputs, shape, Outputs::bits(&mut packed), false)
                    .expect("cpu")
            })
        });

        let headline = dtype == LabelDtype::U64 && channels == 8;
        if let Some(gpu) = gpu
            .as_ref()
            .filter(|g| headline || !g.context().is_software())
        {
            group.throughput(Throughput::Bytes(label_bytes + mask_bytes));
            group.bench_function("gpu_kernel", |b| {
                b.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| {
                            gpu.kernel_seconds(&plan, slice, MaskLayout::Bytes, 1)
                                .expect("gpu kernel")
                        })
                        .map(Duration::from_secs_f64)
                        .sum()
                })
            });
            group.bench_function("gpu_end_to_end", |b| {
                b.iter(|| {
                    gpu.run(&plan, &inputs, Outputs::bytes(&mut out))
                        .expect("gpu")
                })
            });
            group.bench_function("gpu_transfers_only", |b| {
                b.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| {
                            gpu.transfer_seconds(&plan, slice, &mut out, MaskLayout::Bytes, 1)
                                .expect("gpu transfers")
                        })
                        .map(Duration::from_secs_f64)
                        .sum()
                })
            });
            group.throughput(Throughput::Bytes(label_bytes + packed_bytes));
            group.bench_function("gpu_end_to_end_bitpacked", |b| {
                b.iter(|| {
                    gpu.run(&plan, &inputs, Outputs::bits(&mut packed))
                        .expect("gpu")
                })
            });
        }
        if headline {
            // The same work in voxels per second.
            group.throughput(Throughput::Elements(n as u64));
            group.bench_function("cpu_voxels", |b| {
                b.iter(|| {
                    cpu.run(&plan, &inputs, shape, Outputs::bytes(&mut out), false)
                        .expect("cpu")
                })
            });
        }
        group.finish();
    }
}

criterion_group!(mask, benches);
criterion_main!(mask);
