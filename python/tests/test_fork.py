"""Fork safety (issue 15, item 1): annomask works in a forked child (multiprocessing's fork
start method, as PyTorch's DataLoader workers on Linux), whether or not the parent opened masks,
computed with them or started a feeder. A child of a parent that had used the CPU engine's
threads used to wait forever for threads that a fork does not copy."""

import multiprocessing
import os
import tempfile

import numpy as np
import pytest

import annomask

pytestmark = pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="no fork on this platform"
)

TIMEOUT = 120  # seconds: a hang fails the test instead of blocking the suite


@pytest.fixture(scope="module")
def crop():
    # Large enough that computing it uses the CPU engine's thread pool.
    d = tempfile.mkdtemp()
    return annomask.write_demo_crop(d, 128, 3)


PARENT = {}


def _child_sum(_):
    fresh = annomask.open(PARENT["crop"], annomask.demo_groupings(), engine="cpu")
    inherited = PARENT["mask"]
    return (
        os.getpid(),
        int(fresh[fresh.roi].sum(dtype=np.int64)),
        int(inherited[inherited.roi].sum(dtype=np.int64)),
    )


def test_forked_children_compute_after_the_parent_did(crop):
    mask = annomask.open(crop, annomask.demo_groupings(), engine="cpu")
    want = int(mask[mask.roi].sum(dtype=np.int64))  # the parent's thread pool is in use now
    PARENT.update(crop=crop, mask=mask)
    with multiprocessing.get_context("fork").Pool(2) as pool:
        got = pool.map_async(_child_sum, range(4)).get(timeout=TIMEOUT)
    assert {pid for pid, _, _ in got} - {os.getpid()}, "ran in children"
    for _, fresh, inherited in got:
        assert fresh == inherited == want


def _child_feeder(_):
    return [(b.index, int(b.mask.sum(dtype=np.int64))) for b in PARENT["feeder"]]


def test_a_feeder_from_the_parent_continues_in_a_child(crop):
    mask = annomask.open(crop, annomask.demo_groupings(), engine="cpu")
    feeder = annomask.Feeder([mask], (16, 16, 16), seed=1, batch_size=1, batches=4)
    first = next(feeder)  # the parent's prefetch thread is running now
    assert first.index == 0
    PARENT["feeder"] = feeder
    with multiprocessing.get_context("fork").Pool(1) as pool:
        got = pool.map_async(_child_feeder, [0]).get(timeout=TIMEOUT)[0]
    # The child restarts the sequence at the next batch, on its own prefetch thread; the
    # parent's feeder still works and yields the same batches.
    want = [(b.index, int(b.mask.sum(dtype=np.int64))) for b in feeder]
    assert got == want and [i for i, _ in got] == [1, 2, 3]


def _child_feeder_of_its_own(_):
    mask = annomask.open(PARENT["crop"], annomask.demo_groupings(), engine="cpu")
    feeder = annomask.Feeder([mask], (16, 16, 16), seed=1, batch_size=2, batches=3)
    return [int(b.mask.sum(dtype=np.int64)) for b in feeder]


def test_a_child_runs_a_feeder_of_its_own(crop):
    mask = annomask.open(crop, annomask.demo_groupings(), engine="cpu")
    mask[mask.roi]
    PARENT["crop"] = crop
    feeder = annomask.Feeder([mask], (16, 16, 16), seed=1, batch_size=2, batches=3)
    want = [int(b.mask.sum(dtype=np.int64)) for b in feeder]
    with multiprocessing.get_context("fork").Pool(2) as pool:
        got = pool.map_async(_child_feeder_of_its_own, range(2)).get(timeout=TIMEOUT)
    assert got == [want, want]
