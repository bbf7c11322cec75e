"""The training loop shared by every recipe.

AdamW with linear warmup per stage; parts a stage does not train are frozen (no gradients, eval
mode). After every epoch the dev set is scored at every exit and the best epoch's weights of the
trained part are kept ("best dev epoch of N"). Off-ramp stages over [CLS]-only heads train on
per-layer [CLS] features computed once. Checkpoints are written atomically; a rerun with the same
checkpoint path resumes and, on CPU with the same seed, ends with the same weights bit for bit:
data order and dropout seeds derive from (seed, stage, epoch), and mid-epoch checkpoints keep the
RNG state.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from fastexit_bench.errors import FastExitError
from fastexit_bench.analysis.artifact import predict
from fastexit_bench.io import atomic_path
from fastexit_bench.analysis.metrics import METRICS
from fastexit_bench.models.early_exit import EarlyExitModel
from fastexit_bench.runtime.batches import CachedClsFeatures, TokenBatches
from fastexit_bench.training.recipes import Recipe, Stage

log = logging.getLogger(__name__)


class TrainingError(FastExitError):
    """Training cannot go on (a NaN loss, or a checkpoint from another run)."""


@dataclass(frozen=True)
class TrainConfig:
    """Paper defaults: AdamW, lr 2e-5, 10% linear warmup, best dev epoch of 3.

    ``stage_lr`` sets the learning rate of named stages outright, e.g. ``(("offramps", 1e-3),)``
    (the recipe's ``lr_scale`` then does not apply); ``max_steps`` caps each stage (smoke runs); ``checkpoint_every`` adds mid-epoch checkpoints
    (every epoch end is always checkpointed); ``cache_features`` lets off-ramp stages over [CLS]-only
    heads reuse per-layer [CLS] features (memory: examples x layers x hidden floats).
    """

    lr: float = 2e-5
    epochs: int = 3
    batch_size: int = 32
    eval_batch_size: int = 128
    warmup: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    max_steps: int | None = None
    seed: int = 0
    checkpoint_every: int | None = None
    cache_features: bool = True
    stage_lr: tuple[tuple[str, float], ...] = ()

    def lr_of(self, stage: Stage) -> float:
        """The learning rate of ``stage``: its override, else ``lr`` times the recipe's scale."""
        return dict(self.stage_lr).get(stage.name, self.lr * stage.lr_scale)


@dataclass
class EpochLog:
    epoch: int
    steps: int
    train_loss: float
    seconds: float
    dev_metric: list[float] | None = None
    score: float | None = None


@dataclass
class StageLog:
    stage: str
    lr: float
    cached_features: bool = False
    epochs: list[EpochLog] = field(default_factory=list)
    best_epoch: int | None = None
    feature_seconds: float = 0.0


@dataclass
class DevSet:
    """The dev split and the metric that selects the best epoch (the dataset's first metric)."""

    source: TokenBatches
    task: str
    metric: str


def _derived_seed(*parts: int) -> int:
    return int.from_bytes(hashlib.sha256(json.dumps(parts).encode()).digest()[:8], "little") >> 1


def _trainable(modules: list[torch.nn.Module]) -> list[torch.nn.Parameter]:
    seen: dict[int, torch.nn.Parameter] = {}
    for module in modules:
        for p in module.parameters():
            seen.setdefault(id(p), p)
    return list(seen.values())


def _state_of(modules: list[torch.nn.Module]) -> list[dict[str, torch.Tensor]]:
    return [copy.deepcopy(m.state_dict()) for m in modules]


class Trainer:
    """Runs a recipe's stages on ``model``; see the module docstring for the guarantees."""

    def __init__(self, model: EarlyExitModel, recipe: Recipe, train_data: TokenBatches, dev: DevSet | None,
                 task: str, config: TrainConfig, checkpoint: Path | None = None):
        self.model, self.recipe, self.train_data, self.dev = model, recipe, train_data, dev
        self.task, self.config = task, config
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.fingerprint = json.dumps([recipe.name, asdict(config), len(train_data), model.num_layers,
                                       sorted(model.state_dict())], sort_keys=True)

    def run(self) -> list[StageLog]:
        """Train every stage (resuming from the checkpoint if there is one); return their logs."""
        resume = self._load_checkpoint()
        logs: list[StageLog] = resume["logs"] if resume else []
        for index, stage in enumerate(self.recipe.stages):
            if index < len(logs):
                continue
            current = resume if resume and resume["stage"] == index and "epoch" in resume else None
            logs.append(self._run_stage(index, stage, logs, current))
            self._save_checkpoint({"stage": index + 1, "logs": logs})
        return logs

    def _sources(self, stage: Stage) -> tuple[TokenBatches | CachedClsFeatures, Any, float]:
        cache = stage.trains == "offramps" and self.model.heads_read_cls_only and self.config.cache_features
        if not cache:
            return self.train_data, self.dev.source if self.dev else None, 0.0
        start = time.perf_counter()
        size = self.config.eval_batch_size
        train = CachedClsFeatures.extract(self.model, self.train_data, size)
        dev = CachedClsFeatures.extract(self.model, self.dev.source, size) if self.dev else None
        return train, dev, time.perf_counter() - start

    def _run_stage(self, index: int, stage: Stage, logs: list[StageLog], resume: dict | None) -> StageLog:
        config, model = self.config, self.model
        modules = stage.modules(model)
        model.requires_grad_(False)
        params = _trainable(modules)
        for p in params:
            p.requires_grad_(True)
        train, dev, feature_seconds = self._sources(stage)
        if stage.needs_labels and not train.has_labels:
            raise TrainingError(f"stage {stage.name!r} needs labels and the training data has none")
        optimizer = torch.optim.AdamW(params, lr=config.lr_of(stage), weight_decay=config.weight_decay)
        per_epoch = math.ceil(len(train) / config.batch_size)
        total = config.epochs * per_epoch if config.max_steps is None else min(config.epochs * per_epoch,
                                                                                config.max_steps)
        scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(config.warmup * total), total)
        history = StageLog(stage.name, lr=config.lr_of(stage), cached_features=isinstance(train, CachedClsFeatures),
                           feature_seconds=feature_seconds)
        best: dict | None = None
        epoch, first_batch, step, epoch_losses = 0, 0, 0, []
        if resume:
            optimizer.load_state_dict(resume["optimizer"])
            scheduler.load_state_dict(resume["scheduler"])
            history.epochs, best = resume["epochs"], resume["best"]
            epoch, first_batch, step, epoch_losses = (resume["epoch"], resume["batch"], resume["step"],
                                                      resume["epoch_losses"])
        def checkpoint(next_batch: int) -> None:
            self._save_checkpoint({
                "stage": index, "logs": logs, "epoch": epoch, "batch": next_batch, "step": step,
                "epoch_losses": epoch_losses, "epochs": history.epochs, "best": best,
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": self._get_rng()})

        progress = tqdm(total=total, initial=step, desc=f"{self.recipe.name}/{stage.name}", leave=False,
                        disable=None)
        while epoch < config.epochs and step < total:
            started = time.perf_counter()
            order = torch.randperm(len(train), generator=torch.Generator().manual_seed(
                _derived_seed(config.seed, index, epoch)))
            batches = order.split(config.batch_size)
            if first_batch == 0:
                torch.manual_seed(_derived_seed(config.seed, index, epoch, 1))
            else:
                self._set_rng(resume["rng"])
            model.eval()
            for module in modules:
                module.train()
            for position in range(first_batch, len(batches)):
                batch = train.batch(batches[position])
                loss = stage.loss_at(step)(train.exits(model, batch), batch.labels if stage.needs_labels else None,
                                           self.task)
                if not torch.isfinite(loss):
                    raise TrainingError(f"stage {stage.name!r}: loss is {loss.item()} at step {step}; "
                                        "lower the learning rate or check the labels")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                epoch_losses.append(loss.item())
                step += 1
                progress.update()
                progress.set_postfix(loss=f"{loss.item():.4f}")
                if step >= total:
                    break
                if config.checkpoint_every and step % config.checkpoint_every == 0 and position + 1 < len(batches):
                    checkpoint(position + 1)
            record = EpochLog(epoch + 1, len(epoch_losses), float(np.mean(epoch_losses)),
                              time.perf_counter() - started)
            if dev is not None:
                record.dev_metric, record.score = self._score(dev, stage)
            history.epochs.append(record)
            log.info("%s/%s epoch %d: loss %.4f%s", self.recipe.name, stage.name, record.epoch, record.train_loss,
                     f", dev {self.dev.metric} per layer {[round(m, 4) for m in record.dev_metric]}"
                     if dev is not None else "")
            if best is None or record.score is None or self._better(record.score, best["score"]):
                best = {"epoch": record.epoch, "score": record.score, "state": _state_of(modules)}
            epoch, first_batch, epoch_losses = epoch + 1, 0, []
            checkpoint(0)
        progress.close()
        for module, state in zip(modules, best["state"]):
            module.load_state_dict(state)
        history.best_epoch = best["epoch"]
        model.requires_grad_(True)
        model.eval()
        return history

    def _score(self, dev: TokenBatches | CachedClsFeatures, stage: Stage) -> tuple[list[float], float]:
        predictions = predict(self.model, dev, self.config.eval_batch_size)
        per_layer = [m[self.dev.metric] for m in predictions.layer_metrics(self.task, (self.dev.metric,))]
        selected = per_layer[stage.selection_exits(len(per_layer))]
        return per_layer, float(np.mean(selected))

    def _better(self, score: float, best: float | None) -> bool:
        if best is None:
            return True
        return score > best if METRICS.get(self.dev.metric).higher_is_better else score < best

    @staticmethod
    def _get_rng() -> dict:
        return {"cpu": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}

    @staticmethod
    def _set_rng(state: dict) -> None:
        torch.set_rng_state(state["cpu"])
        if state["cuda"] is not None:
            torch.cuda.set_rng_state_all(state["cuda"])

    def _save_checkpoint(self, state: dict) -> None:
        if self.checkpoint is None:
            return
        payload = {"fingerprint": self.fingerprint, "model": self.model.state_dict(), **state}
        with atomic_path(self.checkpoint) as tmp:
            torch.save(payload, tmp)

    def _load_checkpoint(self) -> dict | None:
        if self.checkpoint is None or not self.checkpoint.is_file():
            return None
        state = torch.load(self.checkpoint, map_location="cpu", weights_only=False)
        if state.get("fingerprint") != self.fingerprint:
            raise TrainingError(f"checkpoint {self.checkpoint} was written by a different run (recipe, settings or "
                                "data differ); delete it to start over, or write to another output folder")
        self.model.load_state_dict(state["model"])
        log.info("resuming from %s (stage %d)", self.checkpoint, state["stage"])
        return state
