"""Precision and attention: resolution per device, bf16 training close to fp32, resume under bf16, what is
recorded, and length-grouped batches."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from fastexit_bench.errors import FastExitError
from fastexit_bench.execution import (
    Execution,
    ExecutionConfig,
    attention,
    resolve,
    resolve_precision,
    running,
)
from fastexit_bench.models.early_exit import EarlyExitModel
from fastexit_bench.runtime.batches import length_grouped_order
from fastexit_bench.runtime.predict import predict
from fastexit_bench.training.recipes import get_recipe
from fastexit_bench.training.trainer import Trainer
from tests.test_early_exit_model import tiny_backbone
from tests.test_recipes import CONFIG, Killed, assert_same, build, snapshot, token_data

CPU = torch.device("cpu")
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_auto_resolves_per_device():
    assert resolve(ExecutionConfig(), CPU, cpu_bf16=False) == Execution("fp32", "sdpa")
    assert resolve(ExecutionConfig(), CPU, cpu_bf16=True) == Execution("bf16", "eager")
    assert resolve(ExecutionConfig("bf16", "sdpa"), CPU, cpu_bf16=False) == Execution("bf16", "sdpa")
    with pytest.raises(FastExitError, match="fp16 needs a CUDA GPU"):
        resolve_precision("fp16", CPU)
    with pytest.raises(FastExitError, match="precision 'fp64' is not one of"):
        resolve_precision("fp64", CPU)


@pytest.mark.parametrize(("bf16", "expected"), [(True, "bf16"), (False, "fp16")])
def test_auto_on_a_gpu_takes_bf16_where_supported_else_fp16(monkeypatch, bf16, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: bf16)
    assert resolve(ExecutionConfig(), torch.device("cuda")) == Execution(expected, "sdpa")


def _trained(precision, config=CONFIG, data=None, checkpoint=None, device=CPU):
    recipe = get_recipe("baseline")
    torch.manual_seed(0)
    model = build(recipe).to(device)
    data = data or token_data()
    data.device = device
    trainer = Trainer(
        model,
        recipe,
        data,
        None,
        "classification",
        replace(config, execution=ExecutionConfig(precision, "eager")),
        checkpoint,
    )
    return model, trainer, trainer.run()


@pytest.mark.parametrize(
    ("device", "precision"),
    [
        (CPU, "bf16"),
        pytest.param(torch.device("cuda"), "bf16", marks=CUDA),
        pytest.param(torch.device("cuda"), "fp16", marks=CUDA),
    ],
)
def test_a_reduced_precision_step_stays_close_to_fp32(device, precision):
    """One training step of the same model on the same batch: the loss is within 2 % of fp32's (bf16 keeps
    8 bits of mantissa, fp16 11 under a gradient scaler; heads and losses stay fp32)."""
    config = replace(CONFIG, max_steps=1)
    losses = {p: _trained(p, config, device=device)[2][0].epochs[0].train_loss for p in ("fp32", precision)}
    assert losses[precision] == pytest.approx(losses["fp32"], rel=0.02)
    model, trainer, _ = _trained(precision, config, device=device)
    assert trainer.execution == Execution(precision, "eager")
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32


def test_killed_bf16_run_resumes_to_the_same_weights(tmp_path, monkeypatch):
    config = replace(CONFIG, epochs=2, max_steps=None, checkpoint_every=2)
    data = token_data(rows=24)
    uninterrupted, _, _ = _trained("bf16", config, data)
    save, saves = Trainer._save_checkpoint, []

    def save_then_die(self, state):
        save(self, state)
        saves.append(1)
        if len(saves) == 3:
            raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "_save_checkpoint", save_then_die)
        with pytest.raises(Killed):
            _trained("bf16", config, data, tmp_path / "train.ckpt")
    resumed, _, _ = _trained("bf16", config, data, tmp_path / "train.ckpt")
    assert_same(snapshot(uninterrupted), resumed)


def test_attention_holds_inside_the_block_and_is_restored_after_it():
    config = tiny_backbone().config
    config._attn_implementation = "sdpa"
    with attention(config, "eager"):
        assert config._attn_implementation == "eager"
        with attention(config, "eager"):  # already set: left alone
            assert config._attn_implementation == "eager"
        assert config._attn_implementation == "eager"
        with pytest.raises(RuntimeError), attention(config, "sdpa"):
            raise RuntimeError
        assert config._attn_implementation == "eager"
    assert config._attn_implementation == "sdpa"


def test_sdpa_and_length_sorted_batches_give_the_eager_logits_in_fp32():
    torch.manual_seed(3)
    model = EarlyExitModel(
        tiny_backbone(4), "branch", num_outputs=2, learned_exit=True, scorer_input="cls"
    ).eval()
    data = token_data(rows=20, seed=4)
    outputs = {}
    for implementation in ("eager", "sdpa"):
        with running(model.config, Execution("fp32", implementation), CPU):
            outputs[implementation] = predict(model, data, "classification", batch_size=6)
    np.testing.assert_allclose(outputs["sdpa"].logits, outputs["eager"].logits, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(outputs["sdpa"].labels, np.asarray(data.dataset["labels"]))
    batch = data.batch(torch.arange(20))
    with torch.no_grad():
        unsorted = model.forward_all(**batch.inputs).logits.numpy()
    np.testing.assert_allclose(outputs["eager"].logits, unsorted, rtol=1e-4, atol=1e-5)
    assert model.config._attn_implementation == "eager"  # restored after the block


def test_length_grouped_order_is_a_seeded_permutation_of_similar_lengths():
    lengths = np.random.default_rng(0).integers(3, 128, 1000)
    orders = [
        length_grouped_order(lengths, 16, torch.Generator().manual_seed(s), megabatch=8) for s in (1, 1, 2)
    ]
    assert torch.equal(orders[0], orders[1]) and not torch.equal(orders[0], orders[2])
    assert sorted(orders[0].tolist()) == list(range(1000))
    batches = orders[0].split(16)
    padded = sum(len(b) * lengths[b.numpy()].max() for b in batches)
    random = sum(len(b) * lengths[b.numpy()].max() for b in torch.randperm(1000).split(16))
    assert padded < 0.75 * random  # grouped batches carry far less padding


def test_a_weight_changed_inside_one_bf16_block_is_used_at_once():
    """The whole training run is one autocast block: a cached bf16 copy of a weight would outlive its update."""
    torch.manual_seed(1)
    model = EarlyExitModel(tiny_backbone(2), "highway", num_outputs=2).eval()
    inputs = token_data(rows=4, seed=5).batch(torch.arange(4)).inputs
    bf16 = Execution("bf16", "eager")
    with torch.no_grad(), running(model.config, bf16, CPU):
        model.forward_all(**inputs)
        model.layers[0].intermediate.dense.weight.mul_(3.0)  # what an optimizer step does
        inside = model.forward_all(**inputs).logits
    with torch.no_grad(), running(model.config, bf16, CPU):
        fresh = model.forward_all(**inputs).logits
    assert torch.equal(inside, fresh)


def _weight_casts(model, inputs, inference) -> tuple[list[int], list[torch.Tensor]]:
    """fp32 -> bf16 copies of the model's Linear weights made in each of two forward calls in one bf16 block."""
    from torch.profiler import ProfilerActivity, profile

    weights = {tuple(m.weight.shape) for m in model.modules() if isinstance(m, torch.nn.Linear)}
    counts, logits = [], []
    with running(model.config, Execution("bf16", "eager"), CPU, inference=inference), torch.inference_mode():
        for _ in range(2):
            with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
                logits.append(model.forward_all(**inputs).logits)
            counts.append(
                sum(
                    e.name == "aten::_to_copy"
                    and bool(e.input_shapes)
                    and tuple(e.input_shapes[0]) in weights
                    for e in prof.events()
                )
            )
    return counts, logits


def test_an_inference_block_casts_no_layer_weight_and_gives_the_same_numbers():
    """Autocast casts every weight at every call; an inference block holds the layers' cast copies."""
    torch.manual_seed(1)
    model = EarlyExitModel(tiny_backbone(2), "highway", num_outputs=2).eval()
    before = {name: p.clone() for name, p in model.named_parameters()}
    inputs = token_data(rows=4, seed=5).batch(torch.arange(4)).inputs
    per_call, autocast_logits = _weight_casts(model, inputs, inference=None)
    held, held_logits = _weight_casts(model, inputs, inference=model.layers)
    layer_linears = sum(isinstance(m, torch.nn.Linear) for m in model.layers.modules())
    assert per_call[0] == per_call[1] >= layer_linears > 0  # every call casts every weight
    assert held == [per_call[0] - layer_linears] * 2  # the layers' weights are cast before the block
    assert all(torch.equal(a, b) for a, b in zip(autocast_logits, held_logits))
    after = dict(model.named_parameters())  # restored at exit, fp32 and unchanged
    assert all(after[n].dtype == torch.float32 and torch.equal(after[n], p) for n, p in before.items())


def test_native_bf16_is_read_from_the_cpu_flags_not_from_onednn(tmp_path):
    """oneDNN reports bf16 on any AVX-512 CPU; without avx512_bf16 or AMX it emulates it (about 3x slower than
    fp32 for training), so `auto` must not pick it there."""
    from fastexit_bench.execution import cpu_supports_bf16

    def cpuinfo(flags: str) -> str:
        path = tmp_path / f"cpuinfo-{len(flags)}"
        path.write_text(
            f"processor\t: 0\nmodel name\t: test\nflags\t\t: fpu sse2 {flags}\n\nprocessor\t: 1\n"
        )
        return str(path)

    assert not cpu_supports_bf16(cpuinfo("avx2 avx512f avx512bw avx512_vnni"))  # Ice Lake: emulated
    assert cpu_supports_bf16(cpuinfo("avx512f avx512_bf16"))  # AMD Zen 4, Cooper Lake
    assert cpu_supports_bf16(cpuinfo("avx512f amx_bf16 amx_tile"))  # Sapphire Rapids
