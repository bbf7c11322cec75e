"""fvcore counts per component: attention included, analytic agreement, FastBERT's published number."""

import numpy as np
import pytest
import torch
from fvcore.nn import FlopCountAnalysis
from transformers import BertConfig, BertModel

from fastexit_bench.analysis.flops import AnalyticFlops, FastBertConventionFlops
from fastexit_bench.models.early_exit import EarlyExitModel
from fastexit_bench.models.tracing import count_module, fastbert_convention, measure_fvcore
from tests.test_early_exit_model import tiny_backbone


@pytest.fixture(scope="module")
def bert_base():
    """Randomly initialised BERT-base (no weights needed to count)."""
    torch.manual_seed(0)
    return EarlyExitModel(BertModel(BertConfig(attn_implementation="eager")), "branch", num_outputs=2).eval()


def test_fvcore_layer_equals_analytic_count_plus_layernorm_for_bert_base(bert_base):
    n, d, d_ff = 128, 768, 3072
    by_op, skipped = count_module(bert_base.layers[0], (torch.zeros(1, n, d), torch.zeros(1, 1, 1, n)))
    assert by_op["matmul"] == 2 * n * n * d  # attention scores and context: counted, not skipped
    layer_norm = 2 * 5 * n * d  # fvcore: 5 ops per element, two LayerNorms per layer
    assert sum(by_op.values()) == 4 * n * d * d + 2 * n * n * d + 2 * n * d * d_ff + layer_norm
    assert "aten::softmax" in skipped and "aten::gelu" in skipped
    analytic = AnalyticFlops(bert_base.architecture()).layer(np.array([n]))
    assert sum(by_op.values()) - layer_norm == analytic


def test_fastbert_convention_reproduces_the_published_bert_base_baseline(bert_base):
    assert fastbert_convention(bert_base) == 21_785_247_744
    convention = FastBertConventionFlops(bert_base.architecture())
    assert (2 * convention.full_depth(12, np.array([7.0, 300.0]))).tolist() == [
        21_785_247_744
    ] * 2  # length-free


def test_fastbert_convention_of_an_early_exit_counts_every_branch_on_the_way(bert_base):
    convention = FastBertConventionFlops(bert_base.architecture())
    layer, branch = convention.layer(np.array([128.0])), convention.head(np.array([128.0]))
    cost = convention.per_example(np.array([1, 3]), np.array([20, 20]), "logits")
    assert cost.tolist() == [(layer + branch).item(), (3 * layer + 3 * branch).item()]


def test_sdpa_attention_is_counted_through_our_handle():
    torch.manual_seed(0)
    config = BertConfig(hidden_size=64, num_hidden_layers=1, num_attention_heads=2, intermediate_size=128)
    n = 16
    inputs = (torch.zeros(1, n, 64), torch.zeros(1, 1, 1, n))
    eager = BertModel(BertConfig(**config.to_dict(), attn_implementation="eager")).encoder.layer[0].eval()
    sdpa = BertModel(BertConfig(**config.to_dict(), attn_implementation="sdpa")).encoder.layer[0].eval()
    plain = FlopCountAnalysis(sdpa, inputs)
    plain.unsupported_ops_warnings(False)
    plain.total()
    if "aten::scaled_dot_product_attention" not in plain.unsupported_ops():
        pytest.skip("this torch lowers sdpa to ops fvcore counts")
    assert plain.total() < sum(count_module(eager, inputs)[0].values())  # what fvcore alone silently drops
    assert sum(count_module(sdpa, inputs)[0].values()) == sum(count_module(eager, inputs)[0].values())


def test_measured_polynomial_equals_a_direct_count_at_any_length():
    model = EarlyExitModel(
        tiny_backbone(), "branch", num_outputs=3, learned_exit=True, scorer_input="cls"
    ).eval()
    flops = measure_fvcore(model)
    n = 100
    layer, _ = count_module(model.layers[0], (torch.zeros(1, n, 32), torch.zeros(1, 1, 1, n)))
    head, _ = count_module(model.heads[0], (torch.zeros(1, n, 32), torch.ones(1, n, dtype=torch.bool)))
    assert flops.layer(np.array([n]))[0] == pytest.approx(sum(layer.values()))
    assert flops.head(np.array([n]))[0] == pytest.approx(sum(head.values()))
    assert flops.scorer(np.array([n]))[0] == 32
    assert flops.source == "fvcore" and "aten::softmax" in flops.skipped_ops["layer"]


def test_the_learned_exit_score_counts_the_pooler_it_reads():
    """BERxiT's scorer reads the off-ramp's pooled output: each score costs the pooler (d x d) and d."""
    model = EarlyExitModel(tiny_backbone(), "highway", num_outputs=3, learned_exit=True).eval()
    n = np.array([20])
    assert measure_fvcore(model).scorer(n)[0] == 32 * 32 + 32
    assert AnalyticFlops(model.architecture()).scorer(n)[0] == 32 * 32 + 32


def test_mean_pooling_heads_count_their_reduction_over_tokens():
    """A mean-pooled off-ramp sums n x d token states (and n mask entries) before its pooler: fvcore and the
    analytic model both charge n x (d + 1) more than [CLS] pooling, per head and per learned-exit score."""
    n, d = np.array([20.0]), 32
    cls = EarlyExitModel(tiny_backbone(), "highway", num_outputs=3, learned_exit=True).eval()
    mean = EarlyExitModel(tiny_backbone(), "highway", num_outputs=3, learned_exit=True, pooling="mean").eval()
    measured_cls, measured_mean = measure_fvcore(cls), measure_fvcore(mean)
    assert measured_mean.head(n)[0] - measured_cls.head(n)[0] == pytest.approx(20 * (d + 1))
    assert measured_mean.scorer(n)[0] - measured_cls.scorer(n)[0] == pytest.approx(20 * (d + 1))
    analytic_cls, analytic_mean = AnalyticFlops(cls.architecture()), AnalyticFlops(mean.architecture())
    assert analytic_mean.head(n)[0] - analytic_cls.head(n)[0] == 20 * (d + 1)
    assert measured_mean.head(n)[0] == pytest.approx(analytic_mean.head(n)[0])
