"""Per-layer predictions of a trained model, and the evaluation artefact everything downstream reads.

One artefact per (model, split) holds every exit's logits for every example, the labels, the
learned-exit scores and the token lengths, plus metadata. Exit policies, FLOP and latency models,
and tables consume only this file, so a new policy never needs the model again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fastexit_bench.errors import FastExitError
from fastexit_bench.io import atomic_path
from fastexit_bench.analysis.metrics import compute_metrics
from fastexit_bench.models.early_exit import EarlyExitModel
from fastexit_bench.runtime.batches import CachedClsFeatures, TokenBatches, sequential

ARTIFACT_VERSION = 1


@dataclass
class ExitPredictions:
    """Outputs of every exit on one split.

    Attributes:
        logits: ``[layers, examples, outputs]``; layer k's logits at index k - 1.
        labels: ``[examples]`` or None for unlabeled text.
        exit_scores: ``[layers, examples]`` learned-exit logits (BERxiT), or None.
    """

    logits: np.ndarray
    labels: np.ndarray | None
    exit_scores: np.ndarray | None = None

    @property
    def num_layers(self) -> int:
        return self.logits.shape[0]

    def layer_predictions(self, task: str) -> np.ndarray:
        """``[layers, examples]`` class ids, or regression values."""
        return self.logits[..., 0] if task == "regression" else self.logits.argmax(-1)

    def layer_metrics(self, task: str, metrics: tuple[str, ...]) -> list[dict[str, float]]:
        """Each metric at each exit (index k - 1 for layer k)."""
        if self.labels is None:
            raise FastExitError("these predictions have no labels, so no metric can be computed")
        return [compute_metrics(metrics, layer, self.labels) for layer in self.layer_predictions(task)]


@torch.no_grad()
def predict(model: EarlyExitModel, source: TokenBatches | CachedClsFeatures, batch_size: int) -> ExitPredictions:
    """Run every exit on every example of ``source`` in order (eval mode, no dropout)."""
    was_training = model.training
    model.eval()
    logits, scores, labels = [], [], []
    for indices in sequential(len(source), batch_size):
        batch = source.batch(indices)
        out = source.exits(model, batch)
        logits.append(out.logits.float().cpu())
        if out.exit_scores is not None:
            scores.append(out.exit_scores.float().cpu())
        if batch.labels is not None:
            labels.append(batch.labels.cpu())
    model.train(was_training)
    return ExitPredictions(
        logits=torch.cat(logits, dim=1).numpy(),
        labels=torch.cat(labels).numpy() if labels else None,
        exit_scores=torch.cat(scores, dim=1).numpy() if scores else None,
    )


@dataclass
class ExitArtifact:
    """:class:`ExitPredictions` of one (model, split) with token lengths and metadata, stored as ``.npz``."""

    predictions: ExitPredictions
    lengths: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        arrays = {"logits": self.predictions.logits, "lengths": self.lengths}
        if self.predictions.labels is not None:
            arrays["labels"] = self.predictions.labels
        if self.predictions.exit_scores is not None:
            arrays["exit_scores"] = self.predictions.exit_scores
        meta = {"artifact_version": ARTIFACT_VERSION, **self.metadata}
        with atomic_path(Path(path)) as tmp, open(tmp, "wb") as handle:
            np.savez_compressed(handle, metadata=np.array(json.dumps(meta, default=str)), **arrays)

    @classmethod
    def load(cls, path: Path) -> ExitArtifact:
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["metadata"]))
                arrays = {k: data[k] for k in data.files if k != "metadata"}
        except (OSError, ValueError, KeyError) as exc:
            raise FastExitError(f"{path} is not an evaluation artefact ({exc}); "
                                "write one with `fastexit-bench evaluate`") from None
        if meta.get("artifact_version") != ARTIFACT_VERSION:
            raise FastExitError(f"{path} has artefact version {meta.get('artifact_version')}, this code reads "
                                f"{ARTIFACT_VERSION}; rerun `fastexit-bench evaluate`")
        predictions = ExitPredictions(arrays["logits"], arrays.get("labels"), arrays.get("exit_scores"))
        return cls(predictions, arrays["lengths"], meta)
