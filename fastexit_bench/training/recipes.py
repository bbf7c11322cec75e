"""Training recipes as data: which head type, how many layers, and which stages (trained part, named
objectives from :data:`fastexit_bench.training.losses.LOSSES`, lr). Importing this module needs no torch."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from fastexit_bench.errors import UnknownNameError
from fastexit_bench.registry import Registry

if TYPE_CHECKING:  # recipes are data: reading them (the workflow, reports) must not import torch
    from torch import nn

    from fastexit_bench.models.early_exit import EarlyExitModel
    from fastexit_bench.models.saved import ModelSpec


@dataclass(frozen=True)
class Stage:
    """One training stage.

    Attributes:
        trains: "all" parameters, the backbone plus the "final" head, or only the "offramps" (heads 1..L-1).
            Parts a stage does not train are frozen; ``TrainConfig.frozen`` says whether they run in eval
            mode (a fixed feature extractor, which lets off-ramp stages reuse cached features) or in train
            mode with dropout, as the papers' code runs them.
        losses: names of the objectives in ``training.losses.LOSSES``, one per step, cycled (BERxiT
            alternates two).
        lr_scale: multiplies the recipe's learning rate (FastBERT distils at 10x).
        needs_labels: False when the stage learns from the model itself (self-distillation).
    """

    name: str
    trains: Literal["all", "final", "offramps"]
    losses: tuple[str, ...]
    lr_scale: float = 1.0
    needs_labels: bool = True

    def loss_at(self, step: int) -> str:
        """The name of the objective of training step ``step`` (0-based) within this stage."""
        return self.losses[step % len(self.losses)]

    def modules(self, model: EarlyExitModel) -> list[nn.Module]:
        """The modules this stage updates; every other parameter is frozen."""
        if self.trains == "all":
            return [model]
        if self.trains == "final":
            return [*model.encoder_modules, model.heads[-1]]
        return [model.heads[:-1]]

    def selection_exits(self, num_layers: int) -> slice:
        """Exits whose mean dev metric picks this stage's best epoch: the ones it trains."""
        return {"all": slice(None), "final": slice(num_layers - 1, None), "offramps": slice(None, num_layers - 1)}[
            self.trains]


@dataclass(frozen=True)
class Recipe:
    """A named training procedure; ``num_layers`` truncates the backbone, ``learned_exit`` adds BERxiT's scorer,
    ``exit_policy`` is the policy its paper exits with (none for models that always run to the end)."""

    name: str
    head: str
    stages: tuple[Stage, ...]
    paper: str
    num_layers: int | None = None
    learned_exit: bool = False
    exit_policy: str | None = None

    def model_spec(self, backbone: str, num_outputs: int) -> ModelSpec:
        """The model this recipe trains: its head type, kept layers and learned-exit scorer."""
        from fastexit_bench.models.saved import ModelSpec

        return ModelSpec(backbone, self.head, num_outputs, self.num_layers, self.learned_exit, scorer_input="pooled")


RECIPES: Registry[Recipe] = Registry("recipe")
TRUNCATED = re.compile(r"^truncated-([1-9][0-9]*)$")
FINETUNE = Stage("finetune", "final", ("final_exit",))

for _recipe in (
    Recipe("baseline", "highway", (FINETUNE,), "BERT fine-tuning (Devlin et al., 2019)"),
    Recipe(
        "truncated-k", "highway", (FINETUNE,),
        "FastBERT (Liu et al., 2020) baselines: the first k layers + classifier, fine-tuned "
        "(use as truncated-6, truncated-3, ...)",
    ),
    Recipe(
        "deebert", "highway",
        (FINETUNE, Stage("offramps", "offramps", ("offramps",))),
        "DeeBERT (Xin et al., 2020): two-stage training", exit_policy="entropy",
    ),
    Recipe(
        "fastbert", "branch",
        (FINETUNE, Stage("self-distillation", "offramps", ("self_distillation",), lr_scale=10.0, needs_labels=False)),
        "FastBERT (Liu et al., 2020): fine-tune backbone + teacher, then self-distil the students",
        exit_policy="speed",
    ),
    Recipe(
        "pabee", "shared-pooler",
        (Stage("joint", "all", ("depth_weighted",)),),
        "PABEE (Zhou et al., 2020): one shared pooler and a classifier per layer, trained jointly with "
        "depth-weighted losses", exit_policy="patience",
    ),
    Recipe(
        "berxit", "highway",
        (Stage("alternating", "all", ("final_exit_and_learned_exit", "offramps_and_learned_exit")),),
        "BERxiT (Xin et al., 2021): alternate steps of the final exit's loss and of the off-ramps' losses, "
        "each plus the learning-to-exit loss on the off-ramps' pooled outputs",
        learned_exit=True, exit_policy="learned",
    ),
):
    RECIPES.register(_recipe.name, _recipe)


def get_recipe(name: str) -> Recipe:
    """A registered recipe; ``truncated-K`` instantiates the truncated baseline with K layers."""
    match = TRUNCATED.match(name)
    if match:
        k = int(match.group(1))
        return replace(RECIPES.get("truncated-k"), name=name, num_layers=k)
    if name == "truncated-k":
        raise UnknownNameError("recipe 'truncated-k' needs a layer count: truncated-6, truncated-3, truncated-1, ...")
    return RECIPES.get(name)
