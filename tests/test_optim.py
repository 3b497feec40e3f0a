"""Optimizers with their arguments, learning-rate schedules with warm-up, L1 / L2 penalties,
gradient clipping, and a walk over every optimizer and schedule that trains a few epochs."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

from specnet.optim import (
    LRSchedule,
    better,
    build_optimizer,
    monitor_mode,
    penalized_weights,
    penalty,
)
from specnet.spec.schema import OPTIMIZERS, SCHEDULES, Training
from specnet.spec.validate import validate
from specnet.trainer import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _schedule(sched: dict[str, Any], epochs: int = 20) -> LRSchedule:
    training = Training.model_validate({"epochs": epochs, "schedule": sched})
    return LRSchedule(training.schedule, 0.1, epochs)


def _lrs(sched: dict[str, Any], n: int, epochs: int = 20) -> list[float]:
    s = _schedule(sched, epochs)
    return [s.lr(e) for e in range(n)]


def test_linear_warmup_then_constant() -> None:
    lrs = _lrs({"type": "constant", "warmup_epochs": 4}, 6)
    assert lrs == pytest.approx([0.02, 0.04, 0.06, 0.08, 0.1, 0.1])


def test_step_schedule_after_warmup() -> None:
    lrs = _lrs({"type": "step", "step_size": 2, "gamma": 0.5, "warmup_epochs": 1}, 6)
    assert lrs == pytest.approx([0.05, 0.1, 0.1, 0.05, 0.05, 0.025])


def test_exponential_schedule() -> None:
    lrs = _lrs({"type": "exponential", "gamma": 0.9}, 3)
    assert lrs == pytest.approx([0.1, 0.09, 0.081])


def test_cosine_schedule_spans_the_epochs_after_warmup() -> None:
    lrs = _lrs({"type": "cosine", "warmup_epochs": 2, "eta_min": 0.01}, 12, epochs=10)
    assert lrs[:2] == pytest.approx([0.1 / 3, 0.2 / 3])
    assert lrs[2] == pytest.approx(0.1)  # cosine starts at the full rate
    assert lrs[6] == pytest.approx(0.01 + 0.09 * (1 + math.cos(math.pi * 4 / 8)) / 2)
    assert lrs[10] == lrs[11] == pytest.approx(0.01)  # and stays at eta_min after t_max


def test_cosine_matches_torch_cosine_annealing() -> None:
    model = nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ref = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=7, eta_min=0.001)
    torch_lrs = []
    for _ in range(7):
        torch_lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        ref.step()
    ours = _lrs({"type": "cosine", "t_max": 7, "eta_min": 0.001}, 7)
    assert ours == pytest.approx(torch_lrs)


def test_plateau_decays_after_patience_and_respects_min_lr() -> None:
    s = _schedule({"type": "plateau", "monitor": "val_loss", "factor": 0.5, "patience": 1,
                   "min_lr": 0.03, "warmup_epochs": 1})
    seen = []
    for epoch, loss in enumerate([9.0, 1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95]):
        seen.append(s.lr(epoch))
        s.observe(epoch, {"val_loss": loss})
    # warm-up epoch ignored; best 0.9 at epoch 2; two bad epochs (> patience) -> halve, ...
    assert seen == pytest.approx([0.05, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.03, 0.03])
    state = s.state_dict()
    again = _schedule({"type": "plateau", "monitor": "val_loss", "factor": 0.5, "patience": 1,
                       "min_lr": 0.03, "warmup_epochs": 1})
    again.load_state_dict(state)
    assert again.lr(9) == s.lr(9) and again.state_dict() == state


def test_plateau_on_a_score_watches_for_increases() -> None:
    s = _schedule({"type": "plateau", "monitor": "val_accuracy", "factor": 0.1, "patience": 0})
    s.observe(0, {"val_accuracy": 0.5})
    s.observe(1, {"val_accuracy": 0.6})
    assert s.lr(2) == pytest.approx(0.1)
    s.observe(2, {"val_accuracy": 0.55})
    assert s.lr(3) == pytest.approx(0.01)


@pytest.mark.parametrize(("name", "mode"), [("val_loss", "min"), ("loss", "min"),
                                            ("val_rmse", "min"), ("mae", "min"),
                                            ("val_accuracy", "max"), ("r2", "max")])
def test_monitor_mode_auto(name: str, mode: str) -> None:
    assert monitor_mode(name) == mode
    assert monitor_mode(name, "max") == "max"


def test_better_handles_nan_inf_and_min_delta() -> None:
    assert better(1.0, math.inf, "min") and not better(math.nan, math.inf, "min")
    assert not better(0.95, 1.0, "min", min_delta=0.1) and better(0.85, 1.0, "min", 0.1)
    assert better(0.8, 0.7, "max", 0.05) and not better(0.72, 0.7, "max", 0.05)


OPTIMIZER_CASES = [
    ({"type": "sgd", "lr": 0.05}, torch.optim.SGD, {"momentum": 0, "nesterov": False}),
    ({"type": "momentum", "momentum": 0.8, "dampening": 0.1}, torch.optim.SGD,
     {"momentum": 0.8, "dampening": 0.1, "nesterov": False}),
    ({"type": "nesterov", "momentum": 0.7}, torch.optim.SGD, {"momentum": 0.7, "nesterov": True}),
    ({"type": "rmsprop", "alpha": 0.9, "centered": True, "momentum": 0.5}, torch.optim.RMSprop,
     {"alpha": 0.9, "centered": True, "momentum": 0.5}),
    ({"type": "adam", "betas": [0.8, 0.99], "amsgrad": True}, torch.optim.Adam,
     {"betas": (0.8, 0.99), "amsgrad": True, "weight_decay": 0}),
    ({"type": "adamw"}, torch.optim.AdamW, {"weight_decay": 0.01}),
    ({"type": "adagrad", "lr_decay": 0.01}, torch.optim.Adagrad, {"lr_decay": 0.01, "lr": 0.01}),
]


@pytest.mark.parametrize(("opt", "cls", "args"), OPTIMIZER_CASES,
                         ids=[c[0]["type"] for c in OPTIMIZER_CASES])
def test_optimizers_get_their_arguments(opt: dict[str, Any], cls: type, args: dict[str, Any]
                                        ) -> None:
    assert {c[0]["type"] for c in OPTIMIZER_CASES} == set(OPTIMIZERS)
    spec = validate({"data": "iris", "model": [{"linear": "auto"}], "optimizer": opt})
    built = build_optimizer(spec.optimizer, list(nn.Linear(2, 2).parameters()))
    assert type(built) is cls
    group = built.param_groups[0]
    for key, value in args.items():
        assert group[key] == value, key


@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
@pytest.mark.parametrize("sched", [None, *sorted(SCHEDULES)])
def test_every_optimizer_and_schedule_trains(opt: str, sched: str | None) -> None:
    training: dict[str, Any] = {"epochs": 3, "batch_size": 32}
    if sched is not None:
        training["schedule"] = {"type": sched, "warmup_epochs": 1}
    spec = validate({"data": {"source": "blobs", "n_samples": 120}, "optimizer": opt,
                     "model": [{"linear": 8}, "relu", {"linear": "auto"}],
                     "training": training})
    run = train(spec)
    losses = [r["loss"] for r in run.history]
    assert all(math.isfinite(v) for v in losses)
    assert run.history[0]["lr"] == pytest.approx(spec.optimizer.lr / (2 if sched else 1))


# ---------------------------------------------------------------- penalties


def _model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(1, 2, 3), nn.BatchNorm1d(2), nn.Flatten(),
                         nn.Linear(8, 3), nn.PReLU(), nn.LayerNorm(3))


def test_penalties_cover_weights_not_biases_or_norm_parameters() -> None:
    model = _model()
    weights = penalized_weights(model)
    assert [w.shape for w in weights] == [torch.Size([2, 1, 3]), torch.Size([3, 8])]
    ids = {id(w) for w in weights}
    named = {n for n, p in model.named_parameters() if id(p) in ids}
    assert named == {"0.weight", "3.weight"}


def test_l2_penalty_is_explicit_and_its_gradient_is_2_l2_w() -> None:
    model = _model()
    weights = penalized_weights(model)
    value = penalty(weights, l1=0.0, l2=0.01)
    assert value is not None
    torch.testing.assert_close(value, 0.01 * sum((w ** 2).sum() for w in weights))
    value.backward()
    for name, p in model.named_parameters():
        if name in ("0.weight", "3.weight"):
            torch.testing.assert_close(p.grad, 0.02 * p.detach())
        else:
            assert p.grad is None, name  # biases and norm parameters are not penalised


def test_l1_penalty_and_both_together() -> None:
    model = _model()
    weights = penalized_weights(model)
    l1 = penalty(weights, l1=0.1, l2=0.0)
    both = penalty(weights, l1=0.1, l2=0.01)
    assert l1 is not None and both is not None
    torch.testing.assert_close(l1, 0.1 * sum(w.abs().sum() for w in weights))
    torch.testing.assert_close(both, l1 + 0.01 * sum((w ** 2).sum() for w in weights))
    assert penalty(weights, 0.0, 0.0) is None


def test_l2_shrinks_the_weights_of_a_trained_model() -> None:
    base = {"data": {"source": "blobs", "n_samples": 200}, "model": [{"linear": 16}, "relu",
                                                                     {"linear": "auto"}],
            "optimizer": {"type": "adam", "lr": 0.05}, "training": {"epochs": 20}}
    plain = train(validate(base))
    l2 = train(validate({**base, "regularization": {"l2": 0.05}}))
    norm = lambda run: sum(float((w.detach() ** 2).sum()) for w in penalized_weights(run.model))  # noqa: E731
    assert norm(l2) < 0.5 * norm(plain)


@pytest.mark.parametrize("clip", [{"norm": 1e-3}, {"value": 1e-4}], ids=["norm", "value"])
def test_gradient_clipping_limits_each_step(clip: dict[str, float]) -> None:
    base = {"data": {"source": "blobs", "n_samples": 60}, "model": [{"linear": "auto"}],
            "optimizer": {"type": "sgd", "lr": 1.0},
            "training": {"epochs": 1, "batch_size": "full", "shuffle": False}}
    from specnet.compile import compile_spec

    spec = validate({**base, "regularization": {"grad_clip": clip}})
    before = [p.detach().clone() for p in compile_spec(spec).parameters()]
    after = [p.detach() for p in train(spec).model.parameters()]
    deltas = torch.cat([(a - b).flatten() for a, b in zip(after, before, strict=True)])
    if "norm" in clip:  # one SGD step with lr 1: the update is the clipped gradient
        assert float(deltas.norm()) == pytest.approx(1e-3, rel=1e-3)
    else:
        assert float(deltas.abs().max()) == pytest.approx(1e-4, rel=1e-3)
