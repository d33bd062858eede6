"""The ``antema`` command.

Each subcommand has an ``_add_<name>`` function that declares its arguments and a ``_run_<name>``
function that imports the heavy modules it needs only after the arguments are parsed, so that
``antema --help`` is instant. The library never imports this module.

Exit codes: 0 success, 1 some inputs failed, 2 usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

Runner = Callable[[argparse.Namespace], int]


def _build_parser() -> tuple[argparse.ArgumentParser, dict[str, Runner]]:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="antema",
        description=(
            "Measure nanoparticles in TEM micrographs: segmentation by a neural network, "
            "separation of overlapping particles (UECS), and size/shape tables, plots and reports."
        ),
    )
    parser.add_argument("--version", action="version", version=f"antema_fast {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    runners: dict[str, Runner] = {}
    for name, adder in _SUBCOMMANDS.items():
        runners[name] = adder(sub)
    return parser, runners


# name -> function that adds the subparser and returns its runner. Filled below by each area.
_SUBCOMMANDS: dict[str, Callable[[argparse._SubParsersAction], Runner]] = {}  # type: ignore[type-arg]


def main(argv: Sequence[str] | None = None) -> int:
    parser, runners = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    if not args.command:
        parser.print_help()
        return 2
    return runners[args.command](args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
