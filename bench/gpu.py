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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
