"""Checkpoints: whole training state, atomic, newest kept, loadable without unpickling code."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from specnet import checkpoint as ckpt
from specnet.errors import TrainingError


def test_round_trip_of_state_and_random_states(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(5)
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(),
             "rng": ckpt.rng_state(gen), "history": [{"epoch": 1.0, "loss": 0.5}],
             "best": {"score": float("inf"), "state": None}}
    expected = (random.random(), np.random.rand(), torch.rand(1), torch.rand(1, generator=gen))
    path = ckpt.save(tmp_path, 1, state)
    assert path.name == "epoch_00001.pt"

    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    gen2 = torch.Generator().manual_seed(9)
    back = ckpt.load(path)
    ckpt.set_rng_state(back["rng"], gen2)
    assert (random.random(), np.random.rand()) == expected[:2]
    assert torch.equal(torch.rand(1), expected[2])
    assert torch.equal(torch.rand(1, generator=gen2), expected[3])
    assert back["epoch"] == 1 and back["history"] == state["history"]
    for k, v in model.state_dict().items():
        assert torch.equal(back["model"][k], v)
    opt2 = torch.optim.Adam(torch.nn.Linear(3, 2).parameters())
    opt2.load_state_dict(back["optimizer"])
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"],
                       opt.state_dict()["state"][0]["exp_avg"])


def test_only_the_newest_checkpoint_is_kept_and_temporaries_are_ignored(tmp_path: Path) -> None:
    for epoch in (1, 2, 3):
        ckpt.save(tmp_path, epoch, {"x": epoch})
    (tmp_path / ".epoch_00004.pt.abc.tmp").write_bytes(b"half")
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["epoch_00003.pt"]
    ckpt.clean_temporaries(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_00003.pt"]
    assert ckpt.list_checkpoints(tmp_path / "missing") == []


class Evil:
    """A class a checkpoint must never make the loader import and build."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("code ran",))


def test_a_pickled_object_is_refused_not_run(tmp_path: Path) -> None:
    path = tmp_path / "epoch_00001.pt"
    torch.save({"format": ckpt.FORMAT, "evil": Evil()}, path)  # unpickling would import it
    with pytest.raises(TrainingError, match="holds pickled Python objects, which specnet "
                                            "never loads") as info:
        ckpt.load(path)
    assert "weights_only" not in str(info.value)  # never torch's advice to turn it off


@pytest.mark.parametrize("content", [b"", b"garbage", None], ids=["empty", "garbage", "foreign"])
def test_bad_checkpoints_are_training_errors(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "epoch_00001.pt"
    if content is None:
        torch.save({"format": 99}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(TrainingError, match=str(path)):
        ckpt.load(path)


def test_weights_round_trip_through_safetensors(tmp_path: Path) -> None:
    bn = torch.nn.BatchNorm1d(3)
    bn(torch.randn(4, 3))
    ckpt.save_weights(tmp_path / "w.safetensors", bn.state_dict())
    back = ckpt.load_weights(tmp_path / "w.safetensors")
    assert back.keys() == bn.state_dict().keys()
    assert all(torch.equal(back[k], v) for k, v in bn.state_dict().items())
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 3)
    with pytest.raises(TrainingError, match="cannot read weights"):
        ckpt.load_weights(tmp_path / "bad.safetensors")
