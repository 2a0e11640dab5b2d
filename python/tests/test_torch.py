"""annomask.torch with PyTorch's DataLoader: tensors, worker sharding (fork and spawn), epochs,
pin_memory, the map-style dataset, and a training step. Skips without torch unless
REQUIRE_TORCH=1."""

import os
import pickle

import numpy as np
import pytest

if os.environ.get("REQUIRE_TORCH") == "1":
    import torch
else:
    torch = pytest.importorskip("torch")

import annomask
import annomask.torch as at
from torch.utils.data import DataLoader


@pytest.fixture(scope="module")
def group(tmp_path_factory):
    d = tmp_path_factory.mktemp("group")
    path = annomask.write_demo_crop_group(d, 24)
    return path, annomask.demo_class_groupings(), os.path.join(path, "mito_mem")


def dataset(group, **kw):
    path, groupings, raw = group
    return at.FeederDataset(path, (8, 8, 8), groupings=groupings, raw=raw, context=2,
                            batch_size=2, batches_per_epoch=6, engine="cpu", **kw)


def collect(loader):
    return [{k: v.clone() for k, v in b.items()} for b in loader]


def test_tensors_have_the_training_dtypes_and_shapes(group):
    (b,) = collect(DataLoader(dataset(group), batch_size=None))[:1]
    assert b["targets"].dtype == torch.float32 and b["mask"].dtype == torch.float32
    assert b["raw"].shape == (2, 1, 12, 12, 12) and b["raw"].dtype == torch.float32
    assert 0 <= b["raw"].min() and b["raw"].max() <= 1
    assert b["targets"].shape == b["mask"].shape == (2, 3, 8, 8, 8)


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_workers_yield_the_one_process_sequence(group, context):
    ds = dataset(group)
    want = collect(DataLoader(ds, batch_size=None, num_workers=0))
    got = collect(DataLoader(ds, batch_size=None, num_workers=2, multiprocessing_context=context))
    assert len(got) == len(want) == 6
    for a, b in zip(want, got):
        for key in a:
            assert torch.equal(a[key], b[key]), key


def test_epochs_differ_and_repeat(group):
    ds = dataset(group)
    first = collect(DataLoader(ds, batch_size=None))
    ds.set_epoch(1)
    second = collect(DataLoader(ds, batch_size=None))
    ds.set_epoch(0)
    again = collect(DataLoader(ds, batch_size=None))
    assert not torch.equal(first[0]["raw"], second[0]["raw"]) or not torch.equal(
        first[1]["raw"], second[1]["raw"])
    assert all(torch.equal(a["mask"], b["mask"]) for a, b in zip(first, again))


def test_pin_memory_and_pickling(group):
    ds = pickle.loads(pickle.dumps(dataset(group)))
    batches = collect(DataLoader(ds, batch_size=None, num_workers=2, pin_memory=True))
    assert len(batches) == 6


def test_map_style_tiles_with_nan_targets(group):
    path, groupings, raw = group
    ds = at.RoiDataset.tiles([path], (8, 8, 8), groupings=groupings, raw=[raw], context=1,
                             targets="nan", engine="cpu")
    assert len(ds) == 27
    loader = DataLoader(ds, batch_size=4, num_workers=2, multiprocessing_context="spawn")
    items = collect(loader)
    assert sum(b["mask"].shape[0] for b in items) == 27
    b = items[0]
    assert b["raw"].shape == (4, 1, 10, 10, 10)
    assert torch.isnan(b["targets"]).sum() == (b["mask"] == 0).sum()


def test_a_training_step_uses_mask_as_the_loss_weight(group):
    ds = dataset(group, mirror=True, transpose=True)
    model = torch.nn.Conv3d(1, 3, 5)  # 12^3 raw -> 8^3 logits, 3 channels
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for batch in DataLoader(ds, batch_size=None, num_workers=2):
        logits = model(batch["raw"])
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, batch["targets"], weight=batch["mask"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert np.isfinite(loss.item())
