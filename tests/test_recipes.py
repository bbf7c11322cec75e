"""Every recipe trains on a tiny model; frozen parts stay bitwise equal; best epoch, caching, resume."""

import functools
from dataclasses import replace

import datasets
import pytest
import torch
from transformers import AutoTokenizer

from fastexit_bench.errors import ModelLoadError, TrainingError
from fastexit_bench.locations import resources_dir
from fastexit_bench.models.backbones import BACKBONES
from fastexit_bench.models.early_exit import AllExitsOutput, EarlyExitModel
from fastexit_bench.runtime.batches import TokenBatches
from fastexit_bench.training import losses
from fastexit_bench.training.config import TrainConfig
from fastexit_bench.training.losses import (
    DISTILLATION_SOFT_WEIGHT,
    DISTILLATION_TEMPERATURE,
    LOSSES,
    learned_exit_loss,
    per_exit_task_loss,
    student_distillation_loss,
)
from fastexit_bench.training.recipes import RECIPES, get_recipe, student_layer_indices
from fastexit_bench.training.trainer import DevSet, StageLog, Trainer
from tests.test_early_exit_model import tiny_backbone

CONFIG = TrainConfig(lr=1e-3, epochs=1, batch_size=4, max_steps=3)


@functools.cache
def tokenizer():
    return AutoTokenizer.from_pretrained(BACKBONES.get("minilm-l6").offline(resources_dir(None)))


def token_data(task="classification", rows=16, labels=True, seed=2):
    """Random token ids of varying length (padding exercised), as a tokenized dataset would hold them."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, 10, (rows,), generator=generator).tolist()
    columns = {
        "input_ids": [torch.randint(5, 99, (n,), generator=generator).tolist() for n in lengths],
        "attention_mask": [[1] * n for n in lengths],
        "length": lengths,
    }
    if labels:
        columns["labels"] = (
            (torch.rand(rows, generator=generator) * 5).tolist()
            if task == "regression"
            else torch.randint(0, 2, (rows,), generator=generator).tolist()
        )
    return TokenBatches(datasets.Dataset.from_dict(columns), tokenizer())


def build(recipe, task="classification"):
    return EarlyExitModel(
        tiny_backbone(),
        recipe.head,
        num_outputs=1 if task == "regression" else 2,
        num_layers=recipe.num_layers,
        learned_exit=recipe.learned_exit,
    )


def dev_set(task="classification"):
    return DevSet(token_data(task, rows=8, seed=3), task, "pearson" if task == "regression" else "accuracy")


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def assert_same(before, module):
    after = module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def assert_changed(before, module):
    after = module.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


TEMPLATES = ("truncated-k", "distilled-k")


@pytest.mark.parametrize(
    "name", [n for n in RECIPES.names() if n not in TEMPLATES] + ["truncated-2", "distilled-2"]
)
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_recipe_runs_and_losses_are_finite(name, task):
    recipe = get_recipe(name)
    model = build(recipe, task)
    trainer = Trainer(model, recipe, token_data(task), dev_set(task), task, CONFIG)
    logs = trainer.run()
    assert [log.stage for log in logs] == [s.name for s in recipe.stages]
    student = False
    for stage, log in zip(recipe.stages, logs):
        student = student or stage.distils
        (epoch,) = log.epochs
        assert epoch.steps == 3 and torch.isfinite(torch.tensor(epoch.train_loss))
        assert len(epoch.dev_metric) == (recipe.student_layers if student else model.num_layers)
    assert trainer.model.num_layers == (recipe.student_layers or recipe.num_layers or model.num_layers)


@pytest.mark.parametrize(
    ("task", "finished"), [("regression", False), ("regression", True), ("classification", False)]
)
def test_regression_exits_start_at_the_training_label_mean(task, finished):
    """From 0 on 0-5 scores, joint training of every exit collapsed to one constant answer (STS-B)."""
    recipe = get_recipe("pabee")
    model, data = build(recipe, task), token_data(task)
    before = snapshot(model)
    logs = [StageLog(stage="joint", lr=1e-3)] if finished else None
    Trainer(model, recipe, data, dev_set(task), task, CONFIG, finished=logs)
    if task == "classification" or finished:  # a finished first stage's heads are trained already
        assert_same(before, model)
    else:
        mean = sum(data.dataset["labels"]) / len(data)
        assert all(head.classifier.bias.item() == pytest.approx(mean) for head in model.heads)


@pytest.mark.parametrize("template", TEMPLATES)
def test_layered_recipes_need_a_layer_count(template):
    assert get_recipe(template.replace("k", "6")).model_spec("b", 2, "cls").num_layers == 6
    with pytest.raises(Exception, match="needs a layer count"):
        get_recipe(template)


def test_student_layers_follow_distilbert():
    """DistilBERT initialises its 6 layers from teacher layers 0, 2, 4, 7, 9, 11 (extract_distilbert.py)."""
    assert student_layer_indices(12, 6) == [0, 2, 4, 7, 9, 11]
    assert student_layer_indices(12, 3) == [0, 6, 11] and student_layer_indices(12, 1) == [0]
    assert student_layer_indices(4, 4) == [0, 1, 2, 3]
    with pytest.raises(ModelLoadError, match="cannot distil a 4-layer model into 5 layers"):
        student_layer_indices(4, 5)


def test_student_copies_the_teacher_layers_and_final_head():
    teacher = build(get_recipe("baseline"))
    student = teacher.student([0, 2])
    assert student.num_layers == 2 and student.config is teacher.config
    for mine, theirs in (
        (student.layers[0], teacher.layers[0]),
        (student.layers[1], teacher.layers[2]),
        (student.heads[1], teacher.heads[-1]),
        (student.embeddings, teacher.embeddings),
    ):
        assert mine is not theirs
        assert_same(snapshot(theirs), mine)


def test_distilled_recipe_trains_a_student_on_the_teachers_soft_targets_and_the_labels(monkeypatch):
    """Stage 1 fine-tunes the full model; stage 2 trains a 2-layer copy of it with the distillation loss
    against the (frozen) teacher's final logits, and the saved model is the student."""
    recipe = get_recipe("distilled-2")
    assert [stage.loss_at(0) for stage in recipe.stages] == ["final_exit", "distillation"]
    model = build(recipe)
    run_stages(model, recipe, recipe.stages[:1])
    teacher_weights = snapshot(model)
    calls = []

    def recorded(student, teacher, labels, task):
        calls.append((student.shape, teacher.shape, teacher.requires_grad, labels is not None))
        return student_distillation_loss(student, teacher, labels, task)

    monkeypatch.setattr(losses, "student_distillation_loss", recorded)
    trainer = Trainer(
        model, replace(recipe, stages=recipe.stages[1:]), token_data(), dev_set(), "classification", CONFIG
    )
    trainer.run()
    assert calls == [(torch.Size([4, 2]), torch.Size([4, 2]), False, True)] * 3
    assert trainer.model.num_layers == 2 and trainer.teacher is None
    assert_same(teacher_weights, model)  # the teacher is frozen
    assert_changed(snapshot(model.heads[-1]), trainer.model.heads[-1])


def test_distillation_loss_mixes_soft_targets_and_labels():
    torch.manual_seed(0)
    student, teacher, labels = torch.randn(5, 3), torch.randn(5, 3), torch.randint(0, 3, (5,))
    t, w = DISTILLATION_TEMPERATURE, DISTILLATION_SOFT_WEIGHT
    soft = torch.softmax(teacher / t, -1) * (
        torch.log_softmax(teacher / t, -1) - torch.log_softmax(student / t, -1)
    )
    expected = w * t * t * soft.sum(-1).mean() + (1 - w) * torch.nn.functional.cross_entropy(student, labels)
    torch.testing.assert_close(
        student_distillation_loss(student, teacher, labels, "classification"), expected
    )
    hard_only = (1 - w) * torch.nn.functional.cross_entropy(student, labels)
    torch.testing.assert_close(
        student_distillation_loss(student, student, labels, "classification"), hard_only
    )


def test_berxit_alternates_final_exit_and_offramp_objectives_each_with_the_exit_loss():
    """castorini/berxit, routine alternate-lte: even steps L_final + J, odd steps sum of off-ramp losses + J."""
    stage = get_recipe("berxit").stages[0]
    assert stage.trains == "all"
    assert [stage.loss_at(step) for step in range(4)] == [
        "final_exit_and_learned_exit",
        "offramps_and_learned_exit",
    ] * 2
    torch.manual_seed(0)
    logits, scores = torch.randn(4, 5, 2), torch.randn(4, 5)
    labels = torch.randint(0, 2, (5,))
    out = AllExitsOutput(logits, scores)
    per_exit = per_exit_task_loss(logits, labels, "classification")
    exit_loss = learned_exit_loss(scores, logits, labels, "classification")
    even, odd = (LOSSES.get(name)(out, labels, "classification") for name in stage.losses)
    torch.testing.assert_close(even, per_exit[-1] + exit_loss)
    torch.testing.assert_close(odd, per_exit[:-1].sum() + exit_loss)


def run_stages(model, recipe, stages, data=None, config=CONFIG):
    return Trainer(
        model, replace(recipe, stages=stages), data or token_data(), dev_set(), "classification", config
    ).run()


@pytest.mark.parametrize("name", ["deebert", "fastbert"])
def test_second_stage_freezes_backbone_and_final_head(name):
    recipe = get_recipe(name)
    model = build(recipe)
    run_stages(model, recipe, recipe.stages[:1])
    frozen = [*model.encoder_modules, model.heads[-1]]
    before = [snapshot(m) for m in frozen]
    offramps = snapshot(model.heads[:-1])
    run_stages(model, recipe, recipe.stages[1:])
    for b, m in zip(before, frozen):
        assert_same(b, m)
    assert_changed(offramps, model.heads[:-1])


def test_finetune_stage_leaves_offramps_alone():
    recipe = get_recipe("baseline")
    model = build(recipe)
    offramps = snapshot(model.heads[:-1])
    run_stages(model, recipe, recipe.stages)
    assert_same(offramps, model.heads[:-1])


def test_self_distillation_trains_on_unlabeled_text():
    recipe = get_recipe("fastbert")
    model = build(recipe)
    (log,) = run_stages(model, recipe, recipe.stages[1:], data=token_data(labels=False))
    assert log.epochs[0].steps == 3


def test_cached_cls_features_train_the_offramps_like_the_full_forward():
    recipe = get_recipe("deebert")
    config = replace(CONFIG, epochs=2, max_steps=None)
    results = []
    for cache in (True, False):
        model = build(recipe)
        (log,) = run_stages(model, recipe, recipe.stages[1:], config=replace(config, cache_features=cache))
        assert log.cached_features is cache
        results.append(snapshot(model.heads))
    for key in results[0]:
        torch.testing.assert_close(results[0][key], results[1][key], rtol=1e-4, atol=1e-5)


def test_best_dev_epoch_weights_are_kept(monkeypatch):
    recipe = get_recipe("baseline")
    model = build(recipe)
    scripted, seen = iter([0.5, 0.9, 0.1]), []

    def fake_score(self, dev, stage):
        seen.append(snapshot(self.model))
        score = next(scripted)
        return [score] * self.model.num_layers, score, None

    monkeypatch.setattr(Trainer, "_score", fake_score)
    # the snapshots compare tables of one shape (tests/test_vocabulary.py keeps a trimmed run's best epoch)
    config = replace(CONFIG, epochs=3, max_steps=None, vocabulary="full")
    (log,) = run_stages(model, recipe, recipe.stages, config=config)
    assert [e.score for e in log.epochs] == [0.5, 0.9, 0.1] and log.best_epoch == 2
    assert_same(seen[1], model)


def test_nan_loss_stops_with_a_clear_error():
    recipe = get_recipe("baseline")
    model = build(recipe)
    with torch.no_grad():
        model.heads[-1].classifier.weight.fill_(float("nan"))
    with pytest.raises(TrainingError, match="loss is nan at step 0"):
        run_stages(model, recipe, recipe.stages)


class Killed(Exception):
    pass


@pytest.mark.parametrize("kill_at_save", [1, 3, 5, 8, 11])
@pytest.mark.parametrize("name", ["deebert", "distilled-2"])
def test_killed_run_resumes_to_the_same_weights(tmp_path, monkeypatch, kill_at_save, name):
    """6 steps per epoch, 2 epochs, 2 stages; checkpoints every 2 steps and at epoch/stage ends (a kill in
    the second stage of distilled-2 resumes a student with its teacher).

    No dev set: the last epoch is kept, so every step after the kill point shows in the weights.
    """
    recipe = get_recipe(name)
    config = replace(CONFIG, epochs=2, max_steps=None, checkpoint_every=2)
    data = token_data(rows=24)

    uninterrupted = Trainer(build(recipe), recipe, data, None, "classification", config)
    uninterrupted.run()

    checkpoint = tmp_path / "train.ckpt"
    save, saves = Trainer._save_checkpoint, []

    def save_then_die(self, state):
        save(self, state)
        saves.append(state.get("step"))
        if len(saves) == kill_at_save:
            raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "_save_checkpoint", save_then_die)
        with pytest.raises(Killed):
            Trainer(build(recipe), recipe, data, None, "classification", config, checkpoint).run()
    resumed = Trainer(build(recipe), recipe, data, None, "classification", config, checkpoint)
    logs = resumed.run()
    assert [len(log.epochs) for log in logs] == [2, 2]
    assert resumed.model.num_layers == uninterrupted.model.num_layers
    assert_same(snapshot(uninterrupted.model), resumed.model)


def other_backbone(recipe):
    model = build(recipe)
    with torch.no_grad():
        model.embeddings.word_embeddings.weight[0, 0] += 1
    return model


@pytest.mark.parametrize("change", ["settings", "train rows", "labels", "dev rows", "backbone weights"])
def test_checkpoint_of_another_run_is_refused(tmp_path, change):
    """Another mirror, subsample or max length gives other token ids; another backbone other weights."""
    recipe = get_recipe("baseline")
    checkpoint = tmp_path / "train.ckpt"
    Trainer(build(recipe), recipe, token_data(), dev_set(), "classification", CONFIG, checkpoint).run()
    Trainer(
        build(recipe), recipe, token_data(), dev_set(), "classification", CONFIG, checkpoint
    ).run()  # same run
    model, data, dev, config = build(recipe), token_data(), dev_set(), CONFIG
    if change == "settings":
        config = replace(CONFIG, lr=5e-4)
    elif change == "train rows":
        data = token_data(seed=7)
    elif change == "labels":
        flipped = data.dataset.map(lambda row: {"labels": 1 - row["labels"]})
        data = TokenBatches(flipped.add_column("length", list(data.lengths())), tokenizer())
    elif change == "dev rows":
        dev = DevSet(token_data(rows=8, seed=4), "classification", "accuracy")
    else:
        model = other_backbone(recipe)
    with pytest.raises(TrainingError, match="written by a different run"):
        Trainer(model, recipe, data, dev, "classification", config, checkpoint).run()


def test_an_update_that_makes_the_weights_non_finite_stops_training():
    """The loss of the last step is finite; the step it takes is not: caught after the step, not at the next."""
    recipe = get_recipe("baseline")
    with pytest.raises(TrainingError, match="weights are not finite after step 0"):
        run_stages(build(recipe), recipe, recipe.stages, config=replace(CONFIG, lr=float("inf"), max_steps=1))


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", b"PK\x03\x04truncated"])
def test_a_corrupt_checkpoint_names_the_file_and_the_fix(tmp_path, content):
    recipe = get_recipe("baseline")
    checkpoint = tmp_path / "train.ckpt"
    checkpoint.write_bytes(content)
    with pytest.raises(TrainingError, match="train.ckpt cannot be read .*delete it to start over"):
        Trainer(build(recipe), recipe, token_data(), None, "classification", CONFIG, checkpoint).run()
