"""Training recipes as data: which head type, how many layers, and which stages (trained part, named
objectives from :data:`fastexit_bench.training.losses.LOSSES`, lr). Importing this module needs no torch."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from fastexit_bench.errors import ModelLoadError, UnknownNameError
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
        distils: at the stage's start the model trained so far becomes a frozen teacher (eval mode, no
            gradient) and the stage trains a ``Recipe.student_layers``-layer student copied from it
            (:func:`student_layer_indices`); its objectives receive the teacher's final logits.
    """

    name: str
    trains: Literal["all", "final", "offramps"]
    losses: tuple[str, ...]
    lr_scale: float = 1.0
    needs_labels: bool = True
    distils: bool = False

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
        return {
            "all": slice(None),
            "final": slice(num_layers - 1, None),
            "offramps": slice(None, num_layers - 1),
        }[self.trains]


@dataclass(frozen=True)
class Recipe:
    """A named training procedure; ``num_layers`` truncates the backbone, ``student_layers`` is the depth of the
    student a distilling stage trains, ``learned_exit`` adds BERxiT's scorer, ``exit_policy`` is the policy its
    paper exits with (none for models that always run to the end)."""

    name: str
    head: str
    stages: tuple[Stage, ...]
    paper: str
    num_layers: int | None = None
    learned_exit: bool = False
    exit_policy: str | None = None
    student_layers: int | None = None

    def model_spec(self, backbone: str, num_outputs: int, pooling: str) -> ModelSpec:
        """The model this recipe saves: its head type, layers (a distilled student's), learned-exit scorer and
        the heads' resolved pooling (``fastexit_bench.pooling``)."""
        from fastexit_bench.models.saved import ModelSpec

        return ModelSpec(
            backbone,
            self.head,
            num_outputs,
            self.num_layers or self.student_layers,
            self.learned_exit,
            scorer_input="pooled",
            pooling=pooling,
        )

    def start_spec(self, backbone: str, num_outputs: int, pooling: str) -> ModelSpec:
        """The model training starts from: the saved one, or, for a recipe that distils, its full-depth teacher."""
        spec = self.model_spec(backbone, num_outputs, pooling)
        return replace(spec, num_layers=None) if self.student_layers else spec


def student_layer_indices(teacher_layers: int, student_layers: int) -> list[int]:
    """The teacher layers (0-based) a ``student_layers``-layer student starts from: evenly spaced from the first
    to the last, rounded. This is DistilBERT's choice for 6 of 12 (layers 0, 2, 4, 7, 9, 11 in
    transformers' ``examples/research_projects/distillation/scripts/extract_distilbert.py``); 3 of 12 gives
    0, 6, 11 and 1 layer the first."""
    if not 1 <= student_layers <= teacher_layers:
        raise ModelLoadError(
            f"cannot distil a {teacher_layers}-layer model into {student_layers} layers; "
            f"choose 1..{teacher_layers}"
        )
    if student_layers == 1:
        return [0]
    step = (teacher_layers - 1) / (student_layers - 1)
    return [math.floor(i * step + 0.5) for i in range(student_layers)]


RECIPES: Registry[Recipe] = Registry("recipe")
LAYERED = re.compile(r"^(truncated|distilled)-([1-9][0-9]*)$")  # a template name with its layer count
FINETUNE = Stage("finetune", "final", ("final_exit",))

RECIPES.add(Recipe("baseline", "highway", (FINETUNE,), "BERT fine-tuning (Devlin et al., 2019)"))
RECIPES.add(
    Recipe(
        "truncated-k",
        "highway",
        (FINETUNE,),
        "FastBERT (Liu et al., 2020) baselines: the first k layers + classifier, fine-tuned "
        "(use as truncated-6, truncated-3, ...)",
    )
)
RECIPES.add(
    Recipe(
        "distilled-k",
        "highway",
        (FINETUNE, Stage("distillation", "final", ("distillation",), distils=True)),
        "FastBERT (Liu et al., 2020) 'DistilBERT' baselines: fine-tune the full model (the teacher), then train "
        "a k-layer student initialised from its layers on soft targets plus labels (use as distilled-6, ...)",
    )
)
RECIPES.add(
    Recipe(
        "deebert",
        "highway",
        (FINETUNE, Stage("offramps", "offramps", ("offramps",))),
        "DeeBERT (Xin et al., 2020): two-stage training",
        exit_policy="entropy",
    )
)
RECIPES.add(
    Recipe(
        "fastbert",
        "branch",
        (
            FINETUNE,
            Stage("self-distillation", "offramps", ("self_distillation",), lr_scale=10.0, needs_labels=False),
        ),
        "FastBERT (Liu et al., 2020): fine-tune backbone + teacher, then self-distil the students",
        exit_policy="speed",
    )
)
RECIPES.add(
    Recipe(
        "pabee",
        "shared-pooler",
        (Stage("joint", "all", ("depth_weighted",)),),
        "PABEE (Zhou et al., 2020): one shared pooler and a classifier per layer, trained jointly with "
        "depth-weighted losses",
        exit_policy="patience",
    )
)
RECIPES.add(
    Recipe(
        "berxit",
        "highway",
        (Stage("alternating", "all", ("final_exit_and_learned_exit", "offramps_and_learned_exit")),),
        "BERxiT (Xin et al., 2021): alternate steps of the final exit's loss and of the off-ramps' losses, "
        "each plus the learning-to-exit loss on the off-ramps' pooled outputs",
        learned_exit=True,
        exit_policy="learned",
    )
)


def get_recipe(name: str) -> Recipe:
    """A registered recipe; ``truncated-K`` and ``distilled-K`` instantiate those baselines with K layers."""
    match = LAYERED.match(name)
    if match:
        template, k = match.group(1), int(match.group(2))
        depth = {"truncated": {"num_layers": k}, "distilled": {"student_layers": k}}[template]
        return replace(RECIPES.get(f"{template}-k"), name=name, **depth)
    if name in ("truncated-k", "distilled-k"):
        raise UnknownNameError(
            f"recipe {name!r} needs a layer count: {name[:-1]}6, {name[:-1]}3, {name[:-1]}1, ..."
        )
    return RECIPES.get(name)
