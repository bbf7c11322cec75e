"""``EarlyExitModel``: the embeddings and layers of an installed HF encoder, one exit head per layer.

The encoder's own modules are reused (no copied modeling code); the model runs them one layer at a
time so that training sees every exit and inference can stop early.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from transformers import PreTrainedModel

from fastexit_bench.errors import ModelLoadError
from fastexit_bench.model.heads import HEADS, ExitScorer


@dataclass
class AllExitsOutput:
    """Every exit's output for one batch.

    Attributes:
        logits: ``[layers, batch, outputs]``; ``logits[k - 1]`` comes from the head after layer k.
        exit_scores: ``[layers, batch]`` learned-exit logits (BERxiT), or None.
        cls_states: ``[layers, batch, d]`` hidden [CLS] after each layer, when asked for (feature caching).
    """

    logits: Tensor
    exit_scores: Tensor | None = None
    cls_states: Tensor | None = None


def encoder_layers(backbone: PreTrainedModel) -> nn.ModuleList:
    """The per-layer modules of a BERT-style encoder (BERT, RoBERTa, XLM-R, ELECTRA, ...)."""
    layers = getattr(getattr(backbone, "encoder", None), "layer", None)
    if not isinstance(layers, nn.ModuleList):
        raise ModelLoadError(
            f"{type(backbone).__name__} has no encoder.layer list; early exit supports BERT-style encoders "
            "(BERT, RoBERTa, XLM-R, ELECTRA)"
        )
    return layers


class EarlyExitModel(nn.Module):
    """A backbone with an exit head after each of its L layers.

    Args:
        backbone: an ``AutoModel`` loaded with ``attn_implementation="eager"``.
        head: key in :data:`HEADS` ("highway" for DeeBERT/PABEE, "branch" for FastBERT).
        num_outputs: classes, or 1 for regression.
        learned_exit: add a BERxiT exit scorer after every layer.
        dropout: head dropout (highway heads).
    """

    def __init__(self, backbone: PreTrainedModel, head: str, num_outputs: int, *, learned_exit: bool = False,
                 dropout: float = 0.1):
        super().__init__()
        self.config = backbone.config
        self.embeddings = backbone.embeddings
        self.layers = encoder_layers(backbone)
        head_cls = HEADS.get(head)
        pooler = getattr(getattr(backbone, "pooler", None), "dense", None)
        d = self.config.hidden_size
        self.heads = nn.ModuleList(
            [head_cls(d, num_outputs, dropout=dropout, pooler=pooler) for _ in self.layers]
        )
        self.exit_scorers = nn.ModuleList([ExitScorer(d) for _ in self.layers]) if learned_exit else None

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def embed(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None
              ) -> tuple[Tensor, Tensor]:
        """Embeddings ``[batch, seq, d]`` and the additive attention mask ``[batch, 1, 1, seq]``."""
        kwargs = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        hidden = self.embeddings(input_ids=input_ids, **kwargs)
        additive = (1.0 - attention_mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
        return hidden, additive

    def run_layer(self, index: int, hidden: Tensor, additive_mask: Tensor) -> Tensor:
        """Layer ``index`` (0-based) on ``hidden``."""
        out = self.layers[index](hidden, additive_mask)
        return out[0] if isinstance(out, tuple) else out

    def forward_all(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None,
                    keep_cls: bool = False) -> AllExitsOutput:
        """Run all layers and every head (training and cached evaluation)."""
        hidden, additive = self.embed(input_ids, attention_mask, token_type_ids)
        mask = attention_mask.bool()
        logits, scores, cls_states = [], [], []
        for index in range(self.num_layers):
            hidden = self.run_layer(index, hidden, additive)
            logits.append(self.heads[index](hidden, mask))
            if self.exit_scorers is not None:
                scores.append(self.exit_scorers[index](hidden))
            if keep_cls:
                cls_states.append(hidden[:, 0])
        return AllExitsOutput(
            logits=torch.stack(logits),
            exit_scores=torch.stack(scores) if scores else None,
            cls_states=torch.stack(cls_states) if keep_cls else None,
        )
