"""EarlyExitModel on tiny random BERT configs: exits equal a manual forward through HF's own model."""

import pytest
import torch
from transformers import BertConfig, BertModel

from fastexit_bench.errors import ModelLoadError
from fastexit_bench.models.early_exit import EarlyExitModel
from fastexit_bench.models.heads import HEADS


def tiny_backbone(layers: int = 3) -> BertModel:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=37,
        attn_implementation="eager",
    )
    return BertModel(config).eval()


def batch():
    torch.manual_seed(1)
    ids = torch.randint(5, 99, (4, 7))
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0  # padded rows must not change real tokens' results
    mask[3, 2:] = 0
    return ids, mask


@pytest.mark.parametrize("head", HEADS.names())
def test_layer_k_logits_equal_manual_forward(head):
    backbone = tiny_backbone()
    model = EarlyExitModel(backbone, head, num_outputs=3).eval()
    ids, mask = batch()
    with torch.no_grad():
        out = model.forward_all(ids, mask)
        states = model.encode(ids, mask)
        reference = backbone(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    assert out.logits.shape == (3, 4, 3)
    for k in range(1, 4):
        manual = model.heads[k - 1](reference[k], mask.bool())
        torch.testing.assert_close(out.logits[k - 1], manual, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(states[k - 1], reference[k], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_cached_pooled_features_give_the_same_exits_for_pooling_heads(pooling):
    model = EarlyExitModel(
        tiny_backbone(), "highway", num_outputs=3, learned_exit=True, pooling=pooling
    ).eval()
    assert model.exits_read_pooled_only
    assert not EarlyExitModel(tiny_backbone(), "branch", num_outputs=3).exits_read_pooled_only
    ids, mask = batch()
    with torch.no_grad():
        full = model.forward_all(ids, mask)
        cached = model.exits_on_pooled(model.pooled_states(model.encode(ids, mask), mask.bool()))
    torch.testing.assert_close(cached.logits, full.logits)
    torch.testing.assert_close(cached.exit_scores, full.exit_scores)


@pytest.mark.parametrize("head", ["highway", "shared-pooler"])
def test_mean_pooling_heads_read_the_mean_of_real_tokens(head):
    model = EarlyExitModel(tiny_backbone(), head, num_outputs=2, pooling="mean").eval()
    ids, mask = batch()
    with torch.no_grad():
        states = model.encode(ids, mask)
        logits = model.forward_all(ids, mask).logits
        for k, hidden in enumerate(states):
            real = mask[:, :, None].float()
            mean = (hidden * real).sum(1) / real.sum(1)
            expected = model.heads[k].classifier(torch.tanh(model.heads[k].pooler(mean)))
            torch.testing.assert_close(logits[k], expected)
        # padding changes nothing: row 3 alone, cut to its two real tokens
        alone = model.forward_all(ids[3:4, :2], mask[3:4, :2]).logits[:, 0]
    torch.testing.assert_close(alone, logits[:, 3])
    assert model.architecture()["pooling"] == "mean"


def test_branch_heads_refuse_mean_pooling():
    with pytest.raises(ModelLoadError, match="read \\[CLS\\] after their own attention"):
        EarlyExitModel(tiny_backbone(), "branch", num_outputs=2, pooling="mean")


def test_truncated_model_keeps_the_first_k_layers():
    backbone = tiny_backbone()
    model = EarlyExitModel(backbone, "highway", num_outputs=2, num_layers=2)
    assert model.num_layers == 2 and len(model.heads) == 2
    assert model.layers[1] is backbone.encoder.layer[1]
    with pytest.raises(ModelLoadError, match="cannot keep 4 layers of a 3-layer backbone"):
        EarlyExitModel(backbone, "highway", num_outputs=2, num_layers=4)


def test_padding_does_not_change_an_example():
    model = EarlyExitModel(tiny_backbone(), "branch", num_outputs=2).eval()
    ids, mask = batch()
    with torch.no_grad():
        batched = model.forward_all(ids, mask).logits[:, 3]
        alone = model.forward_all(ids[3:4, :2], mask[3:4, :2]).logits[:, 0]
    torch.testing.assert_close(batched, alone, rtol=1e-5, atol=1e-5)


def test_heads_are_separate_modules_and_highway_starts_from_the_pooler():
    backbone = tiny_backbone()
    model = EarlyExitModel(backbone, "highway", num_outputs=2, learned_exit=True)
    assert len({id(h) for h in model.heads}) == model.num_layers == 3
    assert isinstance(model.exit_scorer, torch.nn.Module)  # BERxiT: one scorer shared by all layers
    for head in model.heads:
        torch.testing.assert_close(head.pooler.weight, backbone.pooler.dense.weight)
        assert head.pooler.weight.data_ptr() != backbone.pooler.dense.weight.data_ptr()
    ids, mask = batch()
    assert model.forward_all(ids, mask).exit_scores.shape == (3, 4)


def test_pabee_heads_share_one_pooler_from_the_backbone():
    backbone = tiny_backbone()
    separate = EarlyExitModel(backbone, "highway", num_outputs=2)
    shared = EarlyExitModel(backbone, "shared-pooler", num_outputs=2)
    assert (
        len({id(h.pooler) for h in shared.heads}) == 1 and len({id(h.classifier) for h in shared.heads}) == 3
    )
    torch.testing.assert_close(shared.heads[0].pooler.weight, backbone.pooler.dense.weight)
    d = backbone.config.hidden_size
    separate_count, shared_count = (sum(p.numel() for p in m.parameters()) for m in (separate, shared))
    assert separate_count - shared_count == (separate.num_layers - 1) * (
        d * d + d
    )  # a shared one counts once


def test_berxit_scorer_reads_each_off_ramps_pooled_output():
    model = EarlyExitModel(tiny_backbone(), "highway", num_outputs=2, learned_exit=True).eval()
    ids, mask = batch()
    with torch.no_grad():
        states = model.encode(ids, mask)
        scores = model.forward_all(ids, mask).exit_scores
        for k, hidden in enumerate(states):
            pooled = torch.tanh(model.heads[k].pooler(hidden[:, 0]))
            torch.testing.assert_close(scores[k], model.exit_scorer.score(pooled).squeeze(-1))
    with pytest.raises(ModelLoadError, match="pooled output"):
        EarlyExitModel(tiny_backbone(), "branch", num_outputs=2, learned_exit=True)


def test_regression_has_one_output():
    model = EarlyExitModel(tiny_backbone(2), "highway", num_outputs=1)
    ids, mask = batch()
    assert model.forward_all(ids, mask).logits.shape == (2, 4, 1)


def tiny_encoder(kind: str):
    """Tiny random RoBERTa and ALBERT (two layer groups shared over four layers, 16-wide embeddings)."""
    from transformers import AlbertConfig, AlbertModel, RobertaConfig, RobertaModel

    torch.manual_seed(0)
    common = {
        "vocab_size": 99,
        "hidden_size": 32,
        "num_attention_heads": 2,
        "intermediate_size": 37,
        "attn_implementation": "eager",
    }
    if kind == "roberta":
        return RobertaModel(RobertaConfig(num_hidden_layers=3, pad_token_id=1, **common)).eval()
    return AlbertModel(
        AlbertConfig(num_hidden_layers=4, num_hidden_groups=2, embedding_size=16, **common)
    ).eval()


@pytest.mark.parametrize("kind", ["roberta", "albert"])
def test_other_encoders_layer_k_equals_hf_hidden_state_k(kind):
    backbone = tiny_encoder(kind)
    model = EarlyExitModel(backbone, "highway", num_outputs=2).eval()
    ids, mask = batch()
    with torch.no_grad():
        states = model.encode(ids, mask)
        reference = backbone(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    assert len(states) == len(reference) - 1
    for k, state in enumerate(states, start=1):
        torch.testing.assert_close(state, reference[k], rtol=1e-5, atol=1e-5)
    if kind == "albert":  # shared groups: layers 1-2 use group 0, layers 3-4 group 1; pooler is a bare Linear
        assert model.layers[0] is model.layers[1] is not model.layers[2]
        torch.testing.assert_close(model.heads[0].pooler.weight, backbone.pooler.weight)
