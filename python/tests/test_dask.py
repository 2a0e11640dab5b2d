"""annomask on Dask (issue 16): ``annomask.dask.compute`` on a ``distributed.LocalCluster`` with two
worker processes writes the same bytes as ``annomask compute`` (label arrays, crop groups, ROIs,
both policies), survives a killed worker and a killed client (resume), and fails on the client
for bad input; ``mask_array`` and ``map_labels`` equal ``mask[roi]``. Skipped with a note where
dask or distributed is missing, unless ``REQUIRE_DASK=1`` (CI)."""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from scaleout import CASES, assert_same_tree, case_id, expected_trained, inputs, run_cli, tree
from scaleout import require

require("dask")
require("distributed")
require("zarr")

import dask  # noqa: E402
import dask.array as da  # noqa: E402
import zarr  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402

import annomask  # noqa: E402
import annomask.dask as amd  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                           dashboard_address=None, silence_logs=40)
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return inputs(tmp_path_factory.mktemp("inputs"))


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_compute_writes_the_clis_bytes(client, data, case, tmp_path):
    name, kwargs, cli_args = case
    source, groupings, gfile = data[name]
    run_cli(source, gfile, tmp_path / "cli.zarr", *cli_args)
    summary = amd.compute(source, groupings, tmp_path / "dask.zarr", engine="cpu",
                          blocks_per_task=3, **kwargs)
    assert_same_tree(tmp_path / "dask.zarr", tmp_path / "cli.zarr")
    assert summary.trained == expected_trained(source, groupings, kwargs)
    assert summary.blocks_skipped == 0 and summary.blocks_written > 1
    assert summary.channels == [c for c, _ in groupings]
    assert summary.trained_by_channel() == dict(zip(summary.channels, summary.trained))
    # resume: everything is complete, nothing written, the bytes unchanged
    again = amd.compute(source, groupings, tmp_path / "dask.zarr", engine="cpu", resume=True,
                        **kwargs)
    assert (again.blocks_written, again.blocks_skipped) == (0, summary.blocks_written)
    assert_same_tree(tmp_path / "dask.zarr", tmp_path / "cli.zarr")


def test_compute_on_the_default_scheduler_without_a_cluster(data, tmp_path):
    source, groupings, gfile = data["labels-v3"]
    run_cli(source, gfile, tmp_path / "cli.zarr", "--chunks", "24,24,24")
    with dask.config.set(scheduler="threads"):
        amd.compute(source, groupings, tmp_path / "t.zarr", chunks=[24, 24, 24], engine="cpu")
    assert_same_tree(tmp_path / "t.zarr", tmp_path / "cli.zarr")


def _transitions(client):
    return client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.transition_counter)


@pytest.mark.parametrize("bad", ["missing", "groupings", "roi", "foreign", "option"])
def test_bad_input_fails_on_the_client_before_any_task(client, data, tmp_path, bad):
    source, groupings, _ = data["labels-v3"]
    out = tmp_path / "out.zarr"
    kwargs = {}
    if bad == "missing":
        source = tmp_path / "nowhere.zarr/labels"
    elif bad == "groupings":
        groupings = [("mito", ["not-an-id"])]
    elif bad == "roi":
        kwargs["roi"] = ((0, 0, 0), (12, 8, 8))  # not voxel-aligned
    elif bad == "foreign":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    elif bad == "option":
        kwargs["compression"] = "lzma"
    before = _transitions(client)
    with pytest.raises((ValueError, OSError, TypeError)) as e:
        amd.compute(source, groupings, out, **kwargs)
    message = str(e.value)
    assert "\n" not in message and message, message
    assert _transitions(client) == before, "a task was submitted"
    if bad != "foreign":
        assert not out.exists()


def test_a_killed_worker_is_retried_and_the_output_is_the_same(client, tmp_path):
    source = annomask.write_demo_crop(tmp_path, size=64)
    groupings = annomask.demo_groupings()
    gfile = tmp_path / "g.json"
    gfile.write_text(str([list(g) for g in groupings]).replace("'", '"'))
    run_cli(source, gfile, tmp_path / "cli.zarr", "--chunks", "4,8,8")
    out = tmp_path / "dask.zarr"
    pids = client.run(os.getpid)
    results, errors = [], []

    def go():
        try:
            results.append(amd.compute(source, groupings, out, chunks=[4, 8, 8], engine="cpu",
                                       blocks_per_task=16, client=client))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    run = threading.Thread(target=go)
    run.start()
    deadline = time.time() + 60
    while not (out / "c").exists() or sum(1 for _ in (out / "c").rglob("*")) < 50:
        assert time.time() < deadline and run.is_alive(), "the run ended before the kill"
        time.sleep(0.01)
    victim = sorted(pids.values())[0]
    os.kill(victim, signal.SIGKILL)
    killed_mid_run = run.is_alive()
    run.join(120)
    assert not errors, errors
    assert killed_mid_run, "the run ended before the worker was killed: make it longer"
    assert_same_tree(out, tmp_path / "cli.zarr")  # no temporaries left, every chunk right
    assert results[0].blocks_written == 16 * 8 * 8
    client.wait_for_workers(2, timeout=60)
    assert victim not in client.run(os.getpid).values()


CLIENT_SCRIPT = """
import sys, annomask, annomask.dask as amd
from distributed import Client, LocalCluster
if __name__ == "__main__":
    source, out = sys.argv[1], sys.argv[2]
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                      dashboard_address=None) as cluster, Client(cluster):
        amd.compute(source, annomask.demo_groupings(), out, chunks=[4, 8, 8], engine="cpu",
                    blocks_per_task=1)
"""


def test_a_killed_client_resumes_to_the_same_output(client, tmp_path):
    source = annomask.write_demo_crop(tmp_path, size=64)
    gfile = tmp_path / "g.json"
    gfile.write_text(str([list(g) for g in annomask.demo_groupings()]).replace("'", '"'))
    run_cli(source, gfile, tmp_path / "cli.zarr", "--chunks", "4,8,8")
    out = tmp_path / "dask.zarr"
    script = tmp_path / "client.py"
    script.write_text(textwrap.dedent(CLIENT_SCRIPT))
    proc = subprocess.Popen([sys.executable, str(script), source, str(out)],
                            start_new_session=True, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    try:
        while not (out / "c").exists() or sum(1 for _ in (out / "c").rglob("*")) < 50:
            assert proc.poll() is None, "the client ended before it was killed"
            assert time.time() < deadline, "no chunks written"
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the client, its cluster and its workers
        proc.wait()
    written = sum(1 for p in (out / "c").rglob("*") if p.is_file())
    assert 0 < written < 1024
    summary = amd.compute(source, annomask.demo_groupings(), out, chunks=[4, 8, 8],
                          engine="cpu", resume=True)
    assert summary.blocks_skipped > 0 and summary.blocks_written > 0
    assert summary.blocks_written + summary.blocks_skipped == 1024
    assert_same_tree(out, tmp_path / "cli.zarr")


def test_mask_array_is_the_mask(client, data):
    source, groupings, _ = data["labels-v3"]
    mask = annomask.open(source, groupings, engine="cpu")
    arr = amd.mask_array(source, groupings, engine="cpu")
    assert arr.dtype == np.uint8 and arr.shape == (5, 48, 48, 48)
    assert arr.chunks == ((5,), (48,), (48,), (48,))  # the label chunks
    np.testing.assert_array_equal(arr.compute(), mask[mask.roi])
    roi = ((64, 0, 32), (256, 384, 320))
    arr = amd.mask_array(mask, chunks=(10, 20, 16), roi=roi)
    assert arr.chunks[1:] == ((10, 10, 10, 2), (20, 20, 8), (16, 16, 8))
    np.testing.assert_array_equal(arr.compute(), mask[roi])
    m, t = amd.mask_array(mask, chunks=16, roi=roi, targets=True)
    want_m, want_t = mask.get_with_targets(roi)
    got_m, got_t = dask.compute(m, t)
    np.testing.assert_array_equal(got_m, want_m)
    np.testing.assert_array_equal(got_t, want_t)
    b = amd.mask_array(mask, dtype=bool)
    assert b.dtype == bool
    np.testing.assert_array_equal(b.compute(), mask[mask.roi].astype(bool))
    # usable like any dask array
    assert int(amd.mask_array(mask).sum(axis=(1, 2, 3)).compute()[4]) == int(mask[mask.roi][4].sum())


def test_mask_array_of_a_crop_group_and_to_zarr(client, data, tmp_path):
    source, groupings, _ = data["crop-group"]
    mask = annomask.open(source, groupings, engine="cpu")
    arr = amd.mask_array(mask, chunks=(8, 8, 8))
    np.testing.assert_array_equal(arr.compute(), mask[mask.roi])
    da.to_zarr(arr, str(tmp_path / "m.zarr"))
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "m.zarr"))[:], mask[mask.roi])


def test_mask_array_refuses_bad_rois_and_options(data):
    source, groupings, _ = data["labels-v3"]
    mask = annomask.open(source, groupings, engine="cpu")
    with pytest.raises(ValueError, match="voxel"):
        amd.mask_array(mask, roi=((4, 0, 0), (8, 8, 8)))
    with pytest.raises(ValueError):
        amd.mask_array(mask, roi=((0, 0, 0), (8, 8, 800)))
    with pytest.raises(TypeError, match="options"):
        amd.mask_array(mask, policy="per-voxel")
    with pytest.raises(ValueError, match="groupings"):
        amd.mask_array(source)


def test_map_labels_and_compute_labels_equal_the_mask(client, data):
    for policy in ("whole-channel", "per-voxel"):
        source, groupings, _ = data["labels-v3"]
        mask = annomask.open(source, groupings, engine="cpu", policy=policy)
        labels = da.from_zarr(source).rechunk((20, 24, 48))
        got = amd.map_labels(mask, labels)
        assert got.chunks == ((5,),) + labels.chunks
        np.testing.assert_array_equal(got.compute(), mask[mask.roi])
        m, t = amd.map_labels(mask, labels, targets=True)
        want = mask.get_with_targets(mask.roi)
        np.testing.assert_array_equal(m.compute(), want[0])
        np.testing.assert_array_equal(t.compute(), want[1])
        block = zarr.open_array(source)[8:24, 0:16, 40:48]
        roi = ((64, 0, 320), (128, 128, 64))
        np.testing.assert_array_equal(amd.compute_labels(mask, block), mask[roi])
        pair = mask.compute_labels(block, targets=True, dtype=bool)
        np.testing.assert_array_equal(pair[1], mask.get_with_targets(roi, dtype=bool)[1])
    with pytest.raises(TypeError, match="uint64"):
        mask.compute_labels(block.astype(np.int32))


def test_compute_labels_of_a_crop_group(data):
    source, groupings, _ = data["crop-group"]
    mask = annomask.open(source, groupings, engine="cpu")
    group = zarr.open_group(source)
    classes = {name: group[name]["s0"][4:20, 0:24, 8:16] for name in group.group_keys()
               if "s0" in group[name]}
    roi = ((32, 0, 64), (128, 192, 64))
    m, t = mask.compute_labels(classes, targets=True)
    want = mask.get_with_targets(roi)
    np.testing.assert_array_equal(m, want[0])
    np.testing.assert_array_equal(t, want[1])
    with pytest.raises(TypeError, match="dict"):
        mask.compute_labels(next(iter(classes.values())))
