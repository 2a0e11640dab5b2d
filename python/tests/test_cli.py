"""The ``annomask`` command line from the Python package: ``python -m annomask``, the
``annomask`` console script next to the interpreter, and the two pyproject.toml files (the
repository root's and python/'s) describing the same package.
"""

import os
import pathlib
import subprocess
import sys
import sysconfig

import pytest

import annomask

REPO = pathlib.Path(__file__).resolve().parents[2]


def run(*argv, **kwargs):
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, **kwargs)


def test_python_m_annomask_version():
    done = run(sys.executable, "-m", "annomask", "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"annomask {annomask.__version__}\n"


def test_usage_error_is_status_2_on_stderr():
    done = run(sys.executable, "-m", "annomask", "compute", "--no-such-option")
    assert done.returncode == 2
    assert done.stdout == ""
    assert "--no-such-option" in done.stderr
    assert "Usage: annomask compute" in done.stderr


def test_failure_is_status_1_with_an_error_line(tmp_path):
    done = run(sys.executable, "-m", "annomask", "inspect", str(tmp_path / "missing.zarr"))
    assert done.returncode == 1
    assert done.stderr.startswith("error: ")


def test_demo_into_a_directory(tmp_path):
    out = tmp_path / "demo"
    done = run(sys.executable, "-m", "annomask", "demo", "--size", "16", "--engine", "cpu",
               "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "mito" in done.stdout
    assert out.is_dir() and any(out.iterdir())


def test_console_script_is_installed():
    # pip (and maturin develop) put the [project.scripts] entry beside the interpreter.
    script = pathlib.Path(sysconfig.get_path("scripts")) / (
        "annomask.exe" if os.name == "nt" else "annomask"
    )
    assert script.exists(), f"no console script at {script}"
    done = run(str(script), "demo", "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Synthesise a crop")
    assert "Usage: annomask demo" in done.stdout


def test_root_and_python_pyproject_agree():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    root_file = REPO / "pyproject.toml"
    python_file = REPO / "python" / "pyproject.toml"
    if not root_file.exists():
        pytest.skip("not run from a repository checkout")
    root = tomllib.loads(root_file.read_text())
    python = tomllib.loads(python_file.read_text())
    assert root["build-system"] == python["build-system"]
    assert root["project"] == python["project"]
    assert root["tool"]["maturin"]["module-name"] == python["tool"]["maturin"]["module-name"]
    assert root["tool"]["maturin"]["manifest-path"] == "python/Cargo.toml"
    assert root["tool"]["maturin"]["python-source"] == "python"
