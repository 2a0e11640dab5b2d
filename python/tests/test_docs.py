"""The documentation's code blocks, run.

Every fenced block whose info string is ``python`` (or ``py``), ``sh``, ``bash`` or ``shell`` in
the repository's Markdown (README.md, BENCHMARKS.md, docs/*.md, reference/*.md, python/*.md) is
one test case, named ``file:line`` (the line of the opening fence). Other blocks (``text``,
``console``, ``json``, ``rust``, ...) are not run. The convention, also in
docs/contributing.md:

- a block runs as written, by default;
- ``<!-- not run: REASON -->`` on the line(s) right before a block skips it (the reason is
  required and shown in the skip message);
- ``<!-- requires: NAME[, NAME] -->`` skips it where the Python module NAME is missing (``s3``
  means ``moto``), and fails instead where ``REQUIRE_<NAME>=1`` (CI sets these).

All blocks of one file run in order in one temporary working directory, prepared with the
fixtures the docs name (``crop.zarr/labels``, ``groupings.json``, ... : see ``_fixtures``); the
Python blocks of a file share one namespace. Running one case alone (``-k``) first runs the
file's earlier blocks. Shell blocks run with ``bash -euo pipefail`` with the ``annomask`` CLI on
``PATH``: the console script if ``annomask`` is on ``PATH``, else ``$ANNOMASK_BIN``, else the
repository's ``target/{debug,release}/annomask`` (the newer); without one the shell cases skip,
unless ``REQUIRE_DOCS_CLI=1``, then they fail.
"""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import traceback
from pathlib import Path

import pytest

import annomask

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 120

PYTHON_LANGS = {"python", "py", "python3"}
SHELL_LANGS = {"sh", "bash", "shell"}
# `requires:` names that are not the module's own name.
REQUIRES_MODULE = {"s3": "moto"}

FENCE = re.compile(r"^(?P<indent> {0,3}|\s*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
MARKER = re.compile(r"^\s*<!--\s*(?P<kind>not run|requires)\s*:?(?P<arg>.*?)-->\s*$")


def _doc_files():
    files = [p for p in sorted(ROOT.glob("*.md"))]
    for folder in ("docs", "reference", "python"):
        files += sorted((ROOT / folder).glob("*.md"))
    return files


class Block:
    def __init__(self, path, line, lang, code, markers):
        self.path = path
        self.rel = path.relative_to(ROOT).as_posix()
        self.line = line  # 1-based line of the opening fence
        self.lang = lang
        self.kind = "python" if lang in PYTHON_LANGS else "shell"
        self.code = code
        self.markers = markers  # [(kind, arg, line)]

    @property
    def id(self):
        return f"{self.rel}:{self.line}"


def _markers_before(lines, i):
    """The marker comments on the lines right before line index ``i`` (blank lines allowed)."""
    markers = []
    j = i - 1
    while j >= 0:
        text = lines[j]
        if not text.strip():
            j -= 1
            continue
        m = MARKER.match(text)
        if not m:
            break
        markers.append((m.group("kind"), m.group("arg").strip(), j + 1))
        j -= 1
    return markers[::-1]


def _parse(path):
    """(runnable blocks, problems) of one Markdown file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, problems = [], []
    rel = path.relative_to(ROOT).as_posix()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, indent = m.group("fence"), len(m.group("indent"))
        lang = (m.group("info").strip().split() or [""])[0].lower()
        start = i
        body = []
        i += 1
        while i < len(lines):
            close = lines[i].strip()
            if close.startswith(fence[0] * len(fence)) and not close.strip(fence[0]):
                break
            # strip the fence's indentation (blocks inside list items)
            text = lines[i]
            body.append(text[indent:] if text[:indent].strip() == "" else text.lstrip())
            i += 1
        i += 1
        markers = _markers_before(lines, start)
        if lang in PYTHON_LANGS or lang in SHELL_LANGS:
            blocks.append(Block(path, start + 1, lang, "\n".join(body) + "\n", markers))
        elif markers:
            problems.append(
                f"{rel}:{start + 1}: a marker ({markers[0][0]}) before a ```{lang or '(no language)'} "
                "block, which is never run: remove the marker"
            )
    return blocks, problems


BLOCKS, PROBLEMS = [], []
for _p in _doc_files():
    _b, _pr = _parse(_p)
    BLOCKS += _b
    PROBLEMS += _pr


def test_doc_markers_are_well_formed():
    """Markers name a reason (not run) or modules (requires), and stand before a run block."""
    problems = list(PROBLEMS)
    for b in BLOCKS:
        for kind, arg, line in b.markers:
            if not arg:
                what = "a reason" if kind == "not run" else "a module"
                problems.append(f"{b.rel}:{line}: `<!-- {kind}: -->` without {what}")
    assert not problems, "\n".join(problems)


def test_docs_have_blocks():
    """The collector finds the README's blocks (a broken fence parser would make every case vanish)."""
    readme = [b for b in BLOCKS if b.rel == "README.md"]
    assert any(b.kind == "python" for b in readme) and any(b.kind == "shell" for b in readme)


# ---------------------------------------------------------------------------------------------
# The working directory and its fixtures.


def _fixtures(tmp_path_factory):
    """A template directory with every input the docs name; copied once per Markdown file."""
    root = tmp_path_factory.mktemp("doc-fixtures")
    scratch = tmp_path_factory.mktemp("doc-scratch")
    # A demo label array (64^3 uint64, 8 nm voxels: a 512 nm cube, as the docs' ROIs assume).
    labels = Path(annomask.write_demo_crop(scratch / "one", size=64))
    crop = labels.parent  # .../demo_crop.zarr
    shutil.copytree(crop, root / "crop.zarr")
    for name in ("data/crop1.zarr", "data/crop2.zarr", "a.zarr", "b.zarr"):
        shutil.copytree(crop, root / name)
    # CellMap layout, label arrays per crop (`crop*/all/s0`).
    gt = root / "jrc_hela-2.zarr/recon-1/labels/groundtruth"
    for name in ("crop155", "crop156"):
        shutil.copytree(labels, gt / name / "all" / "s0")
    groupings = [[name, ids] for name, ids in annomask.demo_groupings()]
    for name in ("groupings.json", "g.json"):
        (root / name).write_text(json.dumps(groupings) + "\n")
    # A CellMap crop group (classes mito_mem, mito_lum, mito, er_mem; er_lum not annotated).
    group = Path(annomask.write_demo_crop_group(scratch / "group"))
    shutil.copytree(group, root / "jrc_cos7-1a.zarr/recon-1/labels/groundtruth/crop234")
    return root


@pytest.fixture(scope="session")
def fixture_template(tmp_path_factory):
    return _fixtures(tmp_path_factory)


def _find_cli():
    """(path or None, how it was found / why not)."""
    found = shutil.which("annomask")
    if found:
        return found, "the console script on PATH"
    env = os.environ.get("ANNOMASK_BIN")
    if env:
        if os.access(env, os.X_OK):
            return env, "$ANNOMASK_BIN"
        return None, f"$ANNOMASK_BIN={env} is not an executable"
    built = [ROOT / "target" / p / "annomask" for p in ("debug", "release")]
    built = [p for p in built if p.is_file() and os.access(p, os.X_OK)]
    if built:
        return str(max(built, key=lambda p: p.stat().st_mtime)), "the repository's target/"
    return None, (
        "no annomask CLI: not on PATH, no $ANNOMASK_BIN, no target/{debug,release}/annomask "
        "(install the package, or cargo build)"
    )


@pytest.fixture(scope="session")
def cli_bin(tmp_path_factory):
    """A directory holding an `annomask` executable (to put first on PATH), or None."""
    exe, how = _find_cli()
    if exe is None:
        return None, how
    bindir = tmp_path_factory.mktemp("doc-bin")
    (bindir / "annomask").symlink_to(os.path.abspath(exe))
    return bindir, how


class FileState:
    """One Markdown file's working directory, Python namespace and progress."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.namespace = {"__name__": "__doc__"}
        self.done = {}  # block index -> None (passed), or the failure text


_STATES = {}


def _state(rel, template, tmp_path_factory):
    if rel not in _STATES:
        workdir = tmp_path_factory.mktemp("doc-" + re.sub(r"[^A-Za-z0-9]+", "-", rel))
        shutil.copytree(template, workdir, dirs_exist_ok=True)
        _STATES[rel] = FileState(workdir)
    return _STATES[rel]


# ---------------------------------------------------------------------------------------------
# Running blocks.


def _skip_reason(block, cli):
    """Why the block is skipped (None: run it); fails where a REQUIRE_* switch says so."""
    for kind, arg, line in block.markers:
        if not arg:
            pytest.fail(f"{block.rel}:{line}: `<!-- {kind}: -->` needs "
                        f"{'a reason' if kind == 'not run' else 'a module name'}", pytrace=False)
        if kind == "not run":
            return f"not run: {arg}"
    for kind, arg, _ in block.markers:
        if kind != "requires":
            continue
        for name in (n.strip() for n in arg.split(",") if n.strip()):
            module = REQUIRES_MODULE.get(name, name)
            if importlib.util.find_spec(module) is None:
                switch = "REQUIRE_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()
                if os.environ.get(switch) == "1":
                    pytest.fail(f"{block.id}: requires {name} (module {module}), "
                                f"which is not installed, and {switch}=1", pytrace=False)
                return f"requires {name} (module {module} is not installed; {switch}=1 fails instead)"
    if block.kind == "shell" and cli[0] is None:
        if os.environ.get("REQUIRE_DOCS_CLI") == "1":
            pytest.fail(f"{block.id}: REQUIRE_DOCS_CLI=1 but {cli[1]}", pytrace=False)
        return f"{cli[1]}; REQUIRE_DOCS_CLI=1 fails instead"
    return None


def _run_python(block, state):
    # Pad so that tracebacks give the Markdown file's own line numbers.
    source = "\n" * block.line + block.code
    cwd = os.getcwd()
    os.chdir(state.workdir)
    try:
        exec(compile(source, str(block.path), "exec"), state.namespace)
    except BaseException as e:  # noqa: BLE001 - a block may raise anything, SystemExit included
        if isinstance(e, (KeyboardInterrupt, pytest.skip.Exception, pytest.fail.Exception)):
            raise
        tb = e.__traceback__.tb_next  # from the block's own frame on
        text = "".join(traceback.format_exception(type(e), e, tb))
        return f"{block.id}: the Python block raised\n\n{text}"
    finally:
        os.chdir(cwd)
    return None


def _run_shell(block, state, cli):
    env = dict(os.environ)
    path = [str(cli[0]), os.path.dirname(sys.executable), env.get("PATH", "")]
    env["PATH"] = os.pathsep.join(p for p in path if p)
    try:
        r = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block.code],
            cwd=state.workdir, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        return f"{block.id}: the shell block ran past {TIMEOUT_S} s\n\n--- output ---\n{out}"
    if r.returncode != 0:
        return (f"{block.id}: the shell block exited {r.returncode} (annomask: {cli[1]})\n\n"
                f"--- block ---\n{block.code}--- output ---\n{r.stdout}")
    sys.stdout.write(r.stdout)
    return None


def _run(index, state, cli):
    """Runs block ``index`` of BLOCKS (once per session); its failure text or None."""
    if index in state.done:
        return state.done[index]
    block = BLOCKS[index]
    failure = None
    try:
        skipped = _skip_reason(block, cli) is not None
    except pytest.fail.Exception as e:  # a REQUIRE_* failure: reported by its own case
        skipped, failure = True, str(e)
    if not skipped:
        failure = _run_python(block, state) if block.kind == "python" else _run_shell(block, state, cli)
    state.done[index] = failure
    return failure


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=[b.id for b in BLOCKS])
def test_doc_block(index, fixture_template, cli_bin, tmp_path_factory):
    block = BLOCKS[index]
    reason = _skip_reason(block, cli_bin)
    if reason is not None:
        pytest.skip(f"{block.id}: {reason}")
    state = _state(block.rel, fixture_template, tmp_path_factory)
    earlier_failed = []
    for j, b in enumerate(BLOCKS[:index]):
        if b.rel == block.rel and _run(j, state, cli_bin) is not None:
            earlier_failed.append(b.id)
    failure = _run(index, state, cli_bin)
    if failure is not None:
        if earlier_failed:
            failure += f"\n\n(earlier blocks of this file failed too: {', '.join(earlier_failed)})"
        pytest.fail(failure, pytrace=False)
