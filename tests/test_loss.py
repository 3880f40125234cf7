"""The KD loss against its closed-form gradient and its limiting cases."""

import torch
import torch.nn.functional as F

from kdlab.training.loss import kd_loss


def _setup(k=3, b=5, c=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(k, b, c, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(k, b, c, generator=g, dtype=torch.float64)
    y = torch.randint(0, c, (k, b), generator=g)
    return s, t, y


def _vec(*values, dtype=torch.float64):
    return torch.tensor(values, dtype=dtype)


def test_alpha_zero_is_cross_entropy():
    s, t, y = _setup()
    loss = kd_loss(s, y, t, _vec(4.0, 2.0, 1.0), _vec(0.0, 0.0, 0.0), torch.tensor([True] * 3))
    for k in range(3):
        assert torch.allclose(loss[k], F.cross_entropy(s[k], y[k]))


def test_no_teacher_is_cross_entropy():
    s, _, y = _setup()
    loss = kd_loss(s, y, None, _vec(4.0, 4.0, 4.0), _vec(0.0, 0.0, 0.0), torch.tensor([True] * 3))
    assert torch.allclose(loss, torch.stack([F.cross_entropy(s[k], y[k]) for k in range(3)]))


def test_gradient_matches_closed_form():
    """d loss / d logits = alpha T (p_s^T - p_t^T) / B  [x T^2 / T^2 without t2 → alpha/T]
    + (1 - alpha) (p_s - onehot) / B."""
    s, t, y = _setup()
    temps, alphas = _vec(4.0, 2.0, 20.0), _vec(0.9, 0.5, 1.0)
    t2 = torch.tensor([True, False, True])
    kd_loss(s, y, t, temps, alphas, t2).sum().backward()
    b, c = s.shape[1], s.shape[2]
    for k in range(3):
        temp, alpha = temps[k], alphas[k]
        soft = F.softmax(s[k].detach() / temp, -1) - F.softmax(t[k] / temp, -1)
        scale = temp if t2[k] else 1.0 / temp
        hard = F.softmax(s[k].detach(), -1) - F.one_hot(y[k], c)
        expected = (alpha * scale * soft + (1 - alpha) * hard) / b
        assert torch.allclose(s.grad[k], expected, atol=1e-12)


def test_t2_scales_soft_term_only():
    s, t, y = _setup()
    temps, alphas = _vec(4.0, 4.0, 4.0), _vec(1.0, 1.0, 1.0)
    with_t2 = kd_loss(s, y, t, temps, alphas, torch.tensor([True] * 3))
    without = kd_loss(s, y, t, temps, alphas, torch.tensor([False] * 3))
    assert torch.allclose(with_t2, 16.0 * without)
    assert (without > 0).all()


def test_loss_is_zero_soft_term_when_student_equals_teacher():
    s, _, y = _setup()
    loss = kd_loss(s, y, s.detach(), _vec(3.0, 3.0, 3.0), _vec(1.0, 1.0, 1.0), torch.tensor([True] * 3))
    assert torch.allclose(loss, torch.zeros(3, dtype=torch.float64), atol=1e-12)
