"""annomask on daisy 2 (issue 16): the ``daisy.Task`` of ``annomask.daisy``, run by
``daisy.run_blockwise`` with two local worker processes, writes the same bytes as
``annomask compute``; its check function makes daisy's resume skip complete blocks; a worker
killed mid-block is replaced and the block rescheduled, with the same output. Skipped with a
note where daisy is missing, unless ``REQUIRE_DASK=1`` (CI)."""

import os
import shutil
import signal
from pathlib import Path

import pytest

from scaleout import CASES, assert_same_tree, case_id, inputs, require, run_cli

require("daisy")

import daisy  # noqa: E402

import annomask  # noqa: E402
import annomask.daisy as amdaisy  # noqa: E402


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return inputs(tmp_path_factory.mktemp("inputs"))


@pytest.fixture(autouse=True)
def daisy_logs(tmp_path, monkeypatch):
    # daisy writes worker logs below the working directory
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("case", CASES[::2] + CASES[1:2] + CASES[5:], ids=case_id)
def test_run_blockwise_with_two_workers_writes_the_clis_bytes(data, case, tmp_path):
    name, kwargs, cli_args = case
    source, groupings, gfile = data[name]
    run_cli(source, gfile, tmp_path / "cli.zarr", *cli_args)
    task = amdaisy.task(source, groupings, tmp_path / "daisy.zarr", engine="cpu",
                        max_workers=2, **kwargs)
    assert isinstance(task, daisy.Task)
    assert daisy.run_blockwise(task, multiprocessing=True, progress=False, summary=False)
    assert_same_tree(tmp_path / "daisy.zarr", tmp_path / "cli.zarr")


def test_resume_skips_complete_blocks(data, tmp_path):
    source, groupings, gfile = data["labels-v3"]
    run_cli(source, gfile, tmp_path / "cli.zarr", "--chunks", "16,16,16")
    out = tmp_path / "daisy.zarr"
    assert amdaisy.compute(source, groupings, out, chunks=[16, 16, 16], engine="cpu")
    chunks = sorted(p for p in (out / "c").rglob("*") if p.is_file())
    assert len(chunks) == 27
    for p in chunks[::3]:
        p.unlink()
    stamps = {p: p.stat().st_mtime_ns for p in chunks[1::3]}
    task = amdaisy.task(source, groupings, out, chunks=[16, 16, 16], engine="cpu", resume=True)
    states = daisy.run_blockwise(task, multiprocessing=True, progress=False, summary=False,
                                 return_states=True)
    state = states["annomask"]
    assert state.skipped_count == 18 and state.completed_count == 27, state
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items()), "a complete block was rewritten"
    assert_same_tree(out, tmp_path / "cli.zarr")


class KillOnce(amdaisy.ProcessBlock):
    """A process function whose worker process dies (SIGKILL) the first time it reaches a block
    of the middle, before writing it; the marker file makes it once."""

    def __init__(self, job, marker):
        super().__init__(job, resume=False)
        self.marker = str(marker)

    def __call__(self, block):
        if block.write_roi.offset[0] >= 128 and not os.path.exists(self.marker):
            Path(self.marker).write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        super().__call__(block)


def test_a_killed_worker_is_replaced_and_its_block_rescheduled(data, tmp_path):
    source, groupings, gfile = data["labels-v3"]
    run_cli(source, gfile, tmp_path / "cli.zarr", "--chunks", "16,16,16")
    out = tmp_path / "daisy.zarr"
    task = amdaisy.task(source, groupings, out, chunks=[16, 16, 16], engine="cpu")
    marker = tmp_path / "killed"
    task.process_function = KillOnce(task._annomask_job, marker)
    states = daisy.run_blockwise(task, multiprocessing=True, progress=False, summary=False,
                                 return_states=True)
    assert marker.exists(), "no worker was killed"
    state = states["annomask"]
    assert state.completed_count == 27 and state.failed_count == 0, state
    task._annomask_job.remove_stale_temporaries()
    assert_same_tree(out, tmp_path / "cli.zarr")


def test_bad_input_fails_before_daisy_starts(data, tmp_path):
    source, groupings, _ = data["labels-v3"]
    with pytest.raises(FileNotFoundError) as e:
        amdaisy.task(tmp_path / "nowhere.zarr", groupings, tmp_path / "out.zarr")
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="not voxel-aligned"):
        amdaisy.task(source, groupings, tmp_path / "out.zarr", roi=((1, 0, 0), (8, 8, 8)))
    assert not (tmp_path / "out.zarr").exists()


def test_block_rois_are_world_units_of_the_output(data, tmp_path):
    source, groupings, _ = data["labels-v3"]
    task = amdaisy.task(source, groupings, tmp_path / "o.zarr", chunks=[16, 16, 16],
                        roi=((64, 0, 32), (256, 384, 320)))
    assert tuple(task.total_roi.offset) == (64, 0, 32)
    assert tuple(task.total_roi.shape) == (256, 384, 320)
    assert tuple(task.write_roi.shape) == (128, 128, 128)
    shutil.rmtree(tmp_path / "o.zarr")
