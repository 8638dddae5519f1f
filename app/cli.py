"""`radstation` command line: no arguments opens the workstation on the bundled demo study."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Each module adds its own subcommand(s); listed here so `radstation --help` shows them all.
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "app.commands.gui",
    "app.commands.importing",
    "app.commands.reports",
    "app.commands.pacs",
    "app.commands.outbox",
    "app.commands.secrets",
    "app.commands.selfcheck",
    "app.commands.engine",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radstation", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv or ["gui"])
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
