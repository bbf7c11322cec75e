"""A trimmed vocabulary computes what the full one does; training on it ends at the full-vocabulary model."""

from dataclasses import replace

import datasets
import pytest
import torch

from fastexit_bench.errors import TrainingError
from fastexit_bench.execution import ExecutionConfig
from fastexit_bench.models.vocabulary import data_token_ids, restore_vocabulary, trim_vocabulary
from fastexit_bench.runtime.batches import TokenBatches
from fastexit_bench.training.config import TrainConfig
from fastexit_bench.training.recipes import get_recipe
from fastexit_bench.training.trainer import DevSet, Trainer
from tests.test_recipes import build, tokenizer

FP32 = TrainConfig(
    lr=1e-3, epochs=3, batch_size=4, weight_decay=0.1, execution=ExecutionConfig("fp32", "eager")
)


def narrow_data(rows=16, seed=2, high=40):
    """Token ids 5..high-1 only, so the tiny backbone's rows high..98 are never seen."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, 10, (rows,), generator=generator).tolist()
    return TokenBatches(
        datasets.Dataset.from_dict(
            {
                "input_ids": [torch.randint(5, high, (n,), generator=generator).tolist() for n in lengths],
                "attention_mask": [[1] * n for n in lengths],
                "length": lengths,
                "labels": torch.randint(0, 2, (rows,), generator=generator).tolist(),
            }
        ),
        tokenizer(),
    )


def test_a_trimmed_table_gives_the_same_logits_for_every_input_of_its_ids():
    model = build(get_recipe("baseline")).eval()
    data = narrow_data()
    batch = data.batch(torch.arange(len(data)))
    with torch.no_grad():
        full = model.forward_all(**batch.inputs).logits
        trimmed = trim_vocabulary(model.embeddings, data_token_ids([data.token_ids()], 0))
        assert trimmed.weight.shape[0] == len(set(data.token_ids().tolist()) | {0}) < 99
        assert torch.equal(model.forward_all(**batch.inputs).logits, full)
        with pytest.raises(TrainingError, match=r"token ids \[50\] are not in the trimmed vocabulary"):
            model.forward_all(torch.tensor([[5, 50, 6]]), torch.ones(1, 3, dtype=torch.long))
    restore_vocabulary(model.embeddings)
    assert model.embeddings.word_embeddings.weight.shape[0] == 99


@pytest.mark.parametrize("name", ["baseline", "deebert", "distilled-2"])
def test_training_on_a_trimmed_table_ends_at_the_full_table_run(name):
    """Trained rows, every other weight, and the rows the data never produces (changed only by AdamW's weight
    decay) agree with a full-vocabulary run to float rounding; dev keeps its best epoch either way."""
    recipe = get_recipe(name)
    models = {}
    for trim in (False, True):
        torch.manual_seed(0)
        model = build(recipe)
        trainer = Trainer(
            model,
            recipe,
            narrow_data(),
            DevSet(narrow_data(8, seed=3), "classification", "accuracy"),
            "classification",
            replace(FP32, vocabulary="trimmed" if trim else "full"),
        )
        trainer.run()
        models[trim] = trainer.model.state_dict()
    assert models[True].keys() == models[False].keys()
    for key, value in models[False].items():
        torch.testing.assert_close(models[True][key], value, rtol=1e-5, atol=1e-6, msg=key)
    torch.manual_seed(0)
    start = build(recipe).embeddings.word_embeddings.weight[40:]
    unseen = models[True]["embeddings.word_embeddings.weight"][40:]
    assert not torch.equal(unseen, start) and torch.allclose(unseen, start, rtol=0.02)  # decayed, a little


def test_fused_adamw_agrees_with_the_per_tensor_loop():
    recipe = get_recipe("baseline")
    weights = {}
    for adamw in ("for-loop", "fused"):
        torch.manual_seed(0)
        model = build(recipe)
        Trainer(
            model, recipe, narrow_data(), None, "classification", replace(FP32, adamw=adamw, epochs=1)
        ).run()
        weights[adamw] = model.state_dict()
    for key, value in weights["for-loop"].items():
        torch.testing.assert_close(weights["fused"][key], value, rtol=1e-5, atol=1e-6, msg=key)


@pytest.mark.parametrize("name", ["fastbert", "distilled-2"])
def test_a_final_exit_stage_runs_the_last_head_alone_and_computes_the_same(name, monkeypatch):
    """Fine-tuning reads the last exit only; the other heads are frozen in eval mode, so skipping them draws
    no dropout: the weights are those of a run that computes every head, bit for bit."""
    recipe = get_recipe(name)
    trainer_of = Trainer(build(recipe), recipe, narrow_data(), None, "classification", FP32)
    assert trainer_of._last_exit_only(recipe.stages[0])
    weights, head_calls = {}, {}
    for skip in (True, False):
        if not skip:
            monkeypatch.setattr(Trainer, "_last_exit_only", lambda self, stage: False)
        torch.manual_seed(0)
        model = build(recipe)
        calls = []
        for head in model.heads[:-1]:
            head.register_forward_hook(lambda *_, calls=calls: calls.append(1))
        trainer = Trainer(model, recipe, narrow_data(), None, "classification", replace(FP32, epochs=1))
        trainer.run()
        weights[skip], head_calls[skip] = trainer.model.state_dict(), len(calls)
    assert weights[True].keys() == weights[False].keys()
    assert all(weights[True][k].equal(weights[False][k]) for k in weights[False])
    assert head_calls[True] < head_calls[False]
