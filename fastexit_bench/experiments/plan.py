"""What an experiment costs before it runs: jobs per rule, training examples x epochs, training FLOPs, GPU-hours
and this machine's CPU-hours, per (dataset, recipe) and in total.

Rows come from the local copy when the mirror holds the dataset (what a run here trains on), else from the
hub copy's published size (``HubSource.rows``), after the carves the loader applies. FLOPs are an upper bound
(every example at ``max_length`` tokens; batches are padded only to their longest row) of the encoder's matrix
products (:class:`~fastexit_bench.analysis.flops.AnalyticFlops`; heads are a small share and left out): a trained
pass costs 3x a forward pass (forward plus backward), a frozen backbone's pass 1x, once in all when an off-ramp
stage trains on cached [CLS] features; a distilling stage adds the teacher's forward pass. GPU-hours divide
the FLOPs by an assumed sustained rate (``--tflops``); measure yours with ``benchmarks/train_throughput.py``.
Evaluation FLOPs count a forward pass over the selection split after every epoch of a stage that reads the
text (an off-ramp stage on cached features scores its cached dev vectors) and over both evaluated splits once
(the evaluate jobs), when the mirror holds them. CPU-hours divide training plus evaluation FLOPs by a rate
measured on a CPU (:class:`CpuRates`, from ``benchmarks/train_cost.py``): a
backbone's examples/s in a full-depth fine-tune at its benchmark dataset's real lengths, as FLOPs counted the
way this plan counts them; a dataset of longer texts than the measured one costs more than that says. A recipe
that starts from the experiment's baseline (``training.shared``) is not charged for that first stage.
Importing this module needs no torch."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fastexit_bench.analysis.flops import AnalyticFlops
from fastexit_bench.analysis.head_kinds import HEAD_KINDS
from fastexit_bench.data.loading import available_splits, load_split
from fastexit_bench.data.spec import DATASETS, DatasetSpec
from fastexit_bench.experiments.settings import ExperimentSettings
from fastexit_bench.models.backbones import resolve_backbone
from fastexit_bench.training.config import TrainConfig
from fastexit_bench.training.recipes import Recipe, get_recipe

FAMILY_SIZES = {  # (layers, hidden, FFN, embedding) of the papers' backbones, when their config is not at hand
    "bert-base": (12, 768, 3072, 768),
    "roberta-base": (12, 768, 3072, 768),
    "albert-base": (12, 768, 3072, 128),
}
SUSTAINED_TFLOPS = 100.0  # about a third of an A100's bf16 peak: a planning figure, not a measurement
FORWARD, TRAINED = 1, 3  # passes per example: a frozen forward, a forward plus backward


@dataclass(frozen=True)
class Sizes:
    """An encoder's sizes and where they came from (its config.json, or its family's published sizes)."""

    layers: int
    hidden: int
    intermediate: int
    embedding: int
    source: str

    def forward_flops(self, layers: int, tokens: int) -> float:
        """FLOPs (2 x multiply-accumulates) of one example of ``tokens`` tokens through ``layers`` layers."""
        analytic = AnalyticFlops(
            {
                "hidden_size": self.hidden,
                "intermediate_size": self.intermediate,
                "embedding_size": self.embedding,
                "num_outputs": 2,
                "head": "highway",
            }
        )
        n = np.array([tokens], dtype=float)
        return float(2 * (analytic.embeddings(n) + layers * analytic.layer(n))[0])


@functools.cache  # one lookup per backbone, not per (dataset, recipe)
def backbone_sizes(backbone: str, resources: str | Path | None = None) -> Sizes | None:
    """Sizes from the backbone's config.json (offline copy, local folder or hub cache), else its family's."""
    from fastexit_bench.reporting.paper import backbone_family

    location = Path(resolve_backbone(backbone, resources).location)
    config_file = location / "config.json" if location.is_dir() else _cached_config(backbone)
    if config_file is not None and config_file.is_file():
        c = json.loads(config_file.read_text())
        return Sizes(
            c["num_hidden_layers"],
            c["hidden_size"],
            c["intermediate_size"],
            c.get("embedding_size", c["hidden_size"]),
            f"{config_file}",
        )
    family = backbone_family(backbone)
    if family in FAMILY_SIZES:
        return Sizes(*FAMILY_SIZES[family], f"{family} sizes (config not cached here)")
    return None


def _cached_config(hub_id: str) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(hub_id, "config.json")
    return Path(found) if isinstance(found, str) else None


PARTIAL_COPY = "partial local copy"


@functools.cache  # one load per dataset, not per (dataset, recipe)
def training_rows(spec: DatasetSpec, mirror: str | Path | None) -> tuple[int | None, str]:
    """Rows a full run trains on and where the count comes from; a partial local copy says so, since the
    paper's published numbers were measured on all of the data."""
    published = spec.published_train_rows
    if spec.train_split in available_splits(spec, mirror):
        rows = len(load_split(spec, spec.train_split, mirror).frame)
        if spec.is_partial(rows):
            return rows, f"{PARTIAL_COPY} ({rows:,} of {published:,} published)"
        return rows, "local copy"
    if published is None:
        return None, "unknown (no local copy, no published size)"
    return published, "hub copy (published size)"


@functools.cache  # one load per (dataset, split), not per (dataset, recipe)
def local_rows(spec: DatasetSpec, split: str, mirror: str | Path | None) -> int | None:
    """Rows of one split in the mirror (after the loader's carves), or None when the mirror lacks it."""
    if split not in available_splits(spec, mirror):
        return None
    return len(load_split(spec, split, mirror).frame)


def _evaluation_flops(
    recipe: Recipe,
    config: TrainConfig,
    sizes: Sizes,
    tokens: int,
    selection: int,
    reported: int,
    skip_first: bool,
) -> float:
    """Forward FLOPs of scoring the selection split after each epoch of every stage run here (once in all for a
    stage on cached features, where the cache holds the dev vectors), plus the two evaluate jobs."""
    depth = recipe.num_layers or sizes.layers
    passes = 0
    for stage in recipe.stages[1:] if skip_first else recipe.stages:
        cached = stage.trains == "offramps" and config.caches_features(
            stage, HEAD_KINDS.get(recipe.head).pools
        )
        passes += 1 if cached else config.of(stage).epochs
        if stage.distils:
            depth = recipe.student_layers
    final = recipe.student_layers or depth
    return passes * selection * sizes.forward_flops(depth, tokens) + (
        selection + reported
    ) * sizes.forward_flops(final, tokens)


@dataclass(frozen=True)
class TrainingWork:
    """One (dataset, recipe)'s training for one seed, and how many seeds train it."""

    dataset: str
    recipe: str
    backbone: str
    rows: int | None
    rows_source: str
    example_epochs: int | None
    flops: float | None
    shares_baseline: bool = False
    evaluation_flops: float | None = None
    cpu_hours: float | None = None
    seeds: int = 1


@dataclass(frozen=True)
class CpuRate:
    """One backbone's measured training rate: examples/s of a full-depth fine-tune on ``dataset``."""

    examples_per_s: float
    dataset: str
    cpu: str


@dataclass(frozen=True)
class CpuRates:
    """Measured training rates per backbone (``benchmarks/train_cost.py``'s ``after`` throughput) and the file."""

    rates: dict[str, CpuRate]
    source: str

    @classmethod
    def read(cls, path: Path) -> CpuRates | None:
        """The rates in a ``train_cost`` benchmark file; None when there is none."""
        if not Path(path).is_file():
            return None
        record = json.loads(Path(path).read_text())
        cpu = record["provenance"]["env"]["cpu"]
        rates = {}
        for row in record["throughput"]:
            backbone, dataset, _ = row["case"].split(":")
            rates[backbone] = CpuRate(row["after_examples_per_s"], dataset, cpu)
        return cls(rates, str(path))


def _stage_flops(
    recipe: Recipe, config: TrainConfig, sizes: Sizes, rows: int, tokens: int, skip_first: bool = False
) -> float:
    """Training FLOPs of every stage of ``recipe`` on ``rows`` examples (see the module docstring); with
    ``skip_first``, the first stage is another model's (the experiment's baseline)."""
    depth = recipe.num_layers or sizes.layers
    total = 0.0
    for stage in recipe.stages[1:] if skip_first else recipe.stages:
        epochs = config.of(stage).epochs
        if stage.distils:
            student = recipe.student_layers
            per_example = TRAINED * sizes.forward_flops(student, tokens) + FORWARD * sizes.forward_flops(
                depth, tokens
            )
            depth = student
        elif stage.trains == "offramps":
            per_example = FORWARD * sizes.forward_flops(depth, tokens)
            cached = config.caches_features(stage, exits_read_pooled_only=HEAD_KINDS.get(recipe.head).pools)
            total += per_example * rows * (1 if cached else epochs)
            continue
        else:
            per_example = TRAINED * sizes.forward_flops(depth, tokens)
        total += per_example * rows * epochs
    return total


def training_work(
    settings: ExperimentSettings,
    dataset: str,
    recipe_name: str,
    mirror: str | Path | None,
    resources: str | Path | None = None,
    rates: CpuRates | None = None,
) -> TrainingWork:
    """The training of one (dataset, recipe) of an experiment, for one seed."""
    spec, recipe = DATASETS.get(dataset), get_recipe(recipe_name)
    backbone = settings.backbone_for(dataset)
    rows, source = training_rows(spec, mirror)
    if rows is not None and settings.data.max_train is not None:
        rows = min(rows, settings.data.max_train)
    config = settings.train_config(recipe_name)
    sizes = backbone_sizes(backbone, resources)
    if rows is None:
        return TrainingWork(dataset, recipe_name, backbone, None, source, None, None)
    shared = settings.starts_from_baseline(recipe_name)
    epochs = sum(config.of(stage).epochs for stage in recipe.stages[1 if shared else 0 :])
    max_length, max_eval = settings.data.max_length, settings.data.max_eval
    flops = _stage_flops(recipe, config, sizes, rows, max_length, shared) if sizes else None
    evaluated = [local_rows(spec, split, mirror) for split in spec.evaluated_splits]
    evaluation = None
    if sizes and None not in evaluated:
        selection, reported = (n if max_eval is None else min(n, max_eval) for n in evaluated)
        evaluation = _evaluation_flops(recipe, config, sizes, max_length, selection, reported, shared)
    rate = rates.rates.get(backbone) if rates else None
    cpu_hours = None
    if rate is not None and flops is not None:
        per_example = TRAINED * sizes.forward_flops(sizes.layers, max_length)
        cpu_hours = (flops + (evaluation or 0.0)) / (rate.examples_per_s * per_example) / 3600
    return TrainingWork(
        dataset,
        recipe_name,
        backbone,
        rows,
        source,
        rows * epochs,
        flops,
        shared,
        evaluation,
        cpu_hours,
        len(settings.seeds_for(recipe_name)),
    )


@dataclass(frozen=True)
class Plan:
    """An experiment's jobs and training work; totals are over every seed."""

    experiment: str
    jobs: dict[str, int]
    work: list[TrainingWork]
    tflops: float
    rates: CpuRates | None = None

    def total(self, field: str) -> float | None:
        """Sum of ``field`` over every seed and the rows where it is known (None when it is known nowhere)."""
        known = [w.seeds * value for w in self.work if (value := getattr(w, field)) is not None]
        return float(sum(known)) if known else None

    @property
    def unknown(self) -> int:
        """Rows whose FLOPs are unknown (no row count or no backbone sizes), left out of the totals."""
        return sum(w.flops is None for w in self.work)

    def gpu_hours(self, flops: float | None) -> float | None:
        return None if flops is None else flops / (self.tflops * 1e12) / 3600

    def markdown(self) -> str:
        """The plan as Markdown: jobs, one row per (dataset, recipe), and the totals."""

        def number(value: float | None, unit: str = "") -> str:
            return "?" if value is None else f"{value:,.0f}{unit}" if value >= 100 else f"{value:.2g}{unit}"

        lines = [
            f"# Plan: {self.experiment}",
            "",
            "jobs: " + ", ".join(f"{rule} {n}" for rule, n in self.jobs.items() if n),
            "",
            (
                "| dataset | recipe | seeds | backbone | train rows | rows from | examples x epochs | PFLOPs | "
                "GPU-hours | CPU-hours |"
            ),
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for w in self.work:
            pflops = None if w.flops is None else w.flops / 1e15
            recipe = f"{w.recipe} (from baseline)" if w.shares_baseline else w.recipe
            lines.append(
                f"| {w.dataset} | {recipe} | {w.seeds} | {w.backbone} | {number(w.rows)} | {w.rows_source} | "
                f"{number(w.example_epochs)} | {number(pflops)} | {number(self.gpu_hours(w.flops))} | "
                f"{number(w.cpu_hours)} |"
            )
        flops = self.total("flops")
        lines += [
            "",
            (
                f"total over every seed: {number(self.total('example_epochs'))} examples x epochs, "
                f"{number(None if flops is None else flops / 1e15)} PFLOPs of training, "
                f"{number(self.gpu_hours(flops))} GPU-hours at {self.tflops:g} sustained TFLOP/s "
                "(an upper bound: every example at max_length; evaluation adds one forward pass per "
                "evaluated example)"
            ),
        ]
        lines.append(self._cpu_line())
        if any(w.rows_source.startswith(PARTIAL_COPY) for w in self.work):
            lines.append(
                f"{PARTIAL_COPY}: the mirror holds fewer training rows than the published dataset; the papers' "
                "numbers were measured on all of them, so a paper table compares different data"
            )
        if self.unknown:
            lines.append(
                f"{self.unknown} of {len(self.work)} rows are unknown (marked ?) and left out of the totals"
            )
        return "\n".join(lines) + "\n"

    def _cpu_line(self) -> str:
        if self.rates is None:
            return (
                "CPU-hours: no measured rate (run `python benchmarks/train_cost.py --mirror DATA --out "
                "results/benchmarks/train_cost_cpu.json` on this machine)"
            )
        hours = self.total("cpu_hours")
        measured = "; ".join(
            f"{b} {r.examples_per_s:.1f} examples/s on {r.dataset}" for b, r in self.rates.rates.items()
        )
        cpu = next(iter(self.rates.rates.values())).cpu if self.rates.rates else "?"
        evaluation = self.total("evaluation_flops")
        return (
            f"CPU-hours of training and evaluation: {'?' if hours is None else f'{hours:.2g}'} over every "
            f"seed ({'?' if evaluation is None else f'{evaluation / 1e15:.2g}'} PFLOPs of evaluation), at "
            f"the rates measured on {cpu} ({measured}; {self.rates.source}); each job also starts Python and "
            "loads its model (seconds), and latency timing adds a minute or two per early-exit model"
        )


def plan(
    settings: ExperimentSettings,
    mirror: str | Path | None,
    resources: str | Path | None = None,
    tflops: float = SUSTAINED_TFLOPS,
    rates: CpuRates | None = None,
) -> Plan:
    """The plan of an experiment from its settings (:func:`settings.experiment_settings`)."""
    work = [
        training_work(settings, d, r, mirror, resources, rates)
        for d in settings.datasets
        for r in settings.recipes
    ]
    return Plan(settings.name, settings.job_counts(), work, tflops, rates)
