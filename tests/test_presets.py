"""Per-paper presets: each value agrees with the line it cites and with the papers' settings, experiments
override them, the workflow accepts them; and the trainer does what they ask (kept epoch, frozen parts in
train mode, per-stage epochs on another stage's schedule)."""

import re
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml
from snakemake.utils import validate

from fastexit_bench.training.config import StageSettings
from fastexit_bench.training.presets import PRESETS
from fastexit_bench.training.recipes import get_recipe
from fastexit_bench.training.trainer import Trainer
from tests.test_recipes import CONFIG, build, dev_set, token_data

ROOT = Path(__file__).resolve().parents[1]
NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e-?\d+)?")


def _numbers(value) -> list[float]:
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [float(v) for v in value]
    return [float(value)] if isinstance(value, (int, float)) else []


@pytest.mark.parametrize("name", PRESETS.names())
def test_each_value_is_on_the_line_it_cites_or_says_how_it_follows(name):
    preset = PRESETS.get(name)
    for key, citation in preset.citations.items():
        assert re.fullmatch(r"[\w./-]+:\d+", citation.source), (key, citation.source)
        quoted = [float(n) for n in NUMBER.findall(citation.quote)]
        spelled = _numbers(preset.values[key])
        if citation.derived is None:
            assert spelled and all(any(n == pytest.approx(q) for q in quoted) for n in spelled), (
                key,
                citation,
            )
        else:
            assert len(citation.derived) > 20, (key, "a derived value says how it follows from the line")


def test_presets_hold_the_papers_settings():
    deebert, roberta = PRESETS.get("deebert-bert").values, PRESETS.get("deebert-roberta").values
    assert (
        deebert["batch_size"],
        deebert["lr"],
        deebert["epochs"],
        deebert["warmup"],
        deebert["weight_decay"],
        deebert["keep"],
        deebert["frozen"],
    ) == (8, 2e-5, 3, 0, 0, "last", "train")
    assert deebert["grids"]["entropy"] == [
        0,
        0.001,
        0.005,
        0.01,
        0.05,
        0.1,
        0.15,
        0.2,
        0.3,
        0.4,
        0.5,
        0.6,
        0.7,
    ]
    assert roberta["epochs"] == 10 and {k: v for k, v in roberta.items() if k != "epochs"} == {
        k: v for k, v in deebert.items() if k != "epochs"
    }
    fastbert = PRESETS.get("fastbert").values
    assert (fastbert["epochs"], fastbert["batch_size"], fastbert["frozen"]) == (3, 32, "train")
    assert fastbert["stages"]["fastbert"]["self-distillation"] == {
        "epochs": 5,
        "keep": "last",
        "schedule_epochs": 3,
    }
    assert fastbert["grids"]["speed"] == pytest.approx([k / 10 for k in range(11)])
    pabee = PRESETS.get("pabee").values
    assert (pabee["batch_size"], pabee["epochs"], pabee["warmup"], pabee["grids"]["patience"]) == (
        32,
        5,
        0,
        list(range(1, 9)),
    )
    assert PRESETS.get("berxit").values["batch_size"] == 8


def test_an_experiments_own_keys_override_its_preset():
    merged = PRESETS.get("fastbert").apply(
        {
            "epochs": 1,
            "stages": {
                "fastbert": {"self-distillation": {"epochs": 2}},
                "deebert": {"offramps": {"lr": 1e-3}},
            },
        }
    )
    assert merged["epochs"] == 1 and merged["batch_size"] == 32
    assert merged["stages"] == {
        "fastbert": {"self-distillation": {"epochs": 2, "keep": "last", "schedule_epochs": 3}},
        "deebert": {"offramps": {"lr": 1e-3}},
    }


@pytest.mark.parametrize("name", PRESETS.names())
def test_every_preset_is_a_valid_experiment(name):
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["experiments"] = {
        "paper": PRESETS.get(name).apply(
            {"datasets": ["sst2"], "backbone": "minilm-l6", "recipes": ["baseline"]}
        )
    }
    validate(config, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))


def _train(recipe_name, config):
    recipe = get_recipe(recipe_name)
    torch.manual_seed(0)
    model = build(recipe)
    trainer = Trainer(model, recipe, token_data(rows=16), dev_set(), "classification", config)
    return model, trainer, trainer.run()


def test_keep_last_ends_each_stage_with_its_last_epoch():
    config = replace(CONFIG, epochs=3, max_steps=None, keep="last")
    _, _, logs = _train("deebert", config)
    assert [log.best_epoch for log in logs] == [3, 3]


def test_frozen_parts_run_in_train_mode_when_asked(monkeypatch):
    modes = []
    step = Trainer._step

    def record(self, run, loss, index):
        modes.append((run.stage.name, self.model.layers[0].training))
        step(self, run, loss, index)

    monkeypatch.setattr(Trainer, "_step", record)
    for frozen in ("eval", "train"):
        logs = _train("deebert", replace(CONFIG, frozen=frozen))[2]
        assert logs[1].cached_features == (frozen == "eval")  # dropout makes features vary: no cache
    assert sorted(set(modes)) == [("finetune", True), ("offramps", False), ("offramps", True)]
    assert modes[len(modes) // 2 - 1] == ("offramps", False) and modes[-1] == ("offramps", True)


def test_a_stage_runs_its_own_epochs_on_another_schedule():
    """FastBERT distils for 5 epochs on the 3-epoch fine-tuning schedule: here 3 epochs on a 1-epoch one."""
    stages = (("self-distillation", StageSettings(epochs=3, keep="last", schedule_epochs=1)),)
    config = replace(CONFIG, epochs=1, max_steps=None, stages=stages)
    rates = []
    step = Trainer._step

    def record(self, run, loss, index):
        step(self, run, loss, index)
        rates.append((run.stage.name, run.scheduler.get_last_lr()[0]))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Trainer, "_step", record)
        _, _, logs = _train("fastbert", config)
    assert [len(log.epochs) for log in logs] == [1, 3] and logs[1].best_epoch == 3
    distil = [rate for name, rate in rates if name == "self-distillation"]
    per_epoch = len(distil) // 3
    assert distil[per_epoch - 1] == 0 and set(distil[per_epoch:]) == {0.0} and distil[0] > 0
