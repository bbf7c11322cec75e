"""A trained early-exit model on disk: ``model.safetensors`` plus ``training.json``.

``training.json`` is written last, so a folder without it is not a finished model. The backbone
is rebuilt from its name (or folder) and the weights loaded over it, so no modeling code is pickled.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors.torch import load_model, save_model

from fastexit_bench.errors import ModelLoadError
from fastexit_bench.io import atomic_path, write_json
from fastexit_bench.models.early_exit import EarlyExitModel

if TYPE_CHECKING:
    from fastexit_bench.training.recipes import Recipe

WEIGHTS = "model.safetensors"
INFO = "training.json"


@dataclass(frozen=True)
class ModelSpec:
    """What to build before loading weights: backbone, head type, output width, kept layers, BERxiT scorer."""

    backbone: str
    head: str
    num_outputs: int
    num_layers: int | None = None
    learned_exit: bool = False

    @classmethod
    def for_recipe(cls, backbone: str, recipe: Recipe, num_outputs: int) -> ModelSpec:
        """The model a recipe trains: its head type, kept layers and learned-exit scorer."""
        return cls(backbone, recipe.head, num_outputs, recipe.num_layers, recipe.learned_exit)


def build_model(spec: ModelSpec, resources: str | Path | None = None):
    """``(EarlyExitModel, tokenizer, resolved backbone)`` with freshly initialised heads."""
    from fastexit_bench.models.backbones import load_backbone

    backbone, tokenizer, resolved = load_backbone(spec.backbone, resources)
    model = EarlyExitModel(backbone, spec.head, spec.num_outputs, num_layers=spec.num_layers,
                           learned_exit=spec.learned_exit)
    return model, tokenizer, resolved


def save_trained(folder: Path, model: EarlyExitModel, spec: ModelSpec, info: dict[str, Any]) -> None:
    """Write the weights, then ``training.json`` (the completion marker) holding ``spec`` and ``info``."""
    folder = Path(folder)
    with atomic_path(folder / WEIGHTS) as tmp:
        save_model(model, str(tmp))
    write_json(folder / INFO, {"model": asdict(spec), **info})


def load_trained(folder: Path, resources: str | Path | None = None):
    """``(model in eval mode, tokenizer, info)`` from a folder written by :func:`save_trained`."""
    folder = Path(folder)
    if not (folder / INFO).is_file() or not (folder / WEIGHTS).is_file():
        raise ModelLoadError(f"{folder} is not a finished model (needs {WEIGHTS} and {INFO}); "
                             "train one with `fastexit-bench train ... --out FOLDER`")
    info = json.loads((folder / INFO).read_text())
    model, tokenizer, _ = build_model(ModelSpec(**info["model"]), resources)
    load_model(model, str(folder / WEIGHTS))
    return model.eval(), tokenizer, info
