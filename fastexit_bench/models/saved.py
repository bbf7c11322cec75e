"""A trained early-exit model on disk: ``model.safetensors`` plus ``training.json`` (:class:`TrainingRecord`).

``training.json`` is written last, so a folder without it is not a finished model. The backbone
is rebuilt from its name (or folder) and the weights loaded over it, so no modeling code is pickled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from safetensors import SafetensorError
from safetensors.torch import load_model, save_model

from fastexit_bench.analysis.artifact import ModelIdentity
from fastexit_bench.errors import ModelLoadError, RecordError
from fastexit_bench.execution import FP32_EAGER, Execution
from fastexit_bench.io import check_file_set, file_set, read_json, sha256_file
from fastexit_bench.locations import ResolvedBackbone
from fastexit_bench.models.early_exit import EarlyExitModel
from fastexit_bench.models.heads import HEADS
from fastexit_bench.pooling import DEFAULT_POOLING, resolve_pooling
from fastexit_bench.provenance import Provenance
from fastexit_bench.records import VersionedRecord

WEIGHTS = "model.safetensors"
INFO = "training.json"


@dataclass(frozen=True)
class ModelSpec:
    """What to build before loading weights: backbone, head type, output width, kept layers, BERxiT scorer
    and what it reads (records written before it read the pooled output leave the key out: ``cls``), and how
    the heads pool (``fastexit_bench.pooling``; records from before pooling was a choice read [CLS])."""

    backbone: str
    head: str
    num_outputs: int
    num_layers: int | None = None
    learned_exit: bool = False
    scorer_input: str = "cls"
    pooling: str = "cls"


def pooling_for(
    backbone: str, head: str, requested: str = DEFAULT_POOLING, resources: str | Path | None = None
) -> str:
    """The pooling a model of ``head`` heads on ``backbone`` is built with (``fastexit_bench.pooling``)."""
    from fastexit_bench.models.backbones import resolve_backbone

    return resolve_pooling(requested, resolve_backbone(backbone, resources).pooling, HEADS.get(head).pools)


def build_model(spec: ModelSpec, resources: str | Path | None = None, seed: int | None = None):
    """``(EarlyExitModel, tokenizer, resolved backbone)`` with freshly initialised heads. With ``seed``, the heads'
    initialisation is a function of the seed alone: the RNG is seeded again after the backbone is loaded (a first
    load may build or convert it, drawing from the RNG), so every recipe of one seed starts from the same heads."""
    import torch

    from fastexit_bench.models.backbones import load_backbone

    if seed is not None:
        torch.manual_seed(seed)
    backbone, tokenizer, resolved = load_backbone(spec.backbone, resources)
    if seed is not None:
        torch.manual_seed(seed)
    model = EarlyExitModel(
        backbone,
        spec.head,
        spec.num_outputs,
        num_layers=spec.num_layers,
        learned_exit=spec.learned_exit,
        scorer_input=spec.scorer_input,
        pooling=spec.pooling,
    )
    return model, tokenizer, resolved


TRAINING_RECORD_VERSION = 1


@dataclass(frozen=True)
class DevMetric:
    """The headline dev metric (``name``) at every exit of the kept epoch (``per_layer[k - 1]``: layer k)."""

    name: str
    per_layer: list[float]


@dataclass
class TrainingRecord(VersionedRecord):
    """``training.json``: what was trained, how, on which data, and how it scored on dev.

    Attributes:
        model: the :class:`ModelSpec` the weights load into.
        dataset / recipe / seed / max_length: the run's dataset, recipe, seed and tokenization length.
        backbone: where the backbone came from (``requested``, ``location``, ``source``, ``has_pooler``).
        train_config: the resolved ``TrainConfig`` (every default filled in).
        data: where the train and dev rows came from (``LoadedSplit.origin``; dev also names its split) and
            their hygiene (``data.hygiene.SplitHygiene`` per split).
        stages: per stage, its ``StageLog`` (learning rate, epochs with losses and dev metrics, best epoch).
        dev_metric: the headline dev metric at every exit of the kept epoch.
        provenance: the ``provenance.collect`` block of the training run.
        execution: the precision and attention implementation training ran with (``execution.Execution``).
        first_stage: what the recipe's first stage computed from (``training.shared.first_stage_inputs``): a
            recipe starting with the same stage may start from this model when they are equal.
        shared_stages: per stage taken from another saved model, that model's folder, recipe and weights hash.
        exit_policy: the policy the recipe's paper exits with (None: the model always runs to the end), so
            that readers of the model and its artefacts need not know the recipe.
    """

    model: ModelSpec
    dataset: str
    recipe: str
    seed: int
    max_length: int
    backbone: ResolvedBackbone
    train_config: dict[str, Any]
    data: dict[str, Any]
    stages: list[dict[str, Any]]
    dev_metric: DevMetric
    provenance: Provenance = field(default_factory=Provenance)
    execution: Execution = FP32_EAGER
    first_stage: dict[str, Any] = field(default_factory=dict)
    shared_stages: dict[str, Any] = field(default_factory=dict)
    exit_policy: str | None = None

    VERSION: ClassVar[int] = TRAINING_RECORD_VERSION
    RERUN: ClassVar[str] = "fastexit-bench train"

    @classmethod
    def _version_of(cls, data: dict[str, Any]) -> Any:
        return data.get(cls.VERSION_KEY, cls.VERSION)  # records before versioning have this layout

    @property
    def eval_rows(self) -> int | None:
        """How many dev rows training scored on (its seeded subsample; None: every row): what `evaluate`
        samples by default, so a model trained on a subsample is not evaluated for minutes on every row."""
        return self.data.get("dev", {}).get("subsampled", {}).get("rows_kept")

    def check_dataset(self, num_outputs: int, where: Path) -> None:
        """Refuse a record whose dataset is not the one its model was trained on (an edited record): the
        dataset named twice must agree, and the model's outputs must be the dataset's."""
        trained_on = self.first_stage.get("dataset", self.dataset)
        if trained_on != self.dataset or self.model.num_outputs != num_outputs:
            raise RecordError(
                f"{where} names dataset {self.dataset!r} ({num_outputs} outputs) but the model was trained on "
                f"{trained_on!r} with {self.model.num_outputs} outputs; restore the record or train again"
            )


def save_trained(folder: Path, model: EarlyExitModel, record: TrainingRecord) -> None:
    """Publish the weights and ``training.json`` (the completion marker, holding the weights' hash) as one
    result: a run stopped meanwhile never leaves new weights beside an old record."""
    folder = Path(folder)
    with file_set(folder / INFO) as outputs:
        save_model(model, str(outputs.path(folder / WEIGHTS)))
        outputs.publish(record.to_dict())


def read_record(folder: Path) -> TrainingRecord:
    """The record of a finished model folder (written by :func:`save_trained`), without loading its weights."""
    folder = Path(folder)
    if not (folder / INFO).is_file() or not (folder / WEIGHTS).is_file():
        raise ModelLoadError(
            f"{folder} is not a finished model (needs {WEIGHTS} and {INFO}); "
            "train one with `fastexit-bench train ... --out FOLDER`"
        )
    payload = read_json(folder / INFO)
    check_file_set(folder / INFO, payload, TrainingRecord.RERUN)
    return TrainingRecord.from_dict(payload, str(folder / INFO))


def model_identity(folder: Path) -> ModelIdentity:
    """The identity of the finished model in ``folder`` (its record's dataset, recipe, seed and backbone, and
    its weights' hash), as the artefacts and sweeps of it carry it."""
    record = read_record(folder)
    weights = sha256_file(Path(folder) / WEIGHTS)
    return ModelIdentity(record.dataset, record.recipe, record.seed, record.backbone.requested, weights)


def load_trained(
    folder: Path, resources: str | Path | None = None
) -> tuple[EarlyExitModel, Any, TrainingRecord]:
    """``(model in eval mode, tokenizer, record)`` from a folder written by :func:`save_trained`."""
    folder = Path(folder)
    record = read_record(folder)
    model, tokenizer, _ = build_model(record.model, resources)
    try:
        load_model(model, str(folder / WEIGHTS))
    except (
        SafetensorError,
        RuntimeError,
        OSError,
    ) as error:  # truncated, foreign, or another model's weights
        reason = str(error).splitlines()[0][:200]
        raise ModelLoadError(
            f"{folder / WEIGHTS} does not hold the weights {INFO} describes ({reason}); "
            "train the model again into this folder, or restore the file"
        ) from None
    return model.eval(), tokenizer, record
