"""Training settings and their defaults, importable without torch (the CLI and the workflow read them)."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastexit_bench.execution import ExecutionConfig
from fastexit_bench.training.recipes import Stage


@dataclass(frozen=True)
class TrainConfig:
    """The one owner of the training defaults (paper defaults: AdamW, lr 2e-5, 10% linear warmup, best dev
    epoch of 3); the CLI and the workflow schema read them from here.

    ``stage_lr`` sets the learning rate of named stages outright, e.g. ``(("offramps", 1e-3),)``
    (the recipe's ``lr_scale`` then does not apply); ``max_steps`` caps each stage (smoke runs); ``checkpoint_every`` adds mid-epoch checkpoints
    (every epoch end is always checkpointed); ``cache_features`` lets off-ramp stages over [CLS]-only
    heads reuse per-layer [CLS] features (memory: examples x layers x hidden floats); ``group_by_length``
    draws batches of similar length (less padding; the order stays a function of seed, stage and epoch);
    ``execution`` is the requested precision and attention (``auto``: see ``fastexit_bench.execution``).
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
    group_by_length: bool = True
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)

    def lr_of(self, stage: Stage) -> float:
        """The learning rate of ``stage``: its override, else ``lr`` times the recipe's scale."""
        return dict(self.stage_lr).get(stage.name, self.lr * stage.lr_scale)
