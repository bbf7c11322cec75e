"""The evaluation artefact: every exit's outputs on one split, the record everything downstream reads.

One artefact per (model, split) holds every exit's logits for every example, the labels, the
learned-exit scores and the token lengths, plus :class:`ArtifactMetadata`. Exit policies, FLOP and
latency models, and tables consume only this file, so a new policy never needs the model again.
Nothing here imports torch: ``fastexit_bench.runtime.predict`` produces the outputs.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from fastexit_bench.analysis.head_kinds import HEAD_KINDS
from fastexit_bench.errors import FastExitError, RecordError
from fastexit_bench.execution import FP32_EAGER, Execution
from fastexit_bench.io import atomic_path
from fastexit_bench.locations import ResolvedBackbone
from fastexit_bench.metrics import compute_metrics
from fastexit_bench.provenance import Provenance
from fastexit_bench.records import VersionedRecord

ARTIFACT_VERSION = 1


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis: scipy.special.softmax's formula, without its array-API dispatch, which costs
    about 0.1 ms a call (the engine decides at every layer, and at batch 1 that is a tenth of a layer)."""
    shifted = np.exp(logits - np.max(logits, axis=-1, keepdims=True))
    return shifted / np.sum(shifted, axis=-1, keepdims=True)


@dataclass
class LayerOutputs:
    """Every exit's outputs for a set of examples: what a policy decides on and what metrics score.

    Attributes:
        logits: ``[layers, examples, outputs]`` (layer k at index k - 1; one output for regression).
        task: "classification" or "regression".
        exit_scores: ``[layers, examples]`` learned-exit logits (BERxiT), or None.
        labels: ``[examples]``, or None for unlabelled text; policies other than the oracle never read them.
    """

    logits: np.ndarray
    task: str
    exit_scores: np.ndarray | None = None
    labels: np.ndarray | None = None

    @property
    def num_layers(self) -> int:
        return self.logits.shape[0]

    def select(self, examples: np.ndarray, layers: int | None = None) -> LayerOutputs:
        """The first ``layers`` exits (all by default) of the examples at positions ``examples``."""
        upto = slice(None, layers)
        return LayerOutputs(
            self.logits[upto, examples],
            self.task,
            self.exit_scores[upto, examples] if self.exit_scores is not None else None,
            self.labels[examples] if self.labels is not None else None,
        )

    def probabilities(self) -> np.ndarray:
        return softmax(self.logits)

    def predictions(self) -> np.ndarray:
        """``[layers, examples]`` class ids, or regression values."""
        return self.logits[..., 0] if self.task == "regression" else self.logits.argmax(-1)

    def layer_metrics(self, metrics: tuple[str, ...]) -> list[dict[str, float]]:
        """Each metric at each exit (index k - 1 for layer k)."""
        if self.labels is None:
            raise FastExitError("these predictions have no labels, so no metric can be computed")
        return [compute_metrics(metrics, layer, self.labels) for layer in self.predictions()]


@dataclass
class ArtifactMetadata(VersionedRecord):
    """What an artefact is: which model, data and split produced it, and what its numbers mean.

    Attributes:
        dataset / split / task: the dataset's registry name, the split evaluated, its task.
        metrics: the dataset's metric keys; the first is the headline metric.
        recipe: the training recipe of the model (``baseline``, ``deebert``, ``truncated-3``, ...).
        backbone: where the backbone came from.
        seed: the training seed (also seeds the subsample of this split).
        architecture: sizes the analytic FLOP model needs (see ``EarlyExitModel.architecture``).
        label_names: class names in label-index order; empty for regression.
        model: the ``ModelSpec`` the weights load into.
        flops: fvcore's per-component MACs as quadratics in length (``PolynomialFlops.to_dict``).
        max_length: tokenization length of the model.
        model_dir / model_sha256 / trained_at_commit: the trained model folder, its weights' hash, its commit.
        data_origin: where the split's rows came from (mirror path, carving, subsampling).
        layer_metrics: every metric at every exit, index k - 1 for layer k.
        provenance: the ``provenance.collect`` block of the evaluation run.
        execution: the precision and attention implementation the logits were computed with; artefacts from
            before these were choosable ran in fp32 with eager attention.
        exit_policy: the policy the model's paper exits with (``TrainingRecord.exit_policy``; None: none, or an
            artefact from before it was recorded).
        trained_on: the dataset the model was trained on where it is not ``dataset`` (`evaluate --dataset`: a
            distribution shift); None: the same.
        train_rows / published_train_rows: the rows the model trained on and the dataset's published training
            rows (``DatasetSpec.published_train_rows``), so a table can say when a model saw part of the data
            the papers trained on (None: unknown, or an artefact from before they were recorded).
    """

    dataset: str
    split: str
    task: str
    metrics: list[str]
    recipe: str
    backbone: ResolvedBackbone
    seed: int
    architecture: dict[str, Any]
    label_names: list[str] = field(default_factory=list)
    model: dict[str, Any] = field(default_factory=dict)
    flops: dict[str, Any] | None = None
    max_length: int | None = None
    model_dir: str | None = None
    model_sha256: str | None = None
    trained_at_commit: str | None = None
    data_origin: dict[str, Any] = field(default_factory=dict)
    layer_metrics: list[dict[str, float]] | None = None
    provenance: Provenance = field(default_factory=Provenance)
    execution: Execution = FP32_EAGER
    exit_policy: str | None = None
    trained_on: str | None = None
    train_rows: int | None = None
    published_train_rows: int | None = None

    VERSION: ClassVar[int] = ARTIFACT_VERSION
    VERSION_KEY: ClassVar[str] = "artifact_version"
    RERUN: ClassVar[str] = "fastexit-bench evaluate"

    @property
    def headline_metric(self) -> str:
        return self.metrics[0]

    @property
    def backbone_name(self) -> str:
        return self.backbone.requested

    @property
    def exit_pooling(self) -> str:
        """How the model's exit heads pool a layer (``cls``, ``mean``; models from before the choice read [CLS]),
        or ``""`` for heads that read every token themselves (FastBERT's branch)."""
        if not HEAD_KINDS.get(self.architecture["head"]).pools:
            return ""
        return self.architecture.get("pooling", "cls")


TEXT_CHARS = 120
"""How much of each example's text an artefact keeps: enough to see which inputs exit where."""


@dataclass
class ExitArtifact:
    """:class:`LayerOutputs` of one (model, split) with token lengths, metadata and, from artefacts written
    since they were added, the first ``TEXT_CHARS`` characters of each example's text; stored as ``.npz``."""

    predictions: LayerOutputs
    lengths: np.ndarray
    metadata: ArtifactMetadata
    texts: np.ndarray | None = None

    def check_finite(self, where: Path | str) -> None:
        """Refuse outputs with NaN or infinite values: an argmax of NaN still gives a class, and an accuracy."""
        for name, values in (
            ("logits", self.predictions.logits),
            ("exit scores", self.predictions.exit_scores),
        ):
            if values is None or np.isfinite(values).all():
                continue
            layers = sorted({int(k) + 1 for k in np.nonzero(~np.isfinite(values))[0]})
            raise RecordError(
                f"{where}: the model's {name} are not finite at layers {layers} (training "
                "diverged); retrain it with a lower learning rate"
            )

    def check_shapes(self, where: Path | str) -> None:
        """Refuse arrays that do not describe one set of examples: logits ``[layers, examples, outputs]`` with at
        least one of each, labels, lengths, texts and exit scores of the same examples, and class labels inside
        the label set."""
        logits, labels = self.predictions.logits, self.predictions.labels
        problems = []
        if logits.ndim != 3 or 0 in logits.shape:
            problems.append(
                f"logits of shape {list(logits.shape)}, not [layers >= 1, examples >= 1, outputs >= 1]"
            )
        else:
            layers, examples, outputs = logits.shape
            for name, values, shape in (
                ("labels", labels, (examples,)),
                ("lengths", self.lengths, (examples,)),
                ("texts", self.texts, (examples,)),
                ("exit scores", self.predictions.exit_scores, (layers, examples)),
            ):
                if values is not None and np.shape(values) != shape:
                    problems.append(f"{name} of shape {list(np.shape(values))} for {examples} examples")
            if self.lengths is None:
                problems.append("no token lengths")
            classes = len(self.metadata.label_names) or outputs
            if (
                self.predictions.task == "classification"
                and labels is not None
                and labels.shape == (examples,)
            ):
                values = np.asarray(labels)
                outside = values[(values < 0) | (values >= classes)]
                if outside.size:
                    problems.append(
                        f"labels {sorted(set(outside.tolist()))[:5]} outside its {classes} classes"
                    )
        if problems:
            raise RecordError(
                f"{where} is not a whole evaluation artefact ({'; '.join(problems)}); write it again with "
                "`fastexit-bench evaluate` or `fastexit-bench artefact import`"
            )

    def save(self, path: Path) -> None:
        self.check_shapes(f"{self.metadata.model_dir or path}")
        self.check_finite(f"{self.metadata.model_dir or path}")
        arrays = {"logits": self.predictions.logits, "lengths": self.lengths}
        if self.predictions.labels is not None:
            arrays["labels"] = self.predictions.labels
        if self.predictions.exit_scores is not None:
            arrays["exit_scores"] = self.predictions.exit_scores
        if self.texts is not None:
            arrays["texts"] = np.asarray([str(t)[:TEXT_CHARS] for t in self.texts], dtype=str)
        meta = json.dumps(self.metadata.to_dict(), default=str)
        with atomic_path(Path(path)) as tmp, open(tmp, "wb") as handle:
            np.savez_compressed(handle, metadata=np.array(meta), **arrays)

    @classmethod
    def load(cls, path: Path) -> ExitArtifact:
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["metadata"]))
                arrays = {k: data[k] for k in data.files if k != "metadata"}
            if "logits" not in arrays:
                raise KeyError("it holds no logits")
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise RecordError(
                f"{path} is not an evaluation artefact ({exc}); write one with `fastexit-bench evaluate`"
            ) from None
        metadata = ArtifactMetadata.from_dict(meta, str(path))
        outputs = LayerOutputs(
            arrays["logits"], metadata.task, arrays.get("exit_scores"), arrays.get("labels")
        )
        artifact = cls(outputs, arrays.get("lengths"), metadata, arrays.get("texts"))
        artifact.check_shapes(path)
        artifact.check_finite(path)
        return artifact


@dataclass(frozen=True)
class ModelIdentity:
    """Which trained model produced a result: what every reader that joins two results (dev and test artefacts,
    a sweep and its model, a sweep and artefacts) compares, so that numbers of two models are never mixed."""

    dataset: str
    recipe: str
    seed: int
    backbone: str
    weights: str | None

    @classmethod
    def of(cls, metadata: ArtifactMetadata) -> ModelIdentity:
        """The model (by the dataset it was trained on: its outputs on a shifted dataset are the same model's)."""
        trained_on = metadata.trained_on or metadata.dataset
        return cls(trained_on, metadata.recipe, metadata.seed, metadata.backbone_name, metadata.model_sha256)

    def check_same(self, other: ModelIdentity, mine: Path | str, theirs: Path | str) -> None:
        """Refuse ``other`` unless it is the same model (``mine`` and ``theirs`` name where each came from)."""
        differ = [
            f"{key} {a!r} vs {b!r}" if key != "weights" else f"weights {str(a)[:12]}... vs {str(b)[:12]}..."
            for key, a, b in zip(self.__dataclass_fields__, astuple(self), astuple(other), strict=True)
            if a != b
        ]
        if differ:
            raise RecordError(
                f"{mine} and {theirs} are not from the same model ({'; '.join(differ)}); pass the files "
                "written for one model"
            )


def check_pair(dev: ExitArtifact, test: ExitArtifact, dev_path: Path, test_path: Path) -> None:
    """Refuse a dev/test pair that is not one model's two splits (of its dataset, or the reported one of a shifted
    dataset: `evaluate --dataset`): operating points chosen on one model and measured on another's outputs would
    be reported as a number nobody measured."""
    mine, theirs = dev.metadata, test.metadata
    ModelIdentity.of(mine).check_same(ModelIdentity.of(theirs), dev_path, test_path)
    if (mine.dataset, mine.split) == (theirs.dataset, theirs.split):
        raise RecordError(
            f"{dev_path} and {test_path} are both split {mine.split!r}; give the split operating "
            "points are chosen on first and the reported split as --test"
        )
