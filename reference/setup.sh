#!/usr/bin/env bash
# Creates (or updates) the Python environment of the numpy reference: numpy and zarr-python 3,
# which reads zarr v2 and v3. The tests (tests/reference.rs), `annomask bench` and CI look for
# it at /tmp/annomask-ref unless told otherwise, so keep that default.
#
#   bash reference/setup.sh                       # prints the venv's python when done
#   VENV=/somewhere/else bash reference/setup.sh  # another place (then point
#                                                 # ANNOMASK_REF_PYTHON / ANNOMASK_REFERENCE_PYTHON at it)
#
# PyTorch (for torch_reference.py) is not installed here: it is large and only worth it on a
# machine with a GPU; `"$VENV/bin/pip" install torch` adds it.
set -euo pipefail

VENV="${VENV:-/tmp/annomask-ref}"

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "numpy>=1.26" "zarr>=3,<4"
"$VENV/bin/python" -c "import numpy, zarr; assert int(zarr.__version__.split('.')[0]) >= 3"
echo "$VENV/bin/python"
