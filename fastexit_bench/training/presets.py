"""Per-paper presets: each paper's training and sweep settings as its authors' code sets them, each value
cited (``presets.yaml``). An experiment names one with ``preset:``; its own keys win. Importing this
module needs no torch (the workflow reads it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fastexit_bench.registry import Registry

PRESETS_FILE = Path(__file__).with_name("presets.yaml")


@dataclass(frozen=True)
class Citation:
    """Where a preset value comes from: ``source`` (file:line in ``repository``), the line's text, and how
    the value follows from it when the line does not spell it out."""

    repository: str
    source: str
    quote: str
    derived: str | None = None


@dataclass(frozen=True)
class Preset:
    """A paper's settings as experiment keys (``epochs``, ``batch_size``, ``lr``, ``warmup``,
    ``weight_decay``, ``keep``, ``frozen``, ``stages``, ``grids``, ``max_length``) with their citations."""

    name: str
    paper: str
    values: dict[str, Any]
    citations: dict[str, Citation]

    def apply(self, experiment: dict[str, Any]) -> dict[str, Any]:
        """``experiment``'s settings over this preset's: its own keys win, mappings merge key by key."""
        merged = dict(self.values)
        for key, value in experiment.items():
            merged[key] = _merge(merged[key], value) if isinstance(value, dict) and key in merged else value
        return merged


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def _load(path: Path) -> dict[str, Preset]:
    declared = yaml.safe_load(path.read_text())
    presets: dict[str, Preset] = {}
    for name, entry in declared.items():  # a base is declared before the presets built on it
        base = presets[entry["base"]] if "base" in entry else None
        values = dict(base.values) if base else {}
        citations = dict(base.citations) if base else {}
        for key, setting in entry["settings"].items():
            values[key] = setting["value"]
            citations[key] = Citation(
                entry["repository"], setting["source"], str(setting["quote"]), setting.get("derived")
            )
        presets[name] = Preset(name, entry["paper"], values, citations)
    return presets


PRESETS: Registry[Preset] = Registry("preset")
for _name, _preset in _load(PRESETS_FILE).items():
    PRESETS.register(_name, _preset)
