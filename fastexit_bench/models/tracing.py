"""fvcore counts of an early-exit model's components, as exact quadratics in the sequence length.

Each component is traced on its own (embeddings, one layer, one head, the learned-exit scorer) with eager
attention; a handle for ``aten::scaled_dot_product_attention`` is registered too, so attention matmuls are
never skipped, and one for ``aten::sum``, so a mean-pooling head's reduction over tokens is counted. The ops fvcore does not count (element-wise adds, softmax, GELU) are reported. The result,
:class:`~fastexit_bench.analysis.flops.PolynomialFlops`, is stored in the evaluation artefact so that the
analysis never needs torch.
"""

from __future__ import annotations

from math import prod
from typing import Any

import numpy as np
import torch
from torch import nn

from fastexit_bench.analysis.flops import PolynomialFlops
from fastexit_bench.errors import FastExitError
from fastexit_bench.execution import attention


def _sdpa_macs(inputs: list[Any], outputs: list[Any]) -> int:
    """fvcore handle for ``aten::scaled_dot_product_attention``: QK^T and AV, each q_rows x keys x dim."""
    from fvcore.nn.jit_handles import get_shape

    query, key = get_shape(inputs[0]), get_shape(inputs[1])
    return 2 * prod(query[:-1]) * key[-2] * query[-1]


def _reduction_macs(inputs: list[Any], outputs: list[Any]) -> int:
    """fvcore handle for ``aten::sum``: one accumulate per input element (a mean-pooling head sums its n x d
    token states; counted so that pooling by mean costs what it does)."""
    from fvcore.nn.jit_handles import get_shape

    return prod(get_shape(inputs[0]))


class _Embed(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model.embedding_projection(self.model.embeddings(input_ids=input_ids))


class _Score(nn.Module):
    """The learned-exit score of one layer, pooled features included when the scorer reads them."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.model.exit_score(0, hidden, mask)


def count_module(module: nn.Module, inputs: tuple) -> tuple[dict[str, int], list[str]]:
    """fvcore MACs per operator and the ops it skipped, for one call of ``module`` (fp32: autocast is off)."""
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(module, inputs).set_op_handle(
        "aten::scaled_dot_product_attention", _sdpa_macs, "aten::sum", _reduction_macs
    )
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    with torch.autocast(inputs[0].device.type, enabled=False):
        return dict(analysis.by_operator()), sorted(analysis.unsupported_ops())


def component_inputs(model, n: int) -> dict[str, tuple[nn.Module, tuple]]:
    """Each component of ``model`` with batch-1 inputs of ``n`` tokens."""
    d, device = model.config.hidden_size, next(model.parameters()).device
    hidden, mask = torch.zeros(1, n, d, device=device), torch.ones(1, n, dtype=torch.bool, device=device)
    parts = {
        "embeddings": (_Embed(model), (torch.zeros(1, n, dtype=torch.long, device=device),)),
        "layer": (model.layers[0], (hidden, torch.zeros(1, 1, 1, n, device=device))),
        "head": (model.heads[0], (hidden, mask)),
    }
    if model.exit_scorer is not None:
        parts["scorer"] = (_Score(model), (hidden, mask))
    return parts


@torch.no_grad()
def measure_fvcore(model, lengths: tuple[int, int, int] = (16, 32, 64), check: int = 48) -> PolynomialFlops:
    """Trace each component at three lengths, fit the exact quadratic, and verify it at ``check``."""
    was_training = model.training
    model.eval()
    counts: dict[str, list[int]] = {}
    skipped: dict[str, set[str]] = {}
    with attention(model.config, "eager"):  # whatever the model runs with, count the eager fp32 components
        for n in (*lengths, check):
            for name, (module, inputs) in component_inputs(model, n).items():
                by_op, unsupported = count_module(module, inputs)
                counts.setdefault(name, []).append(sum(by_op.values()))
                skipped.setdefault(name, set()).update(unsupported)
    model.train(was_training)
    coefficients = {}
    for name, values in counts.items():
        fit = np.polyfit(lengths, values[:3], 2)
        if not np.isclose(np.polyval(fit, check), values[3], rtol=1e-9, atol=0.5):
            raise FastExitError(
                f"fvcore count of {name} is not quadratic in length "
                f"({values[3]} at n={check} vs fit {np.polyval(fit, check):.0f})"
            )
        coefficients[name] = [round(float(c), 6) for c in fit]
    coefficients.setdefault("scorer", [0.0, 0.0, 0.0])
    return PolynomialFlops(coefficients, "fvcore", {k: sorted(v) for k, v in skipped.items()})


@torch.no_grad()
def fastbert_convention(model, length: int = 128) -> int:
    """FastBERT's published convention: 2 x MACs of Linear layers only, input padded to ``length``,
    over every layer and the final classifier minus its label projection (the part FastBERT's
    21,785,247,744 for BERT-base leaves out: 128 x classes MACs)."""
    with attention(model.config, "eager"):
        layer, _ = count_module(model.layers[0], component_inputs(model, length)["layer"][1])
        head_module, head_inputs = component_inputs(model, length)["head"]
        head, _ = count_module(head_module, head_inputs)
    label_projection = head_module.classifier.in_features * head_module.classifier.out_features
    return 2 * (model.num_layers * layer.get("linear", 0) + head.get("linear", 0) - label_projection)
