"""The docstring examples of the package's modules run as written (annomask.torch's need torch:
skipped without it unless REQUIRE_TORCH=1)."""

import doctest
import importlib
import os

import pytest

MODULES = ["annomask", "annomask.geometry", "annomask.datasplit", "annomask.torch"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    if name == "annomask.torch" and os.environ.get("REQUIRE_TORCH") != "1":
        pytest.importorskip("torch")
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
