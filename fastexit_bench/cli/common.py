"""Small helpers shared by the command modules. Option defaults come from the typed configs
(``DataConfig``, ``TrainConfig``, ``LatencyConfig``, ``OperatingPointSpec``), never from literals here."""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

from fastexit_bench.analysis.operating_points import OperatingPointSpec
from fastexit_bench.data.config import DataConfig
from fastexit_bench.execution import ATTENTIONS, PRECISIONS, RUNTIMES, ExecutionConfig
from fastexit_bench.locations import MIRROR_ENV, RESOURCES_ENV, Locations

T = TypeVar("T")


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Examples kept as written, and every option's default shown in its help."""


def subcommand(group, name: str, help_text: str, examples: str, handler) -> argparse.ArgumentParser:
    """Add one sub-command with an epilog of examples and the function that runs it."""
    parser = group.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog="examples:\n" + examples,
        formatter_class=HelpFormatter,
    )
    parser.set_defaults(handler=handler)
    return parser


def emit(text: str = "") -> None:
    """Write command output (not logging) to stdout."""
    sys.stdout.write(text + "\n")


def add_mirror_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mirror", help=f"folder of dataset copies (None: ${MIRROR_ENV}); e.g. ../shared/data"
    )


def add_resources_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--resources", help=f"folder of converted backbones and caches (None: ${RESOURCES_ENV} or resources/)"
    )


def add_location_args(parser: argparse.ArgumentParser) -> None:
    """``--mirror``, ``--resources`` and ``--device``, spelled the same in every command."""
    add_mirror_arg(parser)
    add_resources_arg(parser)
    parser.add_argument("--device", default="auto", help="auto (GPU if visible), cpu, cuda, cuda:1, ...")


def add_overwrite_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace what is in the way of an output (a folder where a file goes, a finished model); "
        "inputs are never replaced",
    )


def add_threads_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=positive_int, help="torch threads (None: torch's choice)")


def add_execution_args(parser: argparse.ArgumentParser, inference: bool = False) -> None:
    """``--precision`` and ``--attention`` (the :class:`ExecutionConfig` options; ``auto`` resolves per device),
    and for an ``inference`` command ``--runtime``."""
    defaults = ExecutionConfig()
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=defaults.precision,
        help="auto: bf16 on GPUs and CPUs with native bf16, fp16 on older GPUs, else fp32",
    )
    parser.add_argument(
        "--attention",
        choices=ATTENTIONS,
        default=defaults.attention,
        help="attention implementation; auto: sdpa on GPUs and for fp32 on CPUs, eager for CPU bf16",
    )
    if inference:
        parser.add_argument(
            "--runtime",
            choices=RUNTIMES,
            default=defaults.runtime,
            help="eager PyTorch, or each layer and head compiled (torch.compile; cudagraphs: with CUDA "
            "graphs on bucketed shapes) or run by ONNX Runtime (pip install 'fastexit-bench[onnx]'); "
            "onnxruntime runs fp32",
        )


def execution_config(args: argparse.Namespace) -> ExecutionConfig:
    return from_args(ExecutionConfig, args)


def locations(args: argparse.Namespace) -> Locations:
    """The ``--mirror``, ``--resources`` and ``--device`` of :func:`add_location_args`."""
    return Locations(args.mirror, args.resources, args.device)


def add_data_args(parser: argparse.ArgumentParser, *, train: bool = True) -> None:
    """The :class:`DataConfig` options: subsample sizes, tokenization length, seed."""
    defaults = DataConfig()
    if train:
        parser.add_argument(
            "--max-train",
            type=positive_int,
            default=defaults.max_train,
            help="seeded subsample of the train split (None: every row)",
        )
    parser.add_argument(
        "--max-eval",
        type=positive_int,
        default=defaults.max_eval,
        help="seeded subsample of each evaluation split (None: every row)",
    )
    parser.add_argument(
        "--max-length", type=positive_int, default=defaults.max_length, help="max tokens per example"
    )
    parser.add_argument(
        "--seed",
        type=nonnegative_int,
        default=defaults.seed,
        help="seeds carving, subsampling (and in `train`: head init, data order, dropout)",
    )


def from_args(cls: type[T], args: argparse.Namespace, **overrides: Any) -> T:
    """A typed config from the parsed options named as its fields (the others keep their defaults), with
    ``overrides`` for fields an option does not spell the same way."""
    values = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
    return cls(**(values | overrides))


def data_config(args: argparse.Namespace) -> DataConfig:
    """The :class:`DataConfig` of :func:`add_data_args` with ``train``."""
    return DataConfig(args.max_train, args.max_eval, args.max_length, args.seed)


def checked(convert: Callable[[str], float], accept: Callable[[float], bool], what: str):
    """An argparse type: ``convert`` the text, then refuse it unless ``accept`` holds, with one line that says
    what was expected (so ``--epochs 0`` or ``--lr nan`` stop before any work)."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    parse.__name__ = what
    return parse


positive_int = checked(int, lambda v: v >= 1, "a whole number >= 1")
nonnegative_int = checked(int, lambda v: v >= 0, "a whole number >= 0")
finite_float = checked(float, math.isfinite, "a finite number")
positive_float = checked(float, lambda v: math.isfinite(v) and v > 0, "a finite number > 0")
nonnegative_float = checked(float, lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0")
file_name = checked(
    str,
    lambda v: re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", v) is not None,
    "a plain name that becomes a file name (letters, digits, ., - and _; no folders)",
)
fraction = checked(float, lambda v: 0 <= v < 1, "a fraction in [0, 1)")


def comma_list(convert, what: str, *, may_be_empty: bool = False):
    """An argparse type for comma-separated values, each turned into a value by ``convert`` (at least one
    unless ``may_be_empty``: ``--policies ","`` is a mistake, ``--max-drop ""`` asks for no budgets)."""

    def parse(text: str) -> list:
        try:
            values = [convert(v) for v in text.split(",") if v.strip()]
            bad = not (values or may_be_empty)
        except (ValueError, argparse.ArgumentTypeError):
            bad = True
        if bad:
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got {text!r}")
        return values

    return parse


finite_floats = comma_list(finite_float, "finite numbers")
nonnegative_floats = comma_list(nonnegative_float, "numbers >= 0", may_be_empty=True)
positive_floats = comma_list(positive_float, "numbers > 0", may_be_empty=True)
positive_ints = comma_list(positive_int, "whole numbers >= 1")
names = comma_list(str.strip, "names")


def named_value(parse, example: str):
    """An argparse type for ``NAME=VALUE`` options; ``parse`` turns VALUE into the value (raising if bad)."""

    def convert(text: str):
        name, sep, value = text.partition("=")
        try:
            if not (name and sep):
                raise ValueError(text)
            return name, parse(value)
        except (ValueError, argparse.ArgumentTypeError):
            raise argparse.ArgumentTypeError(f"expected {example}, got {text!r}") from None

    return convert


def add_operating_point_args(parser: argparse.ArgumentParser) -> None:
    """``--values``, ``--max-drop`` and ``--min-speedup``: the :class:`OperatingPointSpec` options."""
    defaults = OperatingPointSpec()
    parser.add_argument(
        "--values",
        action="append",
        default=[],
        metavar="POLICY=V1,V2",
        type=named_value(finite_floats, "POLICY=V1,V2,... such as speed=0.1,0.5,0.8"),
        help="fixed operating points of one policy (repeatable); other policies get dev-chosen ones",
    )
    parser.add_argument(
        "--max-drop",
        type=nonnegative_floats,
        default=list(defaults.max_drop),
        help="dev-chosen points: the fastest value within N metric points of full depth on dev",
    )
    parser.add_argument(
        "--min-speedup",
        type=positive_floats,
        default=list(defaults.min_speedup),
        help="dev-chosen points: the most accurate value reaching this FLOPs speed-up",
    )
    parser.add_argument(
        "--risk",
        type=nonnegative_floats,
        default=list(defaults.risk),
        help="risk-controlled points (accuracy): the fastest value whose harm rate is <= N points with "
        "probability >= 1 - --risk-epsilon over the selection sample (Learn-then-Test)",
    )
    parser.add_argument(
        "--risk-epsilon",
        type=checked(float, lambda v: 0 < v < 1, "a probability between 0 and 1"),
        default=defaults.risk_epsilon,
        help="the risk-controlled points' allowed probability of breaking their budget",
    )


def operating_point_spec(args: argparse.Namespace) -> OperatingPointSpec:
    """The :class:`OperatingPointSpec` of ``--values``/``--max-drop``/``--min-speedup``."""
    return OperatingPointSpec(
        {name: tuple(values) for name, values in args.values},
        tuple(args.max_drop),
        tuple(args.min_speedup),
        tuple(args.risk),
        args.risk_epsilon,
    )


def config_of(args: argparse.Namespace) -> dict:
    """The parsed arguments as a JSON-able dict, for provenance."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "handler"}
