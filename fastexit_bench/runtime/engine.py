"""The early-exit inference engine: runs a model layer by layer and really stops.

Batched inference compacts the batch: examples that exit are removed, so later layers run only on the
rest, and trailing padding no remaining example needs is trimmed. Heads run only as the policy
needs them (``ExitPolicy.reads``): every layer's head for confidence policies, the learned-exit
scorer for BERxiT (one head at the exit), nothing but the exit head for static truncation.
Decisions call the same :meth:`ExitPolicy.exit_mask` as the sweep, on the layers seen so far.

Decisions can be *replayed*: given recorded outputs (an artefact's rows for the batch), the engine
decides on those instead of its own heads' outputs, while running the same layers and heads. Compute
does not depend on weight values, so this times a model of the same architecture with other (e.g.
random) weights at the recorded model's exits, where the trained weights cannot be moved.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from fastexit_bench.analysis.artifact import LayerOutputs
from fastexit_bench.analysis.policies import ExitPolicy, policy_errors
from fastexit_bench.models.early_exit import EarlyExitModel
from fastexit_bench.runtime.batches import TokenBatches, evaluation_batches, input_order


@dataclass
class EngineOutput:
    """``logits``: ``[batch, outputs]`` of each example's exit head; ``exit_layers``: 1-based."""

    logits: Tensor
    exit_layers: np.ndarray


def run_step(
    model: EarlyExitModel, reads: str, k: int, hidden: Tensor, additive: Tensor, mask: Tensor
) -> tuple[Tensor, Tensor | None, np.ndarray | None]:
    """Layer ``k`` (0-based) and what a policy reading ``reads`` needs from it: the new hidden states, the
    head's logits (with the layer in one call) or BERxiT's exit scores (on the CPU), or neither."""
    if reads == "logits":
        hidden, logits = model.layer_and_head(k, hidden, additive, mask)
        return hidden, logits, None
    hidden = model.run_layer(k, hidden, additive)
    scores = model.exit_score(k, hidden, mask).cpu().numpy() if reads == "exit_scores" else None
    return hidden, None, scores


def leaving_after(policy: ExitPolicy, value: float, seen: LayerOutputs, layers: int) -> np.ndarray:
    """Which examples leave after the last layer in ``seen`` (all of them at the model's last layer)."""
    if seen.num_layers == layers:
        return np.ones(seen.logits.shape[1], dtype=bool)
    with policy_errors(policy, value):
        return np.asarray(policy.exit_mask(seen, value), dtype=bool)[seen.num_layers - 1]


def exit_logits(
    model: EarlyExitModel, k: int, hidden: Tensor, mask: Tensor, logits: Tensor | None, leaving: np.ndarray
) -> Tensor:
    """The exit head's logits of the leaving examples: those computed already, or head ``k`` on them alone."""
    rows = torch.from_numpy(np.flatnonzero(leaving)).to(hidden.device)
    return logits[rows] if logits is not None else model.head_logits(k, hidden[rows], mask[rows])


class EarlyExitEngine:
    """Early-exit inference for one model, policy and parameter value."""

    def __init__(self, model: EarlyExitModel, policy: ExitPolicy, value: float, task: str):
        self.model, self.policy, self.value, self.task = model.eval(), policy, value, task

    @torch.inference_mode()
    def run(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        token_type_ids: Tensor | None = None,
        labels: np.ndarray | None = None,
        recorded: LayerOutputs | None = None,
    ) -> EngineOutput:
        """One batch; ``labels`` only for the oracle policy; ``recorded``: this batch's outputs to decide on
        instead of the live heads' (replay, see the module docstring)."""
        model, reads = self.model, self.policy.reads
        layers, batch = model.num_layers, input_ids.shape[0]
        hidden, additive = model.embed(input_ids, attention_mask, token_type_ids)
        mask = attention_mask.bool()
        seen_logits = np.zeros((layers, batch, model.num_outputs), dtype=np.float32)
        seen_scores = np.zeros((layers, batch), dtype=np.float32) if reads == "exit_scores" else None
        final = torch.empty(batch, model.num_outputs, device=hidden.device, dtype=torch.float32)
        exit_layers = np.zeros(batch, dtype=np.int64)
        active = np.arange(batch)
        decide_on = (
            recorded if recorded is not None else LayerOutputs(seen_logits, self.task, seen_scores, labels)
        )
        for k in range(layers):
            hidden, logits, scores = run_step(model, reads, k, hidden, additive, mask)
            if scores is not None:
                seen_scores[k, active] = scores
            if logits is not None:
                seen_logits[k, active] = logits.cpu().numpy()
            leaving = leaving_after(self.policy, self.value, decide_on.select(active, k + 1), layers)
            if leaving.any():
                final[torch.from_numpy(active[leaving]).to(hidden.device)] = exit_logits(
                    model, k, hidden, mask, logits, leaving
                )
                exit_layers[active[leaving]] = k + 1
                keep = torch.from_numpy(np.flatnonzero(~leaving)).to(hidden.device)
                active = active[~leaving]
                if len(active) == 0:
                    break
                hidden, additive, mask = hidden[keep], additive[keep], mask[keep]
                width = int(mask.sum(1).max())  # right padding no remaining example needs
                hidden, additive, mask = hidden[:, :width], additive[..., :width], mask[:, :width]
        return EngineOutput(final, exit_layers)

    def run_source(
        self,
        source: TokenBatches,
        batch_size: int,
        length_bucketed: bool = False,
        replay: LayerOutputs | None = None,
    ) -> EngineOutput:
        """Every example of ``source`` in batches (sorted by length when ``length_bucketed``), in input order;
        ``replay``: recorded outputs of every example of ``source`` to decide on."""
        batches = evaluation_batches(source, batch_size, by_length=length_bucketed)
        logits, exits = [], []
        for indices in batches:
            batch = source.batch(indices)
            labels = batch.labels.cpu().numpy() if batch.labels is not None else None
            recorded = replay.select(indices.numpy()) if replay is not None else None
            out = self.run(**batch.inputs, labels=labels, recorded=recorded)
            logits.append(out.logits)
            exits.append(out.exit_layers)
        inverse, all_logits = input_order(batches), torch.cat(logits)
        return EngineOutput(all_logits[inverse.to(all_logits.device)], np.concatenate(exits)[inverse.numpy()])
