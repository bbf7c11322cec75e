"""Per-exit losses of the early-exit papers, as pure functions of ``[layers, batch, outputs]`` logits, and
the named stage objectives recipes refer to (:data:`LOSSES`): ``objective(outputs, labels, task)``, and
``teacher=`` the teacher's final logits in a stage that distils (``Stage.distils``)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from fastexit_bench.models.early_exit import AllExitsOutput
from fastexit_bench.registry import Registry


def per_exit_task_loss(logits: Tensor, labels: Tensor, task: str) -> Tensor:
    """Task loss of every exit, shape ``[layers]``: cross-entropy, or MSE on one output for regression."""
    if task == "regression":
        return ((logits.squeeze(-1) - labels.float()) ** 2).mean(dim=1)
    layers, batch, classes = logits.shape
    losses = F.cross_entropy(logits.reshape(-1, classes), labels.repeat(layers), reduction="none")
    return losses.view(layers, batch).mean(dim=1)


def deebert_offramp_loss(per_exit: Tensor) -> Tensor:
    """DeeBERT stage 2: sum of the losses of off-ramps 1..L-1 (the final classifier is frozen)."""
    return per_exit[:-1].sum()


def pabee_loss(per_exit: Tensor) -> Tensor:
    """PABEE joint training: ``sum_i i * L_i / sum_i i`` over layers i = 1..L (deeper exits weigh more)."""
    weights = torch.arange(1, per_exit.shape[0] + 1, dtype=per_exit.dtype, device=per_exit.device)
    return (weights * per_exit).sum() / weights.sum()


def fastbert_distillation_loss(logits: Tensor, task: str = "classification") -> Tensor:
    """FastBERT stage 2: ``sum over students of KL(p_teacher || p_student)``, batch mean; no labels.

    The teacher is the last exit and receives no gradient. For regression the students regress onto
    the teacher's output (MSE), since there is no distribution to match.
    """
    teacher, students = logits[-1].detach(), logits[:-1]
    if task == "regression":
        return ((students - teacher) ** 2).mean(dim=(1, 2)).sum()
    log_teacher = F.log_softmax(teacher, dim=-1)
    log_students = F.log_softmax(students, dim=-1)
    kl = (log_teacher.exp() * (log_teacher - log_students)).sum(dim=-1)  # [students, batch]
    return kl.mean(dim=1).sum()


DISTILLATION_TEMPERATURE = 2.0
DISTILLATION_SOFT_WEIGHT = 0.5


def student_distillation_loss(student: Tensor, teacher: Tensor, labels: Tensor, task: str) -> Tensor:
    """Task-specific knowledge distillation (Hinton et al., 2015) of one student exit ``[batch, outputs]``:
    ``w * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - w) * CE(student, labels)`` with
    temperature T = :data:`DISTILLATION_TEMPERATURE` and soft-target weight w = :data:`DISTILLATION_SOFT_WEIGHT`
    (transformers' ``examples/research_projects/distillation`` defaults: ``--temperature 2.0``,
    ``--alpha_distil 0.5``, ``--alpha_ce 0.5``; ``T^2`` keeps the soft gradients' scale). For regression both
    terms are MSE: to the teacher's output and to the label."""
    teacher = teacher.detach()
    if task == "regression":
        soft = F.mse_loss(student.squeeze(-1), teacher.squeeze(-1))
        hard = F.mse_loss(student.squeeze(-1), labels.float())
    else:
        t = DISTILLATION_TEMPERATURE
        soft = (
            t
            * t
            * F.kl_div(
                F.log_softmax(student / t, dim=-1),
                F.log_softmax(teacher / t, dim=-1),
                reduction="batchmean",
                log_target=True,
            )
        )
        hard = F.cross_entropy(student, labels)
    return DISTILLATION_SOFT_WEIGHT * soft + (1 - DISTILLATION_SOFT_WEIGHT) * hard


def exit_correctness(logits: Tensor, labels: Tensor, task: str) -> Tensor:
    """BERxiT's learning-to-exit target per exit, ``[layers, batch]`` in [0, 1]: 1 where the exit's
    class is right (classification), ``1 - tanh(|prediction - label|)`` for regression."""
    if task == "regression":
        return 1.0 - torch.tanh((logits.squeeze(-1) - labels.float()).abs())
    return (logits.argmax(dim=-1) == labels).to(logits.dtype)


def learned_exit_loss(exit_scores: Tensor, logits: Tensor, labels: Tensor, task: str) -> Tensor:
    """BERxiT: MSE between the scorer's certainty ``sigmoid(score)`` and :func:`exit_correctness`,
    averaged over layers and examples; the target carries no gradient."""
    target = exit_correctness(logits.detach(), labels, task)
    return F.mse_loss(torch.sigmoid(exit_scores), target)


FINAL_EXIT_ONLY = frozenset(
    {"final_exit", "distillation"}
)  # objectives that read the last exit's logits alone
Objective = Callable[..., Tensor]  # (outputs, labels, task), plus teacher=final logits in a distilling stage
LOSSES: Registry[Objective] = Registry("loss")


def final_exit_loss(out: AllExitsOutput, labels: Tensor, task: str) -> Tensor:
    """Fine-tuning loss of the last exit only (the BERT baseline, stage 1 of DeeBERT and FastBERT)."""
    return per_exit_task_loss(out.logits[-1:], labels, task)[0]


def offramps_loss(out: AllExitsOutput, labels: Tensor, task: str) -> Tensor:
    """DeeBERT stage 2: the summed task losses of off-ramps 1..L-1."""
    return deebert_offramp_loss(per_exit_task_loss(out.logits, labels, task))


def self_distillation_loss(out: AllExitsOutput, labels: None, task: str) -> Tensor:
    """FastBERT stage 2: the students match the teacher (the last exit); labels are not read."""
    return fastbert_distillation_loss(out.logits, task)


def depth_weighted_loss(out: AllExitsOutput, labels: Tensor, task: str) -> Tensor:
    """PABEE: every exit's task loss, weighted by depth."""
    return pabee_loss(per_exit_task_loss(out.logits, labels, task))


def final_exit_and_learned_exit_loss(out: AllExitsOutput, labels: Tensor, task: str) -> Tensor:
    """BERxiT's even steps (routine alternate-lte): the final exit's loss plus the learning-to-exit loss."""
    return final_exit_loss(out, labels, task) + learned_exit_loss(out.exit_scores, out.logits, labels, task)


def offramps_and_learned_exit_loss(out: AllExitsOutput, labels: Tensor, task: str) -> Tensor:
    """BERxiT's odd steps: the summed losses of off-ramps 1..L-1 plus the learning-to-exit loss."""
    return offramps_loss(out, labels, task) + learned_exit_loss(out.exit_scores, out.logits, labels, task)


def distillation_loss(out: AllExitsOutput, labels: Tensor, task: str, teacher: Tensor) -> Tensor:
    """The distilled-k baselines: the student's last exit on the teacher's soft targets plus the labels."""
    return student_distillation_loss(out.logits[-1], teacher, labels, task)


for _name, _objective in (
    ("final_exit", final_exit_loss),
    ("offramps", offramps_loss),
    ("self_distillation", self_distillation_loss),
    ("depth_weighted", depth_weighted_loss),
    ("final_exit_and_learned_exit", final_exit_and_learned_exit_loss),
    ("offramps_and_learned_exit", offramps_and_learned_exit_loss),
    ("distillation", distillation_loss),
):
    LOSSES.register(_name, _objective)
