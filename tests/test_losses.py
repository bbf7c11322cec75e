"""Loss weights and KL direction are as the papers specify."""

import pytest
import torch
import torch.nn.functional as F

from fastexit_bench.training.losses import (
    deebert_offramp_loss,
    exit_correctness,
    fastbert_distillation_loss,
    learned_exit_loss,
    pabee_loss,
    per_exit_task_loss,
)


def test_per_exit_task_loss_matches_cross_entropy_and_mse():
    torch.manual_seed(0)
    logits, labels = torch.randn(3, 5, 4), torch.randint(0, 4, (5,))
    per_exit = per_exit_task_loss(logits, labels, "classification")
    expected = torch.stack([F.cross_entropy(logits[k], labels) for k in range(3)])
    torch.testing.assert_close(per_exit, expected)
    values, targets = torch.randn(2, 5, 1), torch.rand(5) * 5
    torch.testing.assert_close(
        per_exit_task_loss(values, targets, "regression"),
        torch.stack([F.mse_loss(values[k, :, 0], targets) for k in range(2)]),
    )


def test_deebert_sums_all_offramps_but_the_last():
    assert deebert_offramp_loss(torch.tensor([1.0, 2.0, 4.0, 8.0])).item() == 7.0


def test_pabee_weights_layer_i_by_i():
    per_exit = torch.tensor([1.0, 2.0, 3.0])
    assert pabee_loss(per_exit).item() == pytest.approx((1 * 1 + 2 * 2 + 3 * 3) / 6)


def test_fastbert_kl_direction_teacher_to_student():
    teacher = torch.tensor([[2.0, 0.0, -1.0]])
    student = torch.tensor([[0.0, 1.0, 0.5]])
    logits = torch.stack([student, teacher])
    p_t, p_s = teacher.softmax(-1), student.softmax(-1)
    kl_teacher_student = (p_t * (p_t.log() - p_s.log())).sum()
    kl_student_teacher = (p_s * (p_s.log() - p_t.log())).sum()
    loss = fastbert_distillation_loss(logits)
    torch.testing.assert_close(loss, kl_teacher_student)
    assert not torch.isclose(loss, kl_student_teacher)
    torch.testing.assert_close(loss, F.kl_div(p_s.log(), p_t, reduction="batchmean"))


def test_fastbert_teacher_gets_no_gradient_and_sums_over_students():
    logits = torch.randn(4, 3, 2, requires_grad=True)
    loss = fastbert_distillation_loss(logits)
    loss.backward()
    assert logits.grad[-1].abs().sum() == 0 and logits.grad[:-1].abs().sum() > 0
    single = sum(fastbert_distillation_loss(torch.stack([logits[k], logits[-1]])) for k in range(3))
    torch.testing.assert_close(loss, single)


def test_berxit_learned_exit_target_and_loss():
    logits = torch.tensor(
        [[[2.0, 0.0], [0.0, 1.0]], [[0.0, 3.0], [0.0, 1.0]]]
    )  # [layers 2, batch 2, classes 2]
    labels = torch.tensor([0, 1])
    torch.testing.assert_close(
        exit_correctness(logits, labels, "classification"), torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    )
    values = torch.tensor([[[1.0]], [[3.0]]])
    torch.testing.assert_close(
        exit_correctness(values, torch.tensor([1.0]), "regression"),
        1 - torch.tanh(torch.tensor([[0.0], [2.0]])),
    )
    scores = torch.zeros(2, 2, requires_grad=True)  # certainty 0.5 everywhere
    loss = learned_exit_loss(scores, logits.requires_grad_(), labels, "classification")
    assert loss.item() == pytest.approx(0.25)
    loss.backward()
    assert logits.grad is None  # the correctness target is not trained through
