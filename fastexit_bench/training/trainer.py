"""The training loop shared by every recipe.

AdamW with linear warmup per stage, at the run's precision and attention implementation
(``fastexit_bench.execution``: bf16/fp16 autocast with fp32 master weights and fp32 heads, a gradient
scaler for fp16), on batches grouped by length; parts a stage does not train are frozen (no gradients; eval
mode, or train mode with dropout as the papers' code runs them: ``TrainConfig.frozen``). After every epoch
the dev set is scored at every exit and the trained part's weights of the best epoch (or of the last,
``keep``) are kept. Off-ramp stages over [CLS]-only heads with eval-mode frozen parts train on per-layer
[CLS] features computed once. A distilling stage (``Stage.distils``) turns the model trained so far into a
frozen teacher and trains a student copied from its layers: ``Trainer.model`` is then the student.
Checkpoints hold plain types and tensors (loaded with ``weights_only=True``) and are written atomically; a rerun
with the same checkpoint path resumes and, on CPU with the same seed, ends with the same weights bit for bit:
data order and dropout seeds derive from (seed, stage, epoch), and mid-epoch checkpoints keep the
RNG state.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import pickle
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from fastexit_bench.analysis.policies import resolve_policy
from fastexit_bench.errors import Interrupted, TrainingError
from fastexit_bench.execution import grad_scaler, resolve, running
from fastexit_bench.io import atomic_path
from fastexit_bench.metrics import direction
from fastexit_bench.models.early_exit import EarlyExitModel
from fastexit_bench.models.vocabulary import (
    TrimmedEmbedding,
    data_token_ids,
    restore_vocabulary,
    trim_vocabulary,
)
from fastexit_bench.progress import ProgressLog
from fastexit_bench.runtime.batches import CachedPooledFeatures, TokenBatches, length_grouped_order
from fastexit_bench.runtime.predict import predict
from fastexit_bench.training.config import ADAMW_IMPLEMENTATIONS, TrainConfig
from fastexit_bench.training.losses import FINAL_EXIT_ONLY, LOSSES
from fastexit_bench.training.recipes import Recipe, Stage, student_layer_indices

log = logging.getLogger(__name__)


CONFIDENT_SPEED = (
    0.5  # FastBERT's headline speed: a teacher that is rarely this certain leaves students nothing
)
CONFIDENT_SHARE = f"share_under_speed_{CONFIDENT_SPEED}"  # the confidence record's key for that share


@dataclass
class EpochLog:
    """One epoch: its steps, mean loss, time, the dev metric at every exit and the selection score, and
    ``confidence``, how sure the final exit is on dev (classification): its mean top probability and the share
    of dev examples whose normalized entropy is under FastBERT's speed 0.5. A FastBERT teacher that is rarely
    confident distils students that rarely exit early."""

    epoch: int
    steps: int
    train_loss: float
    seconds: float
    dev_metric: list[float] | None = None
    score: float | None = None
    confidence: dict[str, float] | None = None


@dataclass
class StageLog:
    stage: str
    lr: float
    cached_features: bool = False
    epochs: list[EpochLog] = field(default_factory=list)
    best_epoch: int | None = None
    feature_seconds: float = 0.0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StageLog:
        return _with_epochs(cls, data)


@dataclass
class DevSet:
    """The dev split and the metric that selects the best epoch (the dataset's first metric)."""

    source: TokenBatches
    task: str
    metric: str


def _derived_seed(*parts: int) -> int:
    return int.from_bytes(hashlib.sha256(json.dumps(parts).encode()).digest()[:8], "little") >> 1


def _weights_hash(model: torch.nn.Module) -> str:
    """sha256 of the starting weights, names and shapes included: the backbone's identity (and the seeded
    heads'), so a checkpoint is never resumed over another backbone."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(tensor.detach().reshape(-1).contiguous().view(torch.uint8).cpu().numpy().tobytes())
    return digest.hexdigest()


def _trainable(modules: list[torch.nn.Module]) -> list[torch.nn.Parameter]:
    seen: dict[int, torch.nn.Parameter] = {}
    for module in modules:
        for p in module.parameters():
            seen.setdefault(id(p), p)
    return list(seen.values())


def _state_of(modules: list[torch.nn.Module]) -> list[dict[str, torch.Tensor]]:
    return [copy.deepcopy(m.state_dict()) for m in modules]


def epoch_order(
    lengths: np.ndarray | None, size: int, config: TrainConfig, stage: int, epoch: int
) -> torch.Tensor:
    """The order of an epoch's examples, a function of (seed, stage, epoch) only: grouped by length when asked
    and lengths are known, else a random permutation."""
    generator = torch.Generator().manual_seed(_derived_seed(config.seed, stage, epoch))
    if config.group_by_length and lengths is not None:
        return length_grouped_order(lengths, config.batch_size, generator)
    return torch.randperm(size, generator=generator)


@dataclass
class StageState:
    """Where a stage is: what a mid-stage checkpoint saves and a resumed run continues from.

    Attributes:
        index: the stage's position in the recipe.
        epoch / next_batch / step: the epoch under way (0-based), its next batch, optimizer steps so far.
        epoch_losses: training losses of the epoch under way.
        epochs: the finished epochs' logs.
        best: the best epoch so far: ``{"epoch", "score", "state"}`` (weights of the trained modules).
        rng: torch's RNG state at ``next_batch`` (mid-epoch resume), else None.
    """

    index: int
    epoch: int = 0
    next_batch: int = 0
    step: int = 0
    epoch_losses: list[float] = field(default_factory=list)
    epochs: list[EpochLog] = field(default_factory=list)
    best: dict[str, Any] | None = None
    rng: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StageState:
        return _with_epochs(cls, data)


def _with_epochs(cls: type, data: dict[str, Any]) -> Any:
    """A stage log or state from its checkpointed dict, its ``epochs`` back as :class:`EpochLog`."""
    return cls(**{**data, "epochs": [EpochLog(**e) for e in data["epochs"]]})


def _plain(record: StageLog | StageState) -> dict[str, Any]:
    """A stage log or state as a checkpoint stores it; shallow, so the kept weights are not copied."""
    return {**vars(record), "epochs": [asdict(e) for e in record.epochs]}


@dataclass
class StageRun:
    """The live objects of one stage: what it trains, on which data, with which optimizer."""

    stage: Stage
    modules: list[torch.nn.Module]
    params: list[torch.nn.Parameter]
    train: TokenBatches | CachedPooledFeatures
    dev: TokenBatches | CachedPooledFeatures | None
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    total_steps: int
    log: StageLog


class Trainer:
    """Runs a recipe's stages on ``model``; see the module docstring for the guarantees."""

    def __init__(
        self,
        model: EarlyExitModel,
        recipe: Recipe,
        train_data: TokenBatches,
        dev: DevSet | None,
        task: str,
        config: TrainConfig,
        checkpoint: Path | None = None,
        finished: list[StageLog] | None = None,
    ):
        self.model, self.recipe, self.train_data, self.dev = model, recipe, train_data, dev
        self.finished = list(finished or [])  # logs of first stages whose result ``model`` already holds
        self.task, self.config = task, config
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.saved_at: str | None = None  # what the last checkpoint written holds, for an interrupt's message
        self.teacher: EarlyExitModel | None = None  # while a distilling stage runs
        if task == "regression" and not self.finished:  # heads of a finished first stage are trained already
            model.start_outputs_at(train_data.label_mean())
        self.device = next(model.parameters()).device
        self.execution = resolve(config.execution, self.device)
        self.fingerprint = json.dumps(
            [
                recipe.name,
                asdict(config),
                self.execution.to_dict(),
                model.num_layers,
                _weights_hash(model),
                train_data.content_hash(),
                dev.source.content_hash() if dev else None,
                [log.stage for log in self.finished],
            ],
            sort_keys=True,
        )

    def run(self) -> list[StageLog]:
        """Train every stage (resuming from the checkpoint if there is one); return their logs."""
        given = self.model  # a distilling recipe's teacher once ``self.model`` is the student
        if self.config.vocabulary == "trimmed":
            sources = [self.train_data] + ([self.dev.source] if self.dev else [])
            trim_vocabulary(
                given.embeddings,
                data_token_ids(
                    [s.token_ids() for s in sources], given.embeddings.word_embeddings.padding_idx
                ),
            )
        try:
            with running(self.model.config, self.execution, self.device):
                return self._run_stages()
        except KeyboardInterrupt:
            kept = (
                f"its checkpoint {self.checkpoint} holds {self.saved_at or 'what an earlier run saved'}; run "
                "the same command again to resume from there"
                if self.checkpoint is not None and self.checkpoint.is_file()
                else "no checkpoint was written yet; run the same command again to start over"
            )
            raise Interrupted(f"training stopped by an interrupt; {kept}") from None
        finally:
            for model in {id(m): m for m in (given, self.model)}.values():
                restore_vocabulary(model.embeddings)

    def _run_stages(self) -> list[StageLog]:
        resume = self._load_checkpoint()
        logs = [StageLog.from_dict(log) for log in resume["logs"]] if resume else list(self.finished)
        for index, stage in enumerate(self.recipe.stages):
            if index < len(logs):
                continue
            mid_stage = resume is not None and resume["stage"] == index and "state" in resume
            state = StageState.from_dict(resume["state"]) if mid_stage else StageState(index)
            logs.append(self._run_stage(stage, state, logs, resume if mid_stage else None))
            self._save_checkpoint({"stage": index + 1, "logs": logs})
        return logs

    def _sources(self, stage: Stage) -> tuple[TokenBatches | CachedPooledFeatures, Any, float]:
        if not self.config.caches_features(stage, self.model.exits_read_pooled_only):
            return self.train_data, self.dev.source if self.dev else None, 0.0
        start = time.perf_counter()
        size = self.config.eval_batch_size
        train = CachedPooledFeatures.extract(self.model, self.train_data, size)
        dev = CachedPooledFeatures.extract(self.model, self.dev.source, size) if self.dev else None
        return train, dev, time.perf_counter() - start

    def _start_stage(self, stage: Stage, resume: dict | None) -> StageRun:
        """Freeze everything but the stage's modules, build its data sources, optimizer and schedule."""
        if stage.distils and self.teacher is None:
            self._become_student()
        config, model = self.config, self.model
        modules = stage.modules(model)
        model.requires_grad_(False)
        params = _trainable(modules)
        for p in params:
            p.requires_grad_(True)
        train, dev, feature_seconds = self._sources(stage)
        if stage.needs_labels and not train.has_labels:
            raise TrainingError(f"stage {stage.name!r} needs labels and the training data has none")
        settings = config.of(stage)
        optimizer = torch.optim.AdamW(
            params, lr=settings.lr, weight_decay=config.weight_decay, **ADAMW_IMPLEMENTATIONS[config.adamw]
        )
        per_epoch = math.ceil(len(train) / config.batch_size)
        total = (
            settings.epochs * per_epoch
            if config.max_steps is None
            else min(settings.epochs * per_epoch, config.max_steps)
        )
        schedule = round(total * settings.schedule_epochs / settings.epochs)  # past its end the rate stays 0
        scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(config.warmup * schedule), schedule)
        scaler = grad_scaler(self.execution.precision, self.device)
        if resume:
            optimizer.load_state_dict(resume["optimizer"])
            scheduler.load_state_dict(resume["scheduler"])
            scaler.load_state_dict(resume["scaler"])
        log = StageLog(
            stage.name,
            lr=settings.lr,
            cached_features=isinstance(train, CachedPooledFeatures),
            feature_seconds=feature_seconds,
        )
        return StageRun(stage, modules, params, train, dev, optimizer, scheduler, scaler, total, log)

    def _run_stage(
        self, stage: Stage, state: StageState, logs: list[StageLog], resume: dict | None
    ) -> StageLog:
        run = self._start_stage(stage, resume)
        run.log.epochs = state.epochs
        progress = tqdm(
            total=run.total_steps,
            initial=state.step,
            desc=f"{self.recipe.name}/{stage.name}",
            leave=False,
            disable=None,
        )
        lines = ProgressLog(log, f"{self.recipe.name}/{stage.name}", run.total_steps, done=state.step)
        while state.epoch < self.config.of(stage).epochs and state.step < run.total_steps:
            started = time.perf_counter()
            self._train_epoch(run, state, logs, progress, lines)
            self._end_epoch(run, state, time.perf_counter() - started)
            self._save_checkpoint(self._payload(run, state, logs))
        progress.close()
        for module, weights in zip(run.modules, state.best["state"]):
            module.load_state_dict(weights)
        run.log.best_epoch = state.best["epoch"]
        self.teacher = None
        self.model.requires_grad_(True)
        self.model.eval()
        return run.log

    def _epoch_batches(self, run: StageRun, state: StageState) -> tuple[torch.Tensor, ...]:
        """The epoch's batches (:func:`epoch_order`); seeds dropout, or restores the RNG mid-epoch."""
        order = epoch_order(run.train.lengths(), len(run.train), self.config, state.index, state.epoch)
        if state.next_batch == 0:
            torch.manual_seed(_derived_seed(self.config.seed, state.index, state.epoch, 1))
        else:
            self._set_rng(state.rng)
        return order.split(self.config.batch_size)

    def _train_epoch(
        self, run: StageRun, state: StageState, logs: list[StageLog], progress: tqdm, lines: ProgressLog
    ) -> None:
        """Optimizer steps from ``state.next_batch`` to the epoch's end (or the step cap): a progress bar in a
        terminal, a progress line in the log every minute otherwise."""
        batches = self._epoch_batches(run, state)
        self.model.train(
            self.config.frozen == "train"
        )  # frozen parts: dropout on as in the papers' code, or off
        for module in run.modules:
            module.train()
        objective = [LOSSES.get(name) for name in run.stage.losses]
        last_only = self._last_exit_only(run.stage)
        for position in range(state.next_batch, len(batches)):
            batch = run.train.batch(batches[position])
            labels = batch.labels if run.stage.needs_labels else None
            teacher = {"teacher": self._teacher_logits(batch)} if run.stage.distils else {}
            exits = run.train.exits(self.model, batch, last_only)
            loss = objective[state.step % len(objective)](exits, labels, self.task, **teacher)
            self._step(run, loss, state.step)
            state.epoch_losses.append(loss.item())
            state.step += 1
            progress.update()
            progress.set_postfix(loss=f"{loss.item():.4f}")
            if progress.disable:
                lines.update(len(batches[position]), f"epoch {state.epoch + 1}, loss {loss.item():.4f}")
            if state.step >= run.total_steps:
                return
            every = self.config.checkpoint_every
            if every and state.step % every == 0 and position + 1 < len(batches):
                state.next_batch, state.rng = position + 1, self._get_rng()
                self._save_checkpoint(self._payload(run, state, logs))

    def _last_exit_only(self, stage: Stage) -> bool:
        """Whether training steps may run the last head alone: the stage's losses read nothing else, and the
        other heads are frozen in eval mode, so skipping them draws no dropout and changes no number (FastBERT's
        branch heads are attention layers: a visible share of a fine-tuning step)."""
        return self.config.frozen == "eval" and all(name in FINAL_EXIT_ONLY for name in stage.losses)

    def _become_student(self) -> None:
        """The model so far becomes the frozen teacher; ``self.model`` a student copied from its layers."""
        teacher = self.model
        self.model = teacher.student(student_layer_indices(teacher.num_layers, self.recipe.student_layers))
        self.teacher = teacher.requires_grad_(False).eval()

    def _teacher_logits(self, batch) -> torch.Tensor:
        with torch.no_grad():
            return self.teacher.final_logits(**batch.inputs)

    def _step(self, run: StageRun, loss: torch.Tensor, step: int) -> None:
        """One optimizer step. Non-finite gradients stop training before they reach the weights (under fp16 the
        scaler skips such a step instead); the weights are checked after the step through their total norm,
        one pass over them."""
        if not torch.isfinite(loss):
            raise TrainingError(
                f"stage {run.stage.name!r}: loss is {loss.item()} at step {step}; "
                "lower the learning rate or check the labels"
            )
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        run.scaler.unscale_(run.optimizer)
        norm = torch.nn.utils.clip_grad_norm_(run.params, self.config.max_grad_norm)
        if not run.scaler.is_enabled() and not torch.isfinite(norm):
            raise TrainingError(
                f"stage {run.stage.name!r}: gradients are not finite at step {step}; "
                "lower the learning rate or check the inputs"
            )
        scale, lr = run.scaler.get_scale(), run.optimizer.param_groups[0]["lr"]
        run.scaler.step(run.optimizer)
        run.scaler.update()
        run.scheduler.step()
        stepped = (
            not run.scaler.is_enabled() or run.scaler.get_scale() >= scale
        )  # fp16: a lowered scale = skipped
        embedding = self.model.embeddings.word_embeddings
        if stepped and isinstance(embedding, TrimmedEmbedding) and embedding.weight.requires_grad:
            embedding.decay_untouched(lr, self.config.weight_decay)
        if not torch.isfinite(torch.nn.utils.get_total_norm(run.params)):
            raise TrainingError(
                f"stage {run.stage.name!r}: weights are not finite after step {step}; lower the learning rate"
            )

    def _end_epoch(self, run: StageRun, state: StageState, seconds: float) -> None:
        """Log the epoch, score it on dev, keep the best weights, and move to the next epoch."""
        record = EpochLog(
            state.epoch + 1, len(state.epoch_losses), float(np.mean(state.epoch_losses)), seconds
        )
        if run.dev is not None:
            record.dev_metric, record.score, record.confidence = self._score(run.dev, run.stage)
        state.epochs.append(record)
        examples = min(len(run.train), record.steps * self.config.batch_size)
        log.info(
            "%s/%s epoch %d (%.0f s, %.1f examples/s): loss %.4f%s%s",
            self.recipe.name,
            run.stage.name,
            record.epoch,
            seconds,
            examples / seconds,
            record.train_loss,
            f", dev {self.dev.metric} per layer {[round(m, 4) for m in record.dev_metric]}"
            if run.dev is not None
            else "",
            f"; final exit on dev: mean top probability {record.confidence['mean_top_probability']:.3f}, "
            f"{record.confidence[CONFIDENT_SHARE]:.1%} of examples under speed {CONFIDENT_SPEED}"
            if record.confidence
            else "",
        )
        last = self.config.of(run.stage).keep == "last"
        if (
            last
            or state.best is None
            or record.score is None
            or self._better(record.score, state.best["score"])
        ):
            state.best = {"epoch": record.epoch, "score": record.score, "state": _state_of(run.modules)}
        state.epoch, state.next_batch, state.epoch_losses, state.rng = state.epoch + 1, 0, [], None

    def _payload(self, run: StageRun, state: StageState, logs: list[StageLog]) -> dict[str, Any]:
        return {
            "stage": state.index,
            "logs": logs,
            "step": state.step,
            "state": state,
            "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict(),
            "scaler": run.scaler.state_dict(),
            "teacher": self.teacher.state_dict() if self.teacher is not None else None,
        }

    def _score(
        self, dev: TokenBatches | CachedPooledFeatures, stage: Stage
    ) -> tuple[list[float], float, dict[str, float] | None]:
        predictions = predict(self.model, dev, self.task, self.config.eval_batch_size, what="dev")
        per_layer = [m[self.dev.metric] for m in predictions.layer_metrics((self.dev.metric,))]
        selected = per_layer[stage.selection_exits(len(per_layer))]
        confidence = None
        if self.task != "regression":
            uncertainty = resolve_policy("speed").signal(predictions)[-1]
            confidence = {
                "mean_top_probability": float(predictions.probabilities()[-1].max(-1).mean()),
                CONFIDENT_SHARE: float((uncertainty < CONFIDENT_SPEED).mean()),
            }
        return per_layer, float(np.mean(selected)), confidence

    def _better(self, score: float, best: float | None) -> bool:
        return best is None or direction(self.dev.metric) * (score - best) > 0

    @staticmethod
    def _get_rng() -> dict:
        return {
            "cpu": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        }

    @staticmethod
    def _set_rng(state: dict) -> None:
        torch.set_rng_state(state["cpu"])
        if state["cuda"] is not None:
            torch.cuda.set_rng_state_all(state["cuda"])

    def _save_checkpoint(self, state: dict) -> None:
        if self.checkpoint is None:
            return
        # plain types and tensors only, so that loading never unpickles code (torch.load weights_only=True)
        payload = {
            "fingerprint": self.fingerprint,
            "model": self.model.state_dict(),
            **state,
            "logs": [_plain(log) for log in state["logs"]],
        }
        if "state" in state:
            payload["state"] = _plain(state["state"])
        with atomic_path(self.checkpoint) as tmp:
            torch.save(payload, tmp)
        where = state.get("state")
        self.saved_at = (
            f"stage {where.index + 1} at epoch {where.epoch + 1}, step {where.step}"
            if isinstance(where, StageState)
            else f"{state['stage']} finished stage(s)"
        )

    def _load_checkpoint(self) -> dict | None:
        if self.checkpoint is None or not self.checkpoint.is_file():
            return None
        try:
            state = torch.load(self.checkpoint, map_location="cpu", weights_only=True)
        except (
            EOFError,
            OSError,
            RuntimeError,
            ValueError,
            pickle.UnpicklingError,
        ) as error:  # corrupt or foreign
            raise TrainingError(
                f"checkpoint {self.checkpoint} cannot be read ({type(error).__name__}); delete it to "
                "start over, or write to another output folder"
            ) from None
        if state.get("fingerprint") != self.fingerprint:
            raise TrainingError(
                f"checkpoint {self.checkpoint} was written by a different run (recipe, settings or "
                "data differ); delete it to start over, or write to another output folder"
            )
        begun = self.recipe.stages[: state["stage"] + ("state" in state)]
        if any(stage.distils for stage in begun):
            self._become_student()
            if state.get("teacher") is not None:  # mid-stage: the teacher is still needed
                self.teacher.load_state_dict(state["teacher"])
            else:
                self.teacher = None
        self.model.load_state_dict(state["model"])
        log.info("resuming from %s (stage %d)", self.checkpoint, state["stage"])
        return state
