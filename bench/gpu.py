"""GPU against CPU, side by side in one run: cuda training of digits_cnn and a 1,000,000-row
make_classification MLP in fp32, bf16 and fp16, the same runs on the CPU, an ONNX export
(on the CPU) of a cuda-trained run verified by onnxruntime, and the ratios.

    python bench/gpu.py            # about 2-4 minutes on one H100 (most of it the CPU runs)
    python bench/gpu.py --rows 100000 --epochs 1     # a smoke run

Without a CUDA device it prints why and exits 0, so it can sit in any checklist. Times are
training only (metrics.json training_time_s), the best of `--rounds`; the CPU runs use
`training.threads: auto` (all available cores for these sizes).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from specnet.spec.resolve import resolved_dict
from specnet.spec.schema import Spec
from specnet.spec.validate import load_spec, validate
from specnet.trainer import train

ROOT = Path(__file__).resolve().parent.parent


def _mlp(rows: int, epochs: int, batch: int) -> dict[str, Any]:
    return {
        "name": "mlp_1m", "seed": 0,
        "data": {"source": "classification", "n_samples": rows, "n_features": 50,
                 "n_informative": 20, "n_classes": 2,
                 "split": {"validation": 0.1, "test": 0.1}},
        "model": [{"linear": 512}, "relu", {"linear": 256}, "relu", {"linear": "auto"}],
        "optimizer": {"type": "adam", "lr": 0.001},
        "training": {"epochs": epochs, "batch_size": batch, "metrics": ["accuracy"]},
    }


def _with(spec: Spec | dict[str, Any], device: str, precision: str) -> Spec:
    data = resolved_dict(spec) if isinstance(spec, Spec) else dict(spec)
    data["device"] = device
    data["training"] = {**data.get("training", {}), "precision": precision}
    return validate(data)


def _time(spec: Spec, rounds: int) -> tuple[float, float]:
    best, acc = float("inf"), float("nan")
    for _ in range(rounds):
        run = train(spec)
        best = min(best, float(run.metrics["training_time_s"]))
        acc = float(run.metrics["test"]["accuracy"])
    return best, acc


def check_stream(device: str, tmp: Path) -> str:
    """A streamed (memory-mapped) .npy set trains on `device` to the weights the same file
    loaded whole gives there."""
    import numpy as np
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=20_000, n_features=20, random_state=0)
    np.save(tmp / "xy.npy", np.column_stack([X, y]).astype(np.float32))
    runs = []
    for stream in (False, True):
        spec = validate({
            "name": "stream_check", "seed": 0, "device": device,
            "data": {"source": "npy", "path": str(tmp / "xy.npy"), "stream": stream},
            "model": [{"linear": 64}, "relu", {"linear": "auto"}],
            "training": {"epochs": 2, "batch_size": 256, "metrics": ["accuracy"]}})
        runs.append(train(spec))
    same = all(torch.equal(a.cpu(), b.cpu()) for a, b in zip(
        runs[0].model.state_dict().values(), runs[1].model.state_dict().values(), strict=True))
    return (f"streamed .npy on {runs[1].metrics['device']}: test accuracy "
            f"{runs[1].metrics['test']['accuracy']:.4f}, weights identical to in-memory: {same}")


def check_launcher(device: str, tmp: Path) -> str:
    """`torchrun --nproc-per-node 1 -m specnet train` on `device`: joins a process group
    (nccl on cuda, gloo on cpu), trains, and rank 0 writes the run folder."""
    import json
    import os
    import subprocess

    (tmp / "ddp.yaml").write_text(
        f"name: ddp_check\nseed: 0\ndevice: {device}\ndata: digits\n"
        "model: [{linear: 64}, relu, {linear: auto}]\n"
        "training: {epochs: 3, batch_size: 64, metrics: [accuracy]}\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "1",
         "--master-port", "29561", "-m", "specnet", "train", str(tmp / "ddp.yaml"), "-q",
         "-o", str(tmp / "ddp_run")], env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        return f"torchrun failed ({done.returncode}): {done.stderr.strip()[-800:]}"
    m = json.loads((tmp / "ddp_run" / "metrics.json").read_text())
    return (f"torchrun 1 rank on {m.get('device')}: backend {m.get('backend')}, world size "
            f"{m.get('world_size')}, test accuracy {m['test']['accuracy']:.4f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--checks-only", choices=["cpu", "cuda"], default=None,
                    help=argparse.SUPPRESS)  # the streaming / launcher checks alone
    args = ap.parse_args()
    if args.checks_only:
        with tempfile.TemporaryDirectory() as tmp:
            print(check_stream(args.checks_only, Path(tmp)))
            print(check_launcher(args.checks_only, Path(tmp)))
        return 0
    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else "no GPU found"
        print(f"bench/gpu.py: no CUDA device ({build} of torch {torch.__version__}); "
              "nothing to measure. Run it on a machine with a GPU.")
        return 0
    print(f"GPU: {torch.cuda.get_device_name(0)}; torch {torch.__version__}, "
          f"CUDA {torch.version.cuda}")

    cnn = load_spec(ROOT / "specs" / "digits_cnn.yaml").spec
    data = resolved_dict(cnn)
    cnn = validate({**data, "training": {**data["training"], "early_stopping": None,
                                          "epochs": 20}})
    cases = {"digits_cnn (20 epochs)": cnn,
             f"mlp {args.rows:,}x50 ({args.epochs} epochs)":
                 validate(_mlp(args.rows, args.epochs, args.batch))}

    print(f"{'case':<34} {'device':<6} {'prec':<5} {'train s':>8} {'vs cpu':>7} "
          f"{'test acc':>8}")
    for name, spec in cases.items():
        cpu_s, cpu_acc = _time(_with(spec, "cpu", "fp32"), 1)
        print(f"{name:<34} {'cpu':<6} {'fp32':<5} {cpu_s:>8.2f} {1.0:>6.2f}x {cpu_acc:>8.4f}")
        for precision in ("fp32", "bf16", "fp16"):
            train(_with(spec, "cuda", precision))  # warm-up: kernels, cuBLAS handles
            s, acc = _time(_with(spec, "cuda", precision), args.rounds)
            print(f"{name:<34} {'cuda':<6} {precision:<5} {s:>8.2f} {cpu_s / s:>6.2f}x "
                  f"{acc:>8.4f}")

    # A cuda-trained run exports on the CPU and verifies against onnxruntime.
    from specnet.export import export_run

    run = train(_with(cnn, "cuda", "bf16"))
    assert run.metrics["device"].startswith("cuda"), run.metrics["device"]
    with tempfile.TemporaryDirectory() as tmp:
        exported = export_run(run, Path(tmp) / "digits_cnn")
    print(f"export of the cuda-trained digits_cnn: {exported.report['summary']}")
    with tempfile.TemporaryDirectory() as tmp:
        for check in (check_stream, check_launcher):
            try:
                print(check("cuda", Path(tmp)))
            except Exception as exc:  # report and go on: the other checks still tell
                print(f"{check.__name__} failed: {type(exc).__name__}: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
