"""``EarlyExitModel``: the embeddings and layers of an installed HF encoder, one exit head per layer.

The encoder's own modules are reused (no copied modeling code); the model runs them one layer at a
time so that training sees every exit and inference can stop early.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from transformers import PreTrainedModel

from fastexit_bench.errors import ModelLoadError
from fastexit_bench.models.backbones import position_limit
from fastexit_bench.models.heads import HEADS, ExitScorer, pool_tokens


def fp32_heads(hidden: Tensor) -> AbstractContextManager:
    """Autocast switched off for a head, where a surrounding block turned it on; nothing otherwise (entering
    and leaving autocast costs tens of microseconds per head, a few per cent of a batch-1 query)."""
    device = hidden.device.type
    return torch.autocast(device, enabled=False) if torch.is_autocast_enabled(device) else nullcontext()


@dataclass
class AllExitsOutput:
    """Every exit's output for one batch.

    Attributes:
        logits: ``[layers, batch, outputs]``; ``logits[k - 1]`` comes from the head after layer k.
        exit_scores: ``[layers, batch]`` learned-exit logits (BERxiT), or None.
    """

    logits: Tensor
    exit_scores: Tensor | None = None


def encoder_layers(backbone: PreTrainedModel) -> list[nn.Module]:
    """The module applied at each layer of a BERT-style encoder, in order.

    BERT, RoBERTa, XLM-R and ELECTRA keep one module per layer in ``encoder.layer``; ALBERT applies
    its shared layer groups ``num_hidden_layers`` times, so the same module appears repeatedly.
    """
    encoder = getattr(backbone, "encoder", None)
    layers = getattr(encoder, "layer", None)
    if isinstance(layers, nn.ModuleList):
        return list(layers)
    groups = getattr(encoder, "albert_layer_groups", None)
    if isinstance(groups, nn.ModuleList):
        count = backbone.config.num_hidden_layers
        return [groups[int(i / (count / len(groups)))] for i in range(count)]
    raise ModelLoadError(
        f"{type(backbone).__name__} has no encoder.layer list; early exit supports BERT-style encoders "
        "(BERT, RoBERTa, XLM-R, ELECTRA, ALBERT)"
    )


SCORER_INPUTS = ("pooled", "cls")


def _pooler_dense(backbone: PreTrainedModel) -> nn.Linear | None:
    """The pooler's Linear (BERT: ``pooler.dense``; ALBERT: ``pooler`` itself), or None without a pooler."""
    pooler = getattr(backbone, "pooler", None)
    return pooler if isinstance(pooler, nn.Linear) else getattr(pooler, "dense", None)


class EarlyExitModel(nn.Module):
    """A backbone with an exit head after each of its layers.

    Args:
        backbone: an ``AutoModel`` loaded with ``attn_implementation="eager"``.
        head: key in :data:`HEADS` ("highway" for DeeBERT/PABEE/BERxiT, "branch" for FastBERT).
        num_outputs: classes, or 1 for regression.
        num_layers: keep only the first k layers (the truncated-k baselines); default all.
        learned_exit: add BERxiT's learning-to-exit scorer, one module shared by all layers.
        dropout: head dropout (highway heads; the branch heads' attention).
        scorer_input: what the scorer reads: ``pooled``, the exit's pooled output (BERxiT), or ``cls``, the
            layer's raw [CLS] (models trained before the suite followed BERxiT here).
        pooling: how pooling heads read a layer, ``cls`` or ``mean`` (``fastexit_bench.pooling``; resolved, not ``auto``).
    """

    def __init__(
        self,
        backbone: PreTrainedModel,
        head: str,
        num_outputs: int,
        *,
        num_layers: int | None = None,
        learned_exit: bool = False,
        dropout: float = 0.1,
        scorer_input: str = "pooled",
        pooling: str = "cls",
    ):
        super().__init__()
        self.config = backbone.config
        self.embeddings = backbone.embeddings
        # ALBERT maps its small embeddings up to the hidden size before the first layer.
        self.embedding_projection = (
            getattr(backbone.encoder, "embedding_hidden_mapping_in", None) or nn.Identity()
        )
        layers = encoder_layers(backbone)
        if num_layers is not None and not 1 <= num_layers <= len(layers):
            raise ModelLoadError(
                f"cannot keep {num_layers} layers of a {len(layers)}-layer backbone; choose 1..{len(layers)}"
            )
        self.layers = nn.ModuleList(layers[:num_layers])
        self.head_name, self.num_outputs = head, num_outputs
        head_cls = HEADS.get(head)
        pooler = _pooler_dense(backbone)
        d = self.config.hidden_size
        if pooling != "cls" and not head_cls.pools:
            raise ModelLoadError(
                f"{head!r} heads read [CLS] after their own attention; pooling {pooling!r} applies "
                "to heads that pool (highway, shared-pooler)"
            )
        poolers: dict[str, nn.Linear | None] = {"pooler": pooler}
        if head_cls.shares_pooler:  # one pooler, from the backbone's, for every head
            poolers = {"shared_pooler": nn.Linear(d, d)}
            if pooler is not None:
                poolers["shared_pooler"].load_state_dict(pooler.state_dict())
        self.heads = nn.ModuleList(
            [head_cls(d, num_outputs, dropout=dropout, pooling=pooling, **poolers) for _ in self.layers]
        )
        self.pooling = pooling
        if scorer_input not in SCORER_INPUTS:
            raise ModelLoadError(f"scorer_input {scorer_input!r} is not one of {', '.join(SCORER_INPUTS)}")
        if learned_exit and scorer_input == "pooled" and not hasattr(head_cls, "features"):
            raise ModelLoadError(
                f"the learned-exit scorer reads an off-ramp's pooled output, which {head!r} heads "
                "do not have; use highway heads"
            )
        self.exit_scorer = ExitScorer(d) if learned_exit else None
        self.scorer_input = scorer_input

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def max_tokens(self) -> int:
        """The longest input its position embeddings cover."""
        return position_limit(self.config, self.embeddings)

    def architecture(self) -> dict[str, int | str]:
        """Sizes that FLOP models need: width, FFN width, attention heads, exits, head type and outputs."""
        return {
            "model_type": self.config.model_type,
            "hidden_size": self.config.hidden_size,
            "intermediate_size": self.config.intermediate_size,
            "num_attention_heads": self.config.num_attention_heads,
            "embedding_size": getattr(self.config, "embedding_size", self.config.hidden_size),
            "num_layers": self.num_layers,
            "head": self.head_name,
            "num_outputs": self.num_outputs,
            "learned_exit": self.exit_scorer is not None,
            "scorer_input": self.scorer_input,
            "pooling": self.pooling,
        }

    def student(self, layers: Sequence[int]) -> EarlyExitModel:
        """A copy that keeps only ``layers`` (0-based, ascending), each with its head, except that the student's
        last exit takes this model's final head: the start of a distilled student. Both share one HF config,
        so the execution settings applied to it (``execution.running``) apply to both."""
        student = copy.deepcopy(self, memo={id(self.config): self.config})
        heads = [student.heads[i] for i in layers[:-1]] + [student.heads[-1]]
        student.layers = nn.ModuleList([student.layers[i] for i in layers])
        student.heads = nn.ModuleList(heads)
        return student

    def start_outputs_at(self, value: float) -> None:
        """Start every exit's output bias at ``value``: a regression model's training-label mean. Exits that
        start near 0 on STS-B's 0-5 scores pull the shared layers towards one constant answer first, and
        PABEE's and BERxiT's joint training never left it (dev Pearson 0.3-0.6 at every exit, where the
        baseline reached 0.84; from the mean, PABEE reaches 0.85)."""
        with torch.no_grad():
            for head in self.heads:
                head.classifier.bias.fill_(value)

    @property
    def encoder_modules(self) -> list[nn.Module]:
        """Everything before the heads: embeddings, the embedding projection and the layers."""
        return [self.embeddings, self.embedding_projection, self.layers]

    @property
    def exits_read_pooled_only(self) -> bool:
        """True when every head and the scorer read only a layer's pooled vector ([CLS] or the token mean), so
        per-layer pooled vectors computed once (:meth:`pooled_states`) can stand in for the tokens."""
        scorer_ok = self.exit_scorer is None or self.scorer_input == "pooled" or self.pooling == "cls"
        return scorer_ok and all(head.pools for head in self.heads)

    def pooled_states(self, states: list[Tensor], mask: Tensor) -> Tensor:
        """``[layers, batch, d]``: each layer's tokens pooled the way its heads pool them."""
        return torch.stack([pool_tokens(hidden, mask, self.pooling) for hidden in states])

    def embed(
        self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Embeddings ``[batch, seq, d]`` and the additive attention mask ``[batch, 1, 1, seq]``."""
        kwargs = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        hidden = self.embedding_projection(self.embeddings(input_ids=input_ids, **kwargs))
        return hidden, self.additive_mask(attention_mask, hidden.dtype)

    @staticmethod
    def additive_mask(attention_mask: Tensor, dtype: torch.dtype) -> Tensor:
        """``[batch, 1, 1, seq]``: 0 where a token may be attended to, the dtype's minimum at padding."""
        return (1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min

    def run_layer(self, index: int, hidden: Tensor, additive_mask: Tensor) -> Tensor:
        """Layer ``index`` (0-based) on ``hidden``."""
        out = self.layers[index](hidden, additive_mask)
        return out[0] if isinstance(out, tuple) else out

    def encode(
        self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None
    ) -> list[Tensor]:
        """Hidden states ``[batch, seq, d]`` after each layer."""
        hidden, additive = self.embed(input_ids, attention_mask, token_type_ids)
        states = []
        for index in range(self.num_layers):
            hidden = self.run_layer(index, hidden, additive)
            states.append(hidden)
        return states

    def head_logits(self, index: int, hidden: Tensor, mask: Tensor) -> Tensor:
        """Head ``index`` on one layer's hidden states, in fp32 even under autocast: losses and the logits
        exit policies read keep full precision (the heads are a small share of the compute)."""
        with fp32_heads(hidden):
            return self.heads[index](hidden.float(), mask)

    def layer_and_head(
        self, index: int, hidden: Tensor, additive_mask: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Layer ``index`` and its head's logits in one call: what inference runs at each layer for a policy
        that reads every head, and one graph under a compiled runtime (a segment call per layer, not two)."""
        hidden = self.run_layer(index, hidden, additive_mask)
        return hidden, self.head_logits(index, hidden, mask)

    def exit_score(self, index: int, hidden: Tensor, mask: Tensor) -> Tensor:
        """BERxiT's learned-exit logit ``[batch]`` for layer ``index``'s hidden states, in fp32."""
        with fp32_heads(hidden):
            hidden = hidden.float()
            features = (
                self.heads[index].features(hidden, mask) if self.scorer_input == "pooled" else hidden[:, 0]
            )
            return self.exit_scorer(features)

    def exit_output(self, index: int, hidden: Tensor, mask: Tensor) -> tuple[Tensor, Tensor | None]:
        """Head ``index``'s logits and the learned-exit logit (or None) for one layer's hidden states."""
        score = self.exit_score(index, hidden, mask) if self.exit_scorer is not None else None
        return self.head_logits(index, hidden, mask), score

    def exits(self, states: list[Tensor], mask: Tensor, last_only: bool = False) -> AllExitsOutput:
        """Every head on its layer's hidden states (``last_only``: the last head alone, ``logits[0]``); ``mask``
        is ``[batch, seq]`` with True on real tokens."""
        first = len(states) - 1 if last_only else 0
        outputs = [self.exit_output(index, states[index], mask) for index in range(first, len(states))]
        scores = [score for _, score in outputs if score is not None]
        return AllExitsOutput(
            logits=torch.stack([logits for logits, _ in outputs]),
            exit_scores=torch.stack(scores) if scores else None,
        )

    def exits_on_pooled(self, pooled: Tensor, last_only: bool = False) -> AllExitsOutput:
        """Every head on cached per-layer pooled vectors ``[layers, batch, d]`` (:meth:`pooled_states`): each is
        a one-token sequence, whose [CLS] and mean are the vector itself."""
        ones = torch.ones(pooled.shape[1], 1, dtype=torch.bool, device=pooled.device)
        return self.exits(list(pooled.unsqueeze(2)), ones, last_only)

    def final_logits(
        self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None
    ) -> Tensor:
        """The last exit's logits only (a distillation teacher's targets)."""
        states = self.encode(input_ids, attention_mask, token_type_ids)
        return self.head_logits(self.num_layers - 1, states[-1], attention_mask.bool())

    def forward_all(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        token_type_ids: Tensor | None = None,
        last_only: bool = False,
    ) -> AllExitsOutput:
        """Run all layers and every head (training and full evaluation), or only the last head (a training
        stage whose loss reads nothing else)."""
        return self.exits(
            self.encode(input_ids, attention_mask, token_type_ids), attention_mask.bool(), last_only
        )
