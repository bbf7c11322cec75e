"""The interchange format for exit outputs, ``fastexit-exits`` version 1: what any early-exit framework can
write for `sweep`, `report` and `leaderboard` to read, and what `artefact export` writes from ours.

Per example: ``text_id`` (a string), ``label``, ``length`` (tokens), ``logits`` (``[layers][outputs]``: every
exit's logits, or its one regression value), ``exit_scores`` (``[layers]``, optional: a learned exit's
logit) and ``text`` (optional). Per model, one JSON object: ``schema`` and ``version``, ``flop_convention``
(``macs``: one multiply-add counts one, as fvcore counts), and ``metadata``, the keys of
:class:`~fastexit_bench.analysis.artifact.ArtifactMetadata` (dataset, split, task, metrics, recipe, backbone,
seed, label names, FLOPs, provenance, ...). Two containers: Parquet (one row per example, the JSON in the
file's key-value metadata under ``fastexit-exits``) or ``NAME.npz`` (arrays ``logits`` ``[layers, examples,
outputs]``, ``labels``, ``lengths``, ``text_ids``, optional ``exit_scores``, ``texts``) with ``NAME.json``.

FLOPs of outputs from elsewhere are given per part (embeddings, one layer, one exit head, one exit scorer),
in MACs or in FLOPs (two per multiply-add, FastBERT's convention: halved on import), as constants per example.
DeeBERT's ``eval_highway`` ``.npy`` files cannot be imported: they hold, per threshold, the exit-layer
counter, the time, the expected saving and the metric, and no example's outputs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fastexit_bench.analysis.artifact import ArtifactMetadata, ExitArtifact, LayerOutputs
from fastexit_bench.analysis.head_kinds import EXTERNAL
from fastexit_bench.errors import FastExitError, RecordError
from fastexit_bench.io import atomic_path, check_file_set, file_set, read_json
from fastexit_bench.locations import ResolvedBackbone

SCHEMA = "fastexit-exits"
SCHEMA_VERSION = 1
CONVENTIONS = {"macs": 1.0, "flops": 0.5}
"""What one counted unit is in MACs: fvcore's "flops" are MACs; FastBERT's FLOPs count two per MAC."""
FORMATS = (".parquet", ".npz")


@dataclass(frozen=True)
class PartCosts:
    """MACs of one example through each part (constants: outputs from elsewhere rarely say per length)."""

    embeddings: float
    layer: float
    head: float
    scorer: float = 0.0

    def flops_record(self, convention: str) -> dict[str, Any]:
        """As ``ArtifactMetadata.flops`` (``PolynomialFlops`` of degree 0), converted to MACs."""
        if convention not in CONVENTIONS:
            raise FastExitError(f"FLOP convention {convention!r} is not one of {sorted(CONVENTIONS)}")
        scale = CONVENTIONS[convention]
        parts = {"embeddings": self.embeddings, "layer": self.layer, "head": self.head, "scorer": self.scorer}
        return {
            "source": f"imported ({convention})",
            "coefficients": {name: [scale * float(value)] for name, value in parts.items()},
            "skipped_ops": {},
        }


def _model_json(artifact: ExitArtifact) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "version": SCHEMA_VERSION,
        "flop_convention": "macs",
        "metadata": artifact.metadata.to_dict(),
    }


def _text_ids(artifact: ExitArtifact, ids: np.ndarray | None) -> np.ndarray:
    return np.asarray(ids if ids is not None else np.arange(len(artifact.lengths)), dtype=str)


def export_artifact(artifact: ExitArtifact, out: Path, text_ids: np.ndarray | None = None) -> list[Path]:
    """Write ``artifact`` in the interchange format: ``out`` a ``.parquet`` file, or ``.npz`` with its
    ``.json``; returns the paths written."""
    out = Path(out)
    ids, outputs = _text_ids(artifact, text_ids), artifact.predictions
    if out.suffix == ".npz":
        arrays = {"logits": outputs.logits, "lengths": artifact.lengths, "text_ids": ids}
        optional = {"labels": outputs.labels, "exit_scores": outputs.exit_scores, "texts": artifact.texts}
        arrays.update({k: np.asarray(v) for k, v in optional.items() if v is not None})
        with file_set(out.with_suffix(".json")) as files:
            np.savez_compressed(files.path(out), **arrays)
            return files.publish(_model_json(artifact))
    if out.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = {
            "text_id": pa.array(ids.tolist(), pa.string()),
            "length": pa.array(artifact.lengths.astype(np.int64)),
            "logits": pa.array(outputs.logits.transpose(1, 0, 2).tolist(), pa.list_(pa.list_(pa.float32()))),
        }
        if outputs.labels is not None:
            columns["label"] = pa.array(outputs.labels)
        if outputs.exit_scores is not None:
            columns["exit_scores"] = pa.array(outputs.exit_scores.T.tolist(), pa.list_(pa.float32()))
        if artifact.texts is not None:
            columns["text"] = pa.array([str(t) for t in artifact.texts], pa.string())
        table = pa.table(columns).replace_schema_metadata({SCHEMA: json.dumps(_model_json(artifact))})
        with atomic_path(out) as tmp:
            pq.write_table(table, tmp)
        return [out]
    raise FastExitError(f"{out}: the interchange format is written as {' or '.join(FORMATS)}")


def _check_model_json(model: Any, where: Path) -> ArtifactMetadata:
    if not isinstance(model, dict) or model.get("schema") != SCHEMA:
        raise RecordError(f"{where} is not a {SCHEMA} file (no schema {SCHEMA!r} in its model JSON)")
    if model.get("version") != SCHEMA_VERSION:
        raise RecordError(
            f"{where} is {SCHEMA} version {model.get('version')}; this version reads {SCHEMA_VERSION}"
        )
    metadata = dict(model["metadata"])
    convention = model.get("flop_convention", "macs")
    if metadata.get("flops") and convention != "macs":
        raise RecordError(f"{where}: per-length FLOPs must be in MACs (got {convention!r})")
    return ArtifactMetadata.from_dict(metadata, str(where))


def read_interchange(source: Path) -> ExitArtifact:
    """An artefact from a ``fastexit-exits`` file (``.parquet``, or ``.npz`` beside its ``.json``)."""
    source = Path(source)
    try:
        if source.suffix == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(source)
            raw = (table.schema.metadata or {}).get(SCHEMA.encode())
            metadata = _check_model_json(json.loads(raw) if raw else None, source)
            columns = table.to_pydict()
            logits = np.asarray(columns["logits"], dtype=np.float32).transpose(1, 0, 2)
            scores = columns.get("exit_scores")
            outputs = LayerOutputs(
                logits,
                metadata.task,
                np.asarray(scores, dtype=np.float32).T if scores is not None else None,
                np.asarray(columns["label"]) if "label" in columns else None,
            )
            texts = np.asarray(columns["text"], dtype=str) if "text" in columns else None
            return ExitArtifact(outputs, np.asarray(columns["length"]), metadata, texts)
        if source.suffix == ".npz":
            model = read_json(source.with_suffix(".json"))
            check_file_set(source.with_suffix(".json"), model, "fastexit-bench artefact export")
            metadata = _check_model_json(model, source)
            with np.load(source, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
            outputs = LayerOutputs(
                arrays["logits"], metadata.task, arrays.get("exit_scores"), arrays.get("labels")
            )
            return ExitArtifact(outputs, arrays["lengths"], metadata, arrays.get("texts"))
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as error:
        raise RecordError(f"{source} cannot be read as {SCHEMA} ({error})") from None
    raise FastExitError(f"{source}: an interchange file is {' or '.join(FORMATS)}")


def from_arrays(
    logits: np.ndarray,
    labels: np.ndarray,
    *,
    dataset: str,
    split: str,
    recipe: str,
    backbone: str,
    costs: PartCosts,
    convention: str = "macs",
    task: str = "classification",
    metrics: tuple[str, ...] = ("accuracy",),
    seed: int = 0,
    exit_policy: str | None = "entropy",
    lengths: np.ndarray | None = None,
    exit_scores: np.ndarray | None = None,
) -> ExitArtifact:
    """An artefact from a plain ``[layers, examples, outputs]`` array of every exit's outputs and the labels;
    ``exit_policy``: the policy the model was trained to exit with (None: only its last exit was trained,
    so the leaderboard leaves it out)."""
    logits = np.asarray(logits, dtype=np.float32)
    if logits.ndim != 3:
        raise FastExitError(f"logits must be [layers, examples, outputs]; got shape {logits.shape}")
    labels = np.asarray(labels)
    if labels.shape != (logits.shape[1],):
        raise FastExitError(f"{len(labels)} labels for {logits.shape[1]} examples in the logits")
    layers, examples, outputs = logits.shape
    outputs_of = LayerOutputs(logits, task, exit_scores, labels)
    metadata = ArtifactMetadata(
        dataset=dataset,
        split=split,
        task=task,
        metrics=list(metrics),
        recipe=recipe,
        backbone=ResolvedBackbone(backbone, backbone, "imported"),
        seed=seed,
        architecture={"num_layers": layers, "num_outputs": outputs, "head": EXTERNAL},
        flops=costs.flops_record(convention),
        exit_policy=exit_policy,
        layer_metrics=outputs_of.layer_metrics(tuple(metrics)),
    )
    return ExitArtifact(
        outputs_of, np.asarray(lengths if lengths is not None else np.ones(examples)), metadata
    )
