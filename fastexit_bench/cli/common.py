"""Small helpers shared by the command modules."""

from __future__ import annotations

import argparse
import sys


def subcommand(group, name: str, help_text: str, examples: str, handler) -> argparse.ArgumentParser:
    """Add one sub-command with an epilog of examples and the function that runs it."""
    parser = group.add_parser(name, help=help_text, description=help_text, epilog="examples:\n" + examples,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(handler=handler)
    return parser


def emit(text: str = "") -> None:
    """Write command output (not logging) to stdout."""
    sys.stdout.write(text + "\n")
