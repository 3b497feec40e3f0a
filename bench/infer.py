"""Inference speed, side by side in one run: onnxruntime (what predict / serve use) against
torch eager on the same exported model.

Both sides run the whole exported computation (input scaling, network, softmax) on the same
float32 rows with the same thread count: torch as `InferenceModel` under inference_mode
(`model(torch.from_numpy(X)).numpy()`), onnxruntime as `session.run` on model.onnx. Weights
are the seeded initial ones (speed does not depend on training). Each figure is the best of
`--repeats` medians of calls timed over ~0.2 s.

    python bench/infer.py              # iris MLP, digits MLP, digits CNN at batch 1, 64, 4096
    python bench/infer.py --threads 2  # more intra-op threads on both sides
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from specnet.compile import compile_spec
from specnet.data.prepare import prepare
from specnet.export import export_model, inference_model
from specnet.runtime import Runtime
from specnet.spec.validate import check, validate

MODELS: dict[str, dict[str, Any]] = {
    "iris MLP 16-16": {"data": "iris", "model": [{"linear": 16}, "relu", {"linear": 16},
                                                 "relu", {"linear": "auto"}]},
    "digits MLP 128-64": {"data": "digits", "model": [{"linear": 128}, "relu",
                                                      {"linear": 64}, "relu",
                                                      {"linear": "auto"}]},
    "digits CNN (specs/digits_cnn)": {
        "data": {"source": "digits", "as_image": True},
        "model": [{"conv2d": {"out_channels": 16, "kernel_size": 3, "padding": "same"}},
                  "relu", {"maxpool2d": 2},
                  {"conv2d": {"out_channels": 32, "kernel_size": 3, "padding": "same"}},
                  "batchnorm", "relu", {"maxpool2d": 2}, "flatten", {"linear": 64}, "relu",
                  {"dropout": 0.2}, {"linear": "auto"}]},
}
BATCHES = (1, 64, 4096)


def _time(fn: Callable[[], Any], repeats: int) -> float:
    """Seconds per call: best of `repeats` medians over ~0.2 s of calls."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        samples = []
        end = time.perf_counter() + 0.2
        while time.perf_counter() < end or len(samples) < 5:
            t = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t)
        best = min(best, statistics.median(samples))
    return best


def bench(threads: int, repeats: int) -> list[dict[str, Any]]:
    torch.set_num_threads(threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, body in MODELS.items():
            spec = check(validate({"name": "bench", **body})).spec
            net = compile_spec(spec).eval()
            prepared = prepare(spec)
            export_model(spec, net, prepared, Path(tmp) / "m")
            runtime = Runtime(Path(tmp) / "m", threads=threads)
            model = inference_model(spec, net, prepared.x_scaler, prepared.y_scaler)
            rng = np.random.default_rng(0)
            for batch in BATCHES:
                X = rng.standard_normal((batch, *prepared.input_shape)).astype(np.float32)

                def eager(X: np.ndarray = X, model: torch.nn.Module = model) -> np.ndarray:
                    with torch.inference_mode():
                        out: np.ndarray = model(torch.from_numpy(X)).numpy()
                    return out

                def ort(X: np.ndarray = X, runtime: Runtime = runtime) -> np.ndarray:
                    return runtime.run(X)

                np.testing.assert_allclose(ort(), eager(), rtol=1e-4, atol=1e-5)
                t_torch, t_ort = _time(eager, repeats), _time(ort, repeats)
                rows.append({"model": label, "batch": batch, "torch_us": t_torch * 1e6,
                             "onnxruntime_us": t_ort * 1e6, "speedup": t_torch / t_ort,
                             "onnxruntime_rows_per_s": batch / t_ort})
    return rows


def table(rows: list[dict[str, Any]], threads: int) -> str:
    lines = ["| model | batch | torch eager | onnxruntime | onnxruntime speedup | "
             "onnxruntime rows/s |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['batch']:,} | {_us(r['torch_us'])} | "
                     f"{_us(r['onnxruntime_us'])} | {r['speedup']:.1f}x | "
                     f"{r['onnxruntime_rows_per_s']:,.0f} |")
    lines.append(f"\n(per call, {threads} intra-op thread(s) on both sides; torch "
                 f"{torch.__version__})")
    return "\n".join(lines)


def _us(us: float) -> str:
    return f"{us:,.0f} µs" if us >= 100 else f"{us:.1f} µs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" /
                        "infer.json")
    args = parser.parse_args()
    rows = bench(args.threads, args.repeats)
    print(table(rows, args.threads))
    args.json.parent.mkdir(exist_ok=True)
    args.json.write_text(json.dumps({"threads": args.threads, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
