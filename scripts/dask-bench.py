"""Scale-out benchmark (issue 16): ``annomask compute`` (the CLI, a process) against
``annomask.dask.compute`` on a ``distributed.LocalCluster`` of 2 and of 1 worker processes (one
thread each), and ``annomask.daisy.compute`` with 2 workers, side by side in interleaved rounds
on one 256^3 uint64 crop (zarr v3, blosc-lz4, 64^3 chunks), 8 channels, CPU engine.

    python scripts/dask-bench.py [--size 256] [--rounds 7] [--cli PATH] [--dir DIR]

Cluster start-up is not timed (a cluster serves many jobs); everything ``compute`` does is:
opening and checking on the client, creating the output, the tasks, the summary. The CLI is
timed as a whole process, start-up included. Build both in release mode first
(``cargo build --release --bin annomask``, ``maturin develop --release -m python/Cargo.toml``).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time

import annomask
import annomask.dask as amd

GROUPINGS = [
    ("mito", [3, 4, 5]),
    ("er", [16, 17]),
    ("nucleus", [20, 21]),
    ("ecs", [1]),
    ("all", []),
    ("mito_mem", [3]),
    ("nucleus_ecs", [1, 20, 21]),
    ("membranes", [3, 16, 20]),
]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--cli", default=shutil.which("annomask"))
    p.add_argument("--dir", default=None)
    p.add_argument("--daisy", action="store_true", help="also time annomask.daisy.compute")
    args = p.parse_args()
    from distributed import Client, LocalCluster

    work = tempfile.mkdtemp(dir=args.dir)
    crop = annomask.write_demo_crop(work, size=args.size)
    gfile = os.path.join(work, "g.json")
    with open(gfile, "w") as f:
        json.dump([list(g) for g in GROUPINGS], f)
    voxels = args.size**3

    clusters = {}
    for n in (2, 1):
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=40)
        clusters[n] = (cluster, Client(cluster, set_as_default=False))

    def out(name):
        path = os.path.join(work, name)
        shutil.rmtree(path, ignore_errors=True)
        return path

    def cli():
        o = out("cli.zarr")
        t = time.perf_counter()
        subprocess.run([args.cli, "compute", crop, "--groupings", gfile, "--out", o,
                        "--engine", "cpu", "--quiet"], check=True)
        return time.perf_counter() - t

    def dask_run(n):
        def run():
            o = out(f"dask{n}.zarr")
            t = time.perf_counter()
            amd.compute(crop, GROUPINGS, o, engine="cpu", client=clusters[n][1])
            return time.perf_counter() - t
        return run

    def daisy_run():
        import annomask.daisy as amdaisy
        o = out("daisy.zarr")
        t = time.perf_counter()
        assert amdaisy.compute(crop, GROUPINGS, o, engine="cpu", max_workers=2)
        return time.perf_counter() - t

    rows = [("annomask compute (CLI process)", cli),
            ("annomask.dask.compute, 2 workers", dask_run(2)),
            ("annomask.dask.compute, 1 worker", dask_run(1))]
    if args.daisy:
        rows.append(("annomask.daisy.compute, 2 workers", daisy_run))
    cwd = os.getcwd()
    os.chdir(work)  # daisy's worker logs
    for _, f in rows:  # warm-up: page cache, worker imports
        f()
    times = {name: [] for name, _ in rows}
    for _ in range(args.rounds):
        for name, f in rows:
            times[name].append(f())
    os.chdir(cwd)
    for _, c in clusters.values():
        c.close()
    for cluster, _ in clusters.values():
        cluster.close()

    print(f"{args.size}^3 uint64 crop (zarr v3, blosc-lz4, 64^3 chunks), {len(GROUPINGS)} channels, "
          f"engine cpu, best of {args.rounds} interleaved rounds, {os.cpu_count()} cores")
    print(f"{'':40} {'best s':>8} {'median s':>9} {'Mvox/s':>8} {'x CLI':>7}")
    base = min(times[rows[0][0]])
    for name, _ in rows:
        best, med = min(times[name]), statistics.median(times[name])
        print(f"{name:40} {best:8.3f} {med:9.3f} {voxels / best / 1e6:8.1f} {best / base:6.2f}x")
    med_ratio = statistics.median(times[rows[1][0]]) / statistics.median(times[rows[0][0]])
    print(f"dask (2 workers) / CLI: {min(times[rows[1][0]]) / base:.2f}x best, "
          f"{med_ratio:.2f}x median (target <= 1.3x)")
    print(f"dask 1 -> 2 workers: {min(times[rows[2][0]]) / min(times[rows[1][0]]):.2f}x faster")
    print(f"CLI per core: {voxels / base / 1e6 / os.cpu_count():.1f} Mvox/s")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
