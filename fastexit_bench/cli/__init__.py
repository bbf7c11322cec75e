"""The ``fastexit-bench`` command line: one module per command group, each with worked examples."""

from __future__ import annotations

import argparse
import logging
import sys

from fastexit_bench import __version__
from fastexit_bench.cli import (
    artefact,
    backbone,
    claims,
    data,
    evaluate,
    flops,
    latency,
    leaderboard,
    plan,
    report,
    serve,
    sweep,
    train,
)
from fastexit_bench.data.spec import use_dataset_dirs
from fastexit_bench.errors import FastExitError, Interrupted, OutputError
from fastexit_bench.io import OUT_OF_SPACE
from fastexit_bench.locations import DATASETS_ENV

COMMANDS = (
    data,
    backbone,
    plan,
    train,
    evaluate,
    sweep,
    flops,
    latency,
    serve,
    report,
    claims,
    leaderboard,
    artefact,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastexit-bench", description="Benchmarks for early-exit transformers."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--dataset-dir",
        action="append",
        default=[],
        metavar="DIR",
        help=f"a folder of your own dataset declarations (*.yaml), besides the built-in ones "
        f"(repeatable; also ${DATASETS_ENV})",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; user errors print one line on stderr and return exit status 2, an interrupt 130."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        use_dataset_dirs(args.dataset_dir)
        args.handler(args)
    except KeyboardInterrupt:
        return _fail(Interrupted(f"`{args.command}` stopped by an interrupt; no output of it was published"))
    except FastExitError as exc:
        return _fail(exc)
    except OSError as exc:
        if exc.errno not in OUT_OF_SPACE:
            raise
        return _fail(
            OutputError(f"no space left on the device writing {exc.filename or 'a cache'}; free some space")
        )
    return 0


def _fail(error: FastExitError) -> int:
    print(f"fastexit-bench: error: {error}", file=sys.stderr)
    return getattr(error, "EXIT_STATUS", 2)
