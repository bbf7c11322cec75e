"""The training loop shared by every recipe: AdamW, linear warmup, per-stage frozen parts."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from fastexit_bench.errors import FastExitError
from fastexit_bench.model.early_exit import EarlyExitModel
from fastexit_bench.training.recipes import Recipe, Stage

log = logging.getLogger(__name__)


class TrainingError(FastExitError):
    """Training cannot go on (a NaN or infinite loss)."""


@dataclass(frozen=True)
class TrainConfig:
    """Paper defaults: AdamW, lr 2e-5, 10% linear warmup; ``max_steps`` caps each stage (smoke runs)."""

    lr: float = 2e-5
    epochs: int = 3
    warmup: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    max_steps: int | None = None


@dataclass
class StageLog:
    stage: str
    losses: list[float] = field(default_factory=list)


def _set_trainable(model: EarlyExitModel, stage: Stage) -> list[torch.nn.Parameter]:
    model.requires_grad_(False)
    params = list(stage.parameters(model))
    for p in params:
        p.requires_grad_(True)
    return params


def train_stage(model: EarlyExitModel, stage: Stage, loader: DataLoader, task: str, config: TrainConfig) -> StageLog:
    """Run one stage; only ``stage``'s parameters change."""
    params = _set_trainable(model, stage)
    optimizer = torch.optim.AdamW(params, lr=config.lr * stage.lr_scale, weight_decay=config.weight_decay)
    total = config.epochs * len(loader)
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(config.warmup * total), total)
    history = StageLog(stage.name)
    model.train()
    progress = tqdm(total=total, desc=stage.name, leave=False)
    step = 0
    while step < total:
        for batch in loader:
            out = model.forward_all(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
            loss = stage.loss(out, batch["labels"] if stage.needs_labels else None, task)
            if not torch.isfinite(loss):
                raise TrainingError(f"stage {stage.name!r}: loss is {loss.item()} at step {step}; "
                                    "lower the learning rate or check the labels")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            history.losses.append(loss.item())
            step += 1
            progress.update()
            if step >= total:
                break
    progress.close()
    model.eval()
    log.info("stage %s: %d steps, final loss %.4f", stage.name, step, history.losses[-1])
    return history


def train(model: EarlyExitModel, recipe: Recipe, loader: DataLoader, task: str, config: TrainConfig) -> list[StageLog]:
    """All stages of ``recipe`` in order."""
    return [train_stage(model, stage, loader, task, config) for stage in recipe.stages]
