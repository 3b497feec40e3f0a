"""Each loss against its formula written out by hand, and the target forms it trains on."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from specnet.losses import balanced_class_weights, build_loss
from specnet.spec.schema import LOSSES, Spec
from specnet.spec.validate import validate

g = torch.Generator().manual_seed(0)


def _spec(task: str, loss: Any, source: str = "iris", out: Any = "auto") -> Spec:
    model: list[Any] = [{"linear": out}]
    if (isinstance(loss, dict) and loss.get("type") == "nll") or loss == "nll":
        model.append({"log_softmax": {"dim": 1}})
    return validate({"task": task, "data": source, "model": model, "loss": loss})


def _logits(n: int, k: int) -> torch.Tensor:
    return torch.randn(n, k, generator=g)


def test_cross_entropy_with_label_smoothing_and_balanced_weights() -> None:
    y = np.array([0, 0, 0, 0, 1, 1, 2], np.int64)  # imbalanced training split
    spec = _spec("classification", {"type": "cross_entropy", "label_smoothing": 0.1,
                                    "class_weights": "balanced"})
    fn = build_loss(spec, y, 3)
    w = torch.tensor(balanced_class_weights(y, 3))
    np.testing.assert_allclose(w.numpy(), [7 / 12, 7 / 6, 7 / 3], rtol=1e-6)
    out, t = _logits(7, 3), torch.from_numpy(y)
    logp = torch.log_softmax(out, 1)
    eps, k = 0.1, 3
    # torch's definition: weighted NLL of the true class plus the smoothing term.
    nll = -(w[t] * logp[torch.arange(7), t]).sum() / w[t].sum()
    smooth = -(w[None, :] * logp).sum(1).sum() / w[t].sum() / k
    expected = (1 - eps) * nll + eps * smooth
    torch.testing.assert_close(fn.criterion(out, fn.target(t)), expected)


def test_explicit_class_weights_are_used_as_given() -> None:
    spec = _spec("classification", {"type": "cross_entropy", "class_weights": [1, 2, 3]})
    fn = build_loss(spec, np.array([0, 1, 2]), 3)
    out, t = _logits(5, 3), torch.tensor([0, 1, 2, 2, 1])
    w = torch.tensor([1.0, 2.0, 3.0])
    logp = torch.log_softmax(out, 1)[torch.arange(5), t]
    torch.testing.assert_close(fn.criterion(out, t), -(w[t] * logp).sum() / w[t].sum())


def test_nll_takes_log_probabilities() -> None:
    spec = _spec("classification", {"type": "nll", "class_weights": "balanced"})
    y = np.array([0, 1, 1, 2, 2, 2])
    fn = build_loss(spec, y, 3)
    logp = torch.log_softmax(_logits(6, 3), 1)
    w = torch.tensor(balanced_class_weights(y, 3))
    t = torch.from_numpy(y)
    expected = -(w[t] * logp[torch.arange(6), t]).sum() / w[t].sum()
    torch.testing.assert_close(fn.criterion(logp, t), expected)


@pytest.mark.parametrize(("pos_weight", "expect"), [(None, 1.0), (3.0, 3.0), ("balanced", 3.0)],
                         ids=["none", "given", "balanced"])
def test_bce_on_one_logit_with_pos_weight(pos_weight: Any, expect: float) -> None:
    spec = _spec("binary", {"type": "bce", "pos_weight": pos_weight}, "xor", 1)
    y = np.array([1, 0, 0, 0, 1, 0, 0, 0])  # 6 negatives / 2 positives
    fn = build_loss(spec, y, 1)
    t = fn.target(torch.from_numpy(y))
    assert t.shape == (8, 1) and t.dtype == torch.float32
    z = _logits(8, 1)
    p = torch.sigmoid(z)
    expected = -(expect * t * torch.log(p) + (1 - t) * torch.log(1 - p)).mean()
    torch.testing.assert_close(fn.criterion(z, t), expected)


def test_binary_hinge_trains_on_plus_minus_one() -> None:
    spec = _spec("binary", {"type": "hinge", "margin": 0.5}, "xor", 1)
    fn = build_loss(spec, np.array([0, 1]), 1)
    t = fn.target(torch.tensor([0, 1, 1, 0]))
    assert t.flatten().tolist() == [-1.0, 1.0, 1.0, -1.0]
    s = torch.tensor([[0.2], [0.2], [-1.0], [-2.0]])
    # max(0, 0.5 - t*s): 0.7, 0.3, 1.5, 0
    torch.testing.assert_close(fn.criterion(s, t), torch.tensor((0.7 + 0.3 + 1.5 + 0) / 4))


def test_multiclass_hinge_is_a_margin_loss() -> None:
    spec = _spec("classification", {"type": "hinge", "margin": 1.0})
    fn = build_loss(spec, np.array([0, 1, 2]), 3)
    x = torch.tensor([[0.1, 0.2, 0.4], [2.0, 0.0, 0.0]])
    t = torch.tensor([2, 0])
    # row 0: (max(0, 1-0.4+0.1) + max(0, 1-0.4+0.2)) / 3; row 1: 2*max(0, 1-2) / 3 = 0
    expected = torch.tensor(((0.7 + 0.8) / 3 + 0.0) / 2)
    torch.testing.assert_close(fn.criterion(x, fn.target(t)), expected)


@pytest.mark.parametrize(("loss", "formula"), [
    ("mse", lambda d: (d ** 2).mean()),
    ("mae", lambda d: d.abs().mean()),
    ({"type": "huber", "delta": 0.5},
     lambda d: torch.where(d.abs() < 0.5, 0.5 * d ** 2, 0.5 * (d.abs() - 0.25)).mean()),
], ids=["mse", "mae", "huber"])
def test_regression_losses(loss: Any, formula: Any) -> None:
    spec = _spec("regression", loss, "diabetes")
    fn = build_loss(spec, np.zeros((4, 1), np.float32), 1)
    out, y = _logits(6, 1), _logits(6, 1)
    torch.testing.assert_close(fn.criterion(out, fn.target(y)), formula(out - y))


def test_every_registered_loss_builds() -> None:
    cases = {"mse": ("regression", "diabetes", "auto"), "mae": ("regression", "diabetes", "auto"),
             "huber": ("regression", "diabetes", "auto"), "bce": ("binary", "xor", 1),
             "hinge": ("binary", "xor", 1), "cross_entropy": ("classification", "iris", "auto"),
             "nll": ("classification", "iris", "auto")}
    assert set(cases) == set(LOSSES)
    for name, (task, source, out) in cases.items():
        fn = build_loss(_spec(task, name, source, out), np.array([0, 1, 1]), 3 if
                        task == "classification" else 1)
        assert fn.name == name


def test_balanced_weights_match_sklearn() -> None:
    from sklearn.utils.class_weight import compute_class_weight

    y = np.array([0, 0, 1, 2, 2, 2, 2, 1, 0, 2])
    np.testing.assert_allclose(
        balanced_class_weights(y, 3),
        compute_class_weight("balanced", classes=np.arange(3), y=y), rtol=1e-6)
