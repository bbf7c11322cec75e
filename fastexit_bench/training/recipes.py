"""Training recipes as data: which head type, and which stages (trainable part, loss, learning rate)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from torch import Tensor, nn

from fastexit_bench.model.early_exit import AllExitsOutput, EarlyExitModel
from fastexit_bench.registry import Registry
from fastexit_bench.training.losses import (
    deebert_offramp_loss,
    fastbert_distillation_loss,
    pabee_loss,
    per_exit_task_loss,
)

LossFn = Callable[[AllExitsOutput, Tensor, str], Tensor]


def final_exit_loss(out: AllExitsOutput, labels: Tensor, task: str) -> Tensor:
    """Fine-tuning loss of the last exit only (the BERT baseline, stage 1 of DeeBERT and FastBERT)."""
    return per_exit_task_loss(out.logits[-1:], labels, task)[0]


@dataclass(frozen=True)
class Stage:
    """One training stage.

    Attributes:
        trains: "all" parameters, the backbone plus the "final" head, or only the "offramps" (heads 1..L-1).
        loss: ``loss(outputs, labels, task)``.
        lr_scale: multiplies the recipe's learning rate (FastBERT distils at 10x).
        needs_labels: False when the stage learns from the model itself (self-distillation).
    """

    name: str
    trains: Literal["all", "final", "offramps"]
    loss: LossFn
    lr_scale: float = 1.0
    needs_labels: bool = True

    def parameters(self, model: EarlyExitModel) -> Iterator[nn.Parameter]:
        """The parameters this stage updates; every other parameter is frozen."""
        if self.trains == "all":
            yield from model.parameters()
        elif self.trains == "final":
            for module in (model.embeddings, model.layers, model.heads[-1]):
                yield from module.parameters()
        else:
            for head in model.heads[:-1]:
                yield from head.parameters()


@dataclass(frozen=True)
class Recipe:
    name: str
    head: str
    stages: tuple[Stage, ...]
    paper: str


RECIPES: Registry[Recipe] = Registry("recipe")
FINETUNE = Stage("finetune", "final", final_exit_loss)
for _recipe in (
    Recipe("baseline", "highway", (FINETUNE,), "BERT fine-tuning (Devlin et al., 2019)"),
    Recipe(
        "deebert", "highway",
        (FINETUNE, Stage("offramps", "offramps", lambda o, y, t: deebert_offramp_loss(per_exit_task_loss(o.logits, y, t)))),
        "DeeBERT (Xin et al., 2020): two-stage training",
    ),
    Recipe(
        "fastbert", "branch",
        (FINETUNE, Stage("self-distillation", "offramps", lambda o, y, t: fastbert_distillation_loss(o.logits, t),
                         lr_scale=10.0, needs_labels=False)),
        "FastBERT (Liu et al., 2020): fine-tune backbone + teacher, then self-distil the students",
    ),
    Recipe(
        "pabee", "highway",
        (Stage("joint", "all", lambda o, y, t: pabee_loss(per_exit_task_loss(o.logits, y, t))),),
        "PABEE (Zhou et al., 2020): joint training with depth-weighted losses",
    ),
):
    RECIPES.register(_recipe.name, _recipe)
