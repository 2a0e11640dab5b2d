"""The ``annomask`` command line, from the Python package.

``pip install`` puts an ``annomask`` console script on PATH that runs :func:`main`, and
``python -m annomask ...`` runs it too: the same program as the Rust ``annomask`` binary (the
library's ``annomask::cli::main``, compiled into ``annomask._annomask``), with the same
subcommands, help, output and exit codes (``annomask --help``).
"""

import signal
import sys

from . import _annomask


def main() -> None:
    """Run ``annomask`` on ``sys.argv[1:]`` and exit with its status."""
    # Ctrl-C as for the binary: the command runs in Rust with the GIL released, where Python's
    # SIGINT handler would only set a flag, seen when the whole run is over. With the default
    # action the signal ends the process at once (status 130 in a shell), progress bar and all.
    # Python installs its handler only over the default action; an inherited SIG_IGN (a
    # background job of a script) stays ignored, as it does for the binary.
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.exit(_annomask.cli_main(["annomask", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
