"""Small helpers shared by the command modules."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the paper module imports pandas; commands import it lazily
    from fastexit_bench.reporting.paper import TableSpec


def subcommand(group, name: str, help_text: str, examples: str, handler) -> argparse.ArgumentParser:
    """Add one sub-command with an epilog of examples and the function that runs it."""
    parser = group.add_parser(name, help=help_text, description=help_text, epilog="examples:\n" + examples,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(handler=handler)
    return parser


def emit(text: str = "") -> None:
    """Write command output (not logging) to stdout."""
    sys.stdout.write(text + "\n")


def add_location_args(parser: argparse.ArgumentParser) -> None:
    """``--mirror``, ``--resources`` and ``--device``, spelled the same in every command."""
    parser.add_argument("--mirror", help="folder of dataset copies (default: $FASTEXIT_DATA_MIRROR); "
                        "e.g. ../shared/data")
    parser.add_argument("--resources", help="resources folder (default: $FASTEXIT_RESOURCES or resources/)")
    parser.add_argument("--device", default="auto", help="auto (GPU if visible), cpu, cuda, cuda:1, ...")


def parse_floats(text: str) -> list[float]:
    """``"0.1,0.5"`` -> ``[0.1, 0.5]`` (ValueError if not numbers)."""
    return [float(v) for v in text.split(",") if v]


def float_list(text: str) -> list[float]:
    """An argparse type for comma-separated numbers."""
    try:
        return parse_floats(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def add_operating_point_args(parser: argparse.ArgumentParser) -> None:
    """``--values`` and ``--max-drop``: a paper table's operating points, spelled the same in `report` and `latency`."""
    parser.add_argument("--values", action="append", default=[], metavar="POLICY=V1,V2",
                        type=named_value(parse_floats, "POLICY=V1,V2,... such as speed=0.1,0.5,0.8"),
                        help="fixed values of a recipe's exit policy (repeatable); other policies use --max-drop")
    parser.add_argument("--max-drop", type=float_list, default=[0.0, 1.0, 2.0],
                        help="dev-chosen values: fastest within N points of full depth on dev (default 0,1,2)")


def table_spec(args: argparse.Namespace, layout: str | None = None) -> TableSpec:
    """The :class:`~fastexit_bench.reporting.paper.TableSpec` of ``--values``/``--max-drop`` (and a layout, else
    TableSpec's default)."""
    from fastexit_bench.reporting.paper import TableSpec

    return TableSpec(layout or TableSpec.layout, {name: tuple(values) for name, values in args.values},
                     tuple(args.max_drop))


def config_of(args: argparse.Namespace) -> dict:
    """The parsed arguments as a JSON-able dict, for provenance."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "handler"}


def named_value(parse, example: str):
    """An argparse type for ``NAME=VALUE`` options; ``parse`` turns VALUE into the value (ValueError if bad)."""

    def convert(text: str):
        name, sep, value = text.partition("=")
        try:
            if not (name and sep):
                raise ValueError(text)
            return name, parse(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {example}, got {text!r}") from None

    return convert
