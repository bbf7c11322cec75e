"""How exit heads pool a layer's token states into one vector: ``cls`` (the first token, as BERT was
pretrained) or ``mean`` (the mean over real tokens, as sentence encoders such as all-MiniLM-L6-v2 and
multilingual-e5 were). ``auto`` takes the backbone's own (``models.backbones``). Importing this needs no torch.

Heads that pool: DeeBERT's highways, PABEE's classifiers, BERxiT's off-ramps (and so its exit module, which
reads their pooled output) and the truncated / distilled baselines. FastBERT's branch head is left as
published: its own self-attention mixes all tokens before it reads [CLS].
"""

from __future__ import annotations

from fastexit_bench.errors import FastExitError

POOLINGS = ("cls", "mean")
POOLING_CHOICES = (*POOLINGS, "auto")
DEFAULT_POOLING = "auto"
LABELS = {"cls": "[CLS]", "mean": "mean-pooled"}


def resolve_pooling(requested: str, backbone_pooling: str, head_pools: bool) -> str:
    """The pooling a model is built with: ``requested``, or the backbone's for ``auto``; heads that do not pool
    (FastBERT's branch) always read [CLS] and refuse an explicit ``mean``."""
    if requested not in POOLING_CHOICES:
        raise FastExitError(f"pooling {requested!r} is not one of {', '.join(POOLING_CHOICES)}")
    if not head_pools:
        if requested == "mean":
            raise FastExitError(
                "pooling 'mean' applies to heads that pool (highway, shared-pooler); FastBERT's "
                "branch head attends over all tokens and reads [CLS]: use pooling auto or cls"
            )
        return "cls"
    return backbone_pooling if requested == "auto" else requested
