"""Object stores from Python (issue 14): ``annomask.open`` and ``annomask.Feeder`` on ``s3://``
URLs against a local S3-compatible server (moto's server mode, started here on a free port),
equal to the same crop read locally. Skipped with a note where moto is not installed, unless
``REQUIRE_S3=1`` (CI)."""

import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np
import pytest

import annomask


def _moto_server():
    candidates = [os.environ.get("ANNOMASK_MOTO_SERVER"),
                  os.path.join(os.path.dirname(sys.executable), "moto_server"),
                  shutil.which("moto_server")]
    for c in candidates:
        if c and os.path.exists(c):
            return c
    return None


@pytest.fixture(scope="module")
def s3():
    exe = _moto_server()
    if exe is None:
        if os.environ.get("REQUIRE_S3") == "1":
            pytest.fail("REQUIRE_S3=1 but moto_server is not installed (pip install 'moto[server]')")
        pytest.skip("moto_server not installed (pip install 'moto[server]'; REQUIRE_S3=1 fails instead)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.time() < deadline, "moto_server did not start"
            time.sleep(0.1)
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    req = urllib.request.Request(f"{endpoint}/py-remote", method="PUT")
    urllib.request.urlopen(req, timeout=60).close()
    yield endpoint
    proc.kill()
    proc.wait()
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _upload(endpoint, local_dir, prefix):
    """PUTs every file under local_dir (moto accepts unsigned requests)."""
    for root, _, files in os.walk(local_dir):
        for name in files:
            path = os.path.join(root, name)
            key = prefix + "/" + os.path.relpath(path, local_dir)
            with open(path, "rb") as f:
                req = urllib.request.Request(
                    f"{endpoint}/py-remote/{key}", data=f.read(), method="PUT",
                    headers={"Content-Type": "application/octet-stream"})
            urllib.request.urlopen(req, timeout=60).close()


GROUPINGS = [("mito", [3, 4, 5]), ("er", [16, 17]), ("nucleus", [20, 21]), ("ecs", [1])]


def test_open_and_feeder_on_s3_equal_local(s3):
    d = tempfile.mkdtemp()
    local = annomask.write_demo_crop(d, 32, 3)
    _upload(s3, os.path.join(d, "demo_crop.zarr"), "crops/demo_crop.zarr")
    url = "s3://py-remote/crops/demo_crop.zarr/labels"
    a = annomask.open(local, GROUPINGS, engine="cpu")
    b = annomask.open(url, GROUPINGS, engine="cpu")
    assert a.shape == b.shape
    np.testing.assert_array_equal(a[a.roi], b[b.roi])
    fa = list(annomask.Feeder(local, (16, 16, 16), groupings=GROUPINGS, engine="cpu", seed=3, batches=4))
    fb = list(annomask.Feeder(url, (16, 16, 16), groupings=GROUPINGS, engine="cpu", seed=3, batches=4))
    assert len(fa) == len(fb) == 4
    for x, y in zip(fa, fb):
        np.testing.assert_array_equal(x.mask, y.mask)
        np.testing.assert_array_equal(x.targets, y.targets)


def test_remote_errors_are_one_line(s3):
    with pytest.raises(Exception) as e:
        annomask.open("s3://no-such-bucket/x/labels", GROUPINGS, engine="cpu")
    text = str(e.value)
    assert "no such bucket" in text and "\n" not in text.strip(), text
    with pytest.raises(Exception) as e:
        annomask.open("s3://py-remote/nothing/here", GROUPINGS, engine="cpu", anonymous=True)
    assert "s3://py-remote/nothing/here" in str(e.value)


PARENT = {}


def _child_sums(_):
    fresh = annomask.open(PARENT["url"], GROUPINGS, engine="cpu")
    inherited = PARENT["mask"]
    return (os.getpid(), int(fresh[fresh.roi].sum(dtype=np.int64)),
            int(inherited[inherited.roi].sum(dtype=np.int64)))


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork")
def test_forked_children_read_s3_after_the_parent_did(s3):
    """A mask on S3 opened and read in the parent reads in forked children (DataLoader
    workers): each child makes its own client (the parent's connections and runtime threads do
    not survive a fork), and one opened there reads too."""
    d = tempfile.mkdtemp()
    annomask.write_demo_crop(d, 32, 3)
    _upload(s3, os.path.join(d, "demo_crop.zarr"), "fork/demo_crop.zarr")
    url = "s3://py-remote/fork/demo_crop.zarr/labels"
    mask = annomask.open(url, GROUPINGS, engine="cpu")
    want = int(mask[mask.roi].sum(dtype=np.int64))
    PARENT.update(url=url, mask=mask)
    with multiprocessing.get_context("fork").Pool(2) as pool:
        got = pool.map_async(_child_sums, range(4)).get(timeout=120)
    assert {pid for pid, _, _ in got} - {os.getpid()}, "ran in children"
    for _, fresh, inherited in got:
        assert fresh == inherited == want
    assert int(mask[mask.roi].sum(dtype=np.int64)) == want  # and the parent still reads
