"""Training settings and their defaults, importable without torch (the CLI and the workflow read them)."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastexit_bench.errors import FastExitError
from fastexit_bench.execution import ExecutionConfig
from fastexit_bench.runtime.config import EVAL_BATCH_SIZE
from fastexit_bench.training.recipes import Stage

KEEPS = ("best", "last")
FROZEN_MODES = ("eval", "train")
VOCABULARIES = ("trimmed", "full")
ADAMW_IMPLEMENTATIONS = {  # torch.optim.AdamW's keywords for each: one kernel, per-list ops, per tensor
    "fused": {"fused": True},
    "foreach": {"foreach": True},
    "for-loop": {"foreach": False},
}


@dataclass(frozen=True)
class StageSettings:
    """Settings of one named stage that differ from the run's (None: the run's setting).

    ``lr`` replaces the run's rate times the recipe's ``lr_scale``; ``keep`` is the epoch a stage ends with
    (``best`` on dev, or ``last``); ``schedule_epochs`` is the length, in epochs, of the linear decay
    schedule when it differs from the stage's (FastBERT distils for 5 epochs on the 3-epoch fine-tuning
    schedule, so the rate reaches 0 after 3)."""

    lr: float | None = None
    epochs: int | None = None
    keep: str | None = None
    schedule_epochs: int | None = None

    def __post_init__(self) -> None:
        if self.keep is not None and self.keep not in KEEPS:
            raise FastExitError(f"stage keep {self.keep!r} is not one of {', '.join(KEEPS)}")


@dataclass(frozen=True)
class TrainConfig:
    """The one owner of the training defaults (AdamW, lr 2e-5, 10% linear warmup, best dev epoch of 3); the
    CLI and the workflow schema read them from here. Each paper's own settings are a preset
    (``training.presets``).

    ``stages`` overrides named stages, e.g. ``(("offramps", StageSettings(lr=1e-3)),)``; ``keep`` is the
    epoch each stage ends with (``best`` on dev, ``last``); ``frozen`` is the mode of the parts a stage does
    not train: ``eval`` (no dropout; lets off-ramp stages over pooling heads reuse cached features when
    ``cache_features``) or ``train`` (dropout on, as the papers' code runs them); ``max_steps`` caps each
    stage (smoke runs); ``checkpoint_every`` adds mid-epoch checkpoints (every epoch end is always
    checkpointed); ``group_by_length`` draws batches of similar length (less padding; the order stays a
    function of seed, stage and epoch); ``execution`` is the requested precision and attention (``auto``:
    see ``fastexit_bench.execution``). Two settings make training cheaper without changing what it computes
    (docs/training_cost.md): ``vocabulary="trimmed"`` trains only the word-embedding rows of the token ids in the
    train and dev data (``models.vocabulary``; the saved model has the full table back); ``adamw`` is torch's
    AdamW implementation (``fused``: one kernel for all tensors; ``for-loop``: per tensor, torch's choice on a
    CPU; they agree to float rounding).
    """

    lr: float = 2e-5
    epochs: int = 3
    batch_size: int = 32
    eval_batch_size: int = EVAL_BATCH_SIZE
    warmup: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    max_steps: int | None = None
    seed: int = 0
    checkpoint_every: int | None = None
    cache_features: bool = True
    stages: tuple[tuple[str, StageSettings], ...] = ()
    keep: str = "best"
    frozen: str = "eval"
    group_by_length: bool = True
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    vocabulary: str = "trimmed"
    adamw: str = "fused"

    def __post_init__(self) -> None:
        if self.keep not in KEEPS:
            raise FastExitError(f"keep {self.keep!r} is not one of {', '.join(KEEPS)}")
        if self.frozen not in FROZEN_MODES:
            raise FastExitError(f"frozen {self.frozen!r} is not one of {', '.join(FROZEN_MODES)}")
        if self.vocabulary not in VOCABULARIES:
            raise FastExitError(f"vocabulary {self.vocabulary!r} is not one of {', '.join(VOCABULARIES)}")
        if self.adamw not in ADAMW_IMPLEMENTATIONS:
            raise FastExitError(f"adamw {self.adamw!r} is not one of {', '.join(ADAMW_IMPLEMENTATIONS)}")
        stages = tuple(
            (name, s if isinstance(s, StageSettings) else StageSettings(**s)) for name, s in self.stages
        )
        object.__setattr__(self, "stages", stages)

    def caches_features(self, stage: Stage, exits_read_pooled_only: bool) -> bool:
        """Whether ``stage`` trains on per-layer pooled features computed once: an off-ramp stage over heads that
        read only a pooled vector, with eval-mode frozen parts (dropout would change the features every epoch)."""
        return (
            stage.trains == "offramps"
            and exits_read_pooled_only
            and self.cache_features
            and self.frozen == "eval"
        )

    def of(self, stage: Stage) -> StageSettings:
        """Every setting of ``stage`` resolved: its overrides, else the run's (lr times the recipe's scale)."""
        own = dict(self.stages).get(stage.name, StageSettings())
        epochs = own.epochs if own.epochs is not None else self.epochs
        return StageSettings(
            lr=own.lr if own.lr is not None else self.lr * stage.lr_scale,
            epochs=epochs,
            keep=own.keep or self.keep,
            schedule_epochs=own.schedule_epochs if own.schedule_epochs is not None else epochs,
        )
