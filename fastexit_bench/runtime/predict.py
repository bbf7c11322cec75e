"""Every exit's outputs on every example of a source: the full-depth pass behind artefacts and dev scores."""

from __future__ import annotations

import logging

import torch
from tqdm.auto import tqdm

from fastexit_bench.analysis.artifact import LayerOutputs
from fastexit_bench.models.early_exit import EarlyExitModel
from fastexit_bench.progress import ProgressLog
from fastexit_bench.runtime.batches import CachedPooledFeatures, TokenBatches, evaluation_batches, input_order
from fastexit_bench.runtime.config import EVAL_BATCH_SIZE

log = logging.getLogger(__name__)


@torch.no_grad()
def predict(
    model: EarlyExitModel,
    source: TokenBatches | CachedPooledFeatures,
    task: str,
    batch_size: int = EVAL_BATCH_SIZE,
    what: str = "every exit",
) -> LayerOutputs:
    """Run every exit on every example of ``source`` (eval mode, no dropout; batches grouped by length),
    results in input order, with a progress bar in a terminal and a progress line a minute in logs (``what``
    names the work). Runs under the caller's execution context (``execution.running``)."""
    was_training = model.training
    model.eval()
    logits, scores, labels = [], [], []
    batches = evaluation_batches(source, batch_size)
    lines = ProgressLog(log, what, len(batches))
    for indices in tqdm(batches, desc=what, unit="batch", leave=False, disable=None):
        lines.update(len(indices))
        batch = source.batch(indices)
        out = source.exits(model, batch)
        logits.append(out.logits.float().cpu())
        if out.exit_scores is not None:
            scores.append(out.exit_scores.float().cpu())
        if batch.labels is not None:
            labels.append(batch.labels.cpu())
    model.train(was_training)
    inverse = input_order(batches)
    return LayerOutputs(
        logits=torch.cat(logits, dim=1)[:, inverse].numpy(),
        task=task,
        exit_scores=torch.cat(scores, dim=1)[:, inverse].numpy() if scores else None,
        labels=torch.cat(labels)[inverse].numpy() if labels else None,
    )
