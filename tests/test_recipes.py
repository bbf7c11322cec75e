"""Each recipe trains a few steps on a tiny model; frozen parts stay bitwise equal."""

import pytest
import torch
from torch.utils.data import DataLoader

from fastexit_bench.model.early_exit import EarlyExitModel
from fastexit_bench.training.recipes import RECIPES
from fastexit_bench.training.trainer import TrainConfig, TrainingError, train, train_stage
from tests.test_early_exit_model import tiny_backbone

CONFIG = TrainConfig(lr=1e-3, epochs=1, max_steps=3)


def loader(task="classification"):
    torch.manual_seed(2)
    ids = torch.randint(5, 99, (16, 9))
    mask = torch.ones_like(ids)
    mask[::2, 6:] = 0
    labels = torch.rand(16) * 5 if task == "regression" else torch.randint(0, 2, (16,))
    rows = [{"input_ids": i, "attention_mask": m, "labels": y} for i, m, y in zip(ids, mask, labels)]
    return DataLoader(rows, batch_size=4)


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def assert_same(before, module):
    after = module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def assert_changed(before, module):
    after = module.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("name", RECIPES.names())
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_recipe_runs_and_losses_are_finite(name, task):
    recipe = RECIPES.get(name)
    model = EarlyExitModel(tiny_backbone(), recipe.head, num_outputs=1 if task == "regression" else 2)
    logs = train(model, recipe, loader(task), task, CONFIG)
    assert [log.stage for log in logs] == [s.name for s in recipe.stages]
    assert all(len(log.losses) == 3 and all(map(torch.isfinite, map(torch.tensor, log.losses))) for log in logs)


@pytest.mark.parametrize("name", ["deebert", "fastbert"])
def test_second_stage_freezes_backbone_and_final_head(name):
    recipe = RECIPES.get(name)
    model = EarlyExitModel(tiny_backbone(), recipe.head, num_outputs=2)
    train_stage(model, recipe.stages[0], loader(), "classification", CONFIG)
    frozen = [model.embeddings, model.layers, model.heads[-1]]
    before = [snapshot(m) for m in frozen]
    offramps = snapshot(model.heads[:-1])
    train_stage(model, recipe.stages[1], loader(), "classification", CONFIG)
    for b, m in zip(before, frozen):
        assert_same(b, m)
    assert_changed(offramps, model.heads[:-1])


def test_finetune_stage_leaves_offramps_alone():
    model = EarlyExitModel(tiny_backbone(), "highway", num_outputs=2)
    offramps = snapshot(model.heads[:-1])
    train_stage(model, RECIPES.get("baseline").stages[0], loader(), "classification", CONFIG)
    assert_same(offramps, model.heads[:-1])


def test_nan_loss_stops_with_a_clear_error():
    model = EarlyExitModel(tiny_backbone(), "highway", num_outputs=2)
    with torch.no_grad():
        model.heads[-1].classifier.weight.fill_(float("nan"))
    with pytest.raises(TrainingError, match="loss is nan at step 0"):
        train_stage(model, RECIPES.get("baseline").stages[0], loader(), "classification", CONFIG)
