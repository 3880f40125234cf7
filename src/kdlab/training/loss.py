"""The distillation loss of Hinton et al. (2015), for K models at once."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def kd_loss(
    student_logits: torch.Tensor,
    labels: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    temperature: torch.Tensor,
    alpha: torch.Tensor,
    t2: torch.Tensor,
) -> torch.Tensor:
    """Per-model loss [K]: alpha * s * KL(p_teacher^T || p_student^T) + (1 - alpha) * CE(student, y).

    `s` is T^2 where `t2` is set (the paper's scaling, which keeps the soft-target gradients
    of the same size as T changes) and 1 otherwise. Shapes: logits [K, B, C], labels [K, B],
    temperature/alpha/t2 [K]. With alpha = 0 (or no teacher) this is plain cross-entropy.
    """
    k, b, c = student_logits.shape
    ce = (
        F.cross_entropy(student_logits.reshape(k * b, c), labels.reshape(k * b), reduction="none")
        .view(k, b)
        .mean(1)
    )
    if teacher_logits is None:
        return ce
    temp = temperature.view(k, 1, 1)
    log_p_student = F.log_softmax(student_logits / temp, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits / temp, dim=-1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(-1).mean(1)
    soft_weight = alpha * torch.where(t2, temperature**2, torch.ones_like(temperature))
    return soft_weight * kl + (1.0 - alpha) * ce
