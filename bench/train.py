"""Training speed, side by side in one run: specnet's trainer against the usual alternatives.

Same data (split and scaled once by specnet), same network (MLP 128-64, ReLU), same initial
weights for the torch loops, Adam lr 1e-3, batch 64, same number of epochs, same thread count.

    python bench/train.py            # digits (1,797 x 64) and make_classification (100,000 x 20)
    python bench/train.py --quick    # fewer epochs and rows: a smoke run
    pip install -e ".[bench]"        # skorch, for its row

Rows: specnet `train()` (in memory, as sweeps call it) and with a run folder (checkpoint every
epoch, as the CLI runs); the PyTorch tutorial loop (DataLoader over a TensorDataset,
shuffle=True, `.item()` every batch); a hand-optimized plain-torch loop (what specnet does,
written inline); sklearn MLPClassifier (adam, no early stopping, tol tiny, alpha 0); skorch
NeuralNetClassifier. Wall time is the best of `--repeats` runs (the box may be shared);
accuracy is on the test split.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from specnet.compile import compile_spec
from specnet.data.prepare import Prepared, prepare
from specnet.spec.schema import Spec
from specnet.spec.validate import validate
from specnet.trainer import train

BATCH = 64
LR = 1e-3


@dataclass
class Result:
    method: str
    seconds: float
    accuracy: float


def _spec(source: dict[str, Any], epochs: int) -> Spec:
    return validate({
        "name": "bench", "seed": 0, "data": {**source, "split": {"validation": 0.0,
                                                                 "test": 0.2}},
        "model": [{"linear": 128}, "relu", {"linear": 64}, "relu", {"linear": "auto"}],
        "optimizer": {"type": "adam", "lr": LR},
        "training": {"epochs": epochs, "batch_size": BATCH, "metrics": ["accuracy"],
                     "checkpoint_every": 1},
    })


def _accuracy(model: nn.Module, p: Prepared) -> float:
    model.eval()
    with torch.no_grad():
        pred = model(torch.from_numpy(p.X_test)).argmax(1).numpy()
    return float(np.mean(pred == p.y_test))


def run_specnet(spec: Spec, p: Prepared) -> float:
    return float(train(spec, None, prepared=p).metrics["test"]["accuracy"])


def run_specnet_folder(spec: Spec, p: Prepared) -> float:
    with tempfile.TemporaryDirectory() as d:
        return float(train(spec, d, prepared=p).metrics["test"]["accuracy"])


def run_tutorial(spec: Spec, p: Prepared) -> float:
    """The loop from the PyTorch tutorials: DataLoader, shuffle=True, .item() per batch."""
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(spec.seed)
    model = compile_spec(spec)
    loader = DataLoader(TensorDataset(torch.from_numpy(p.X_train), torch.from_numpy(p.y_train)),
                        batch_size=BATCH, shuffle=True)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(spec.training.epochs):
        model.train()
        running = 0.0
        for xb, yb in loader:
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            running += loss.item()
    return _accuracy(model, p)


def run_hand(spec: Spec, p: Prepared) -> float:
    """Plain torch, written for speed: tensors in memory, one permutation per epoch, fused
    Adam (the kernel specnet uses, so the ratio measures the loop, not the optimizer)."""
    gen = torch.Generator().manual_seed(spec.seed)
    model = compile_spec(spec)
    X, y = torch.from_numpy(p.X_train), torch.from_numpy(p.y_train)
    opt = torch.optim.Adam(model.parameters(), lr=LR, fused=True)
    loss_fn = nn.CrossEntropyLoss()
    n = len(X)
    for _ in range(spec.training.epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        Xs, ys = X[perm], y[perm]
        total = torch.zeros(())
        for i in range(0, n, BATCH):
            xb, yb = Xs[i:i + BATCH], ys[i:i + BATCH]
            loss = loss_fn(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach() * len(xb)
        _ = float(total) / n  # the epoch's loss, one sync
    return _accuracy(model, p)


def run_sklearn(spec: Spec, p: Prepared) -> float:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    epochs = spec.training.epochs
    clf = MLPClassifier(hidden_layer_sizes=(128, 64), solver="adam", learning_rate_init=LR,
                        batch_size=BATCH, max_iter=epochs, alpha=0.0, tol=1e-12,
                        n_iter_no_change=epochs + 1, early_stopping=False, shuffle=True,
                        random_state=spec.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(p.X_train, p.y_train)
    return float(np.mean(clf.predict(p.X_test) == p.y_test))


def run_skorch(spec: Spec, p: Prepared) -> float:
    from skorch import NeuralNetClassifier

    net = NeuralNetClassifier(copy.deepcopy(compile_spec(spec)), criterion=nn.CrossEntropyLoss,
                              optimizer=torch.optim.Adam, lr=LR, batch_size=BATCH,
                              max_epochs=spec.training.epochs, train_split=None, verbose=0,
                              iterator_train__shuffle=True)
    torch.manual_seed(spec.seed)
    net.fit(p.X_train, p.y_train)
    return float(np.mean(net.predict(p.X_test) == p.y_test))


METHODS: dict[str, Callable[[Spec, Prepared], float]] = {
    "specnet train()": run_specnet,
    "specnet, run folder + checkpoint/epoch": run_specnet_folder,
    "hand-optimized torch loop": run_hand,
    "tutorial loop (DataLoader, shuffle)": run_tutorial,
    "sklearn MLPClassifier": run_sklearn,
    "skorch NeuralNetClassifier": run_skorch,
}


def bench(spec: Spec, repeats: int) -> list[Result]:
    p = prepare(spec)
    warm = spec.model_copy(update={"training": spec.training.model_copy(update={"epochs": 1})})
    for fn in METHODS.values():  # first calls pay imports and allocator warm-up: untimed
        with contextlib.suppress(ImportError):
            fn(warm, p)
    best: dict[str, Result] = {}
    for _ in range(repeats):  # interleaved, so a busy moment hits every method alike
        for name, fn in METHODS.items():
            try:
                t0 = time.perf_counter()
                acc = fn(spec, p)
                dt = time.perf_counter() - t0
            except ImportError as exc:
                print(f"  skipped {name}: {exc} (pip install -e '.[bench]')")
                continue
            if name not in best or dt < best[name].seconds:
                best[name] = Result(name, dt, acc)
    return list(best.values())


def table(title: str, results: list[Result]) -> str:
    ref = next(r.seconds for r in results if r.method == "specnet train()")
    lines = [f"**{title}**", "",
             "| method | wall time (s) | vs specnet | test accuracy |",
             "|---|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r.method} | {r.seconds:.2f} | {r.seconds / ref:.2f}x | "
                     f"{r.accuracy:.4f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer epochs and rows")
    ap.add_argument("--threads", type=int, default=1, help="torch and BLAS threads for all")
    ap.add_argument("--repeats", type=int, default=None, help="best of this many runs")
    args = ap.parse_args()
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    sets: list[tuple[str, dict[str, Any], int]] = [("digits (1,437 train rows x 64)", {"source": "digits"}, 10 if args.quick else 50),
            ("make_classification (80,000 train rows x 20, 3 classes)" if not args.quick else
             "make_classification (8,000 train rows x 20, 3 classes)",
             {"source": "classification", "n_samples": 10_000 if args.quick else 100_000,
              "n_features": 20, "n_classes": 3}, 2 if args.quick else 10)]
    repeats = args.repeats or (1 if args.quick else 3)
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {BATCH}, "
          f"MLP 128-64, adam lr {LR}, best of {repeats}")
    with threadpool_limits(limits=args.threads):
        for title, source, epochs in sets:
            results = bench(_spec(source, epochs), repeats)
            print()
            print(table(f"{title}, {epochs} epochs", results))


if __name__ == "__main__":
    main()
