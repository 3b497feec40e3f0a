"""Parity of an exported model: onnxruntime against the torch model it came from.

Both sides take the same raw rows and give outputs in user terms (probabilities or
values), so the check covers the preprocessing and the output head as well as the
network. Rows are run in batches of several sizes (1, 2, an odd size and a large one)
on the real test split and on random rows, and compared element by element with
`|onnx - torch| <= atol + rtol * |torch|` (numpy.allclose's rule); classifiers must also
pick the same class on every row (rows whose top two classes are tied within the
tolerance are reported as ties, not as disagreements).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import VerificationError

if TYPE_CHECKING:
    from torch import nn

BATCH_SIZES = (1, 2, 7, 1024)
"""Batch sizes every export is checked at: single rows, a pair, an odd size, a big batch."""
MAX_BATCHES = 256
"""At most this many batches per data set and batch size (keeps verification to seconds)."""

Reference = Callable[[np.ndarray], np.ndarray]
"""Raw rows (n, *input_shape) float32 -> model outputs in user terms, as numpy."""


def torch_reference(model: nn.Module) -> Reference:
    """A Reference that runs `model` (eval mode, CPU, no autograd) on numpy rows."""
    import torch

    model.eval()

    def run(X: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out: np.ndarray = model(torch.from_numpy(X)).numpy()
        return out

    return small_batches_on_one_thread(run)


def small_batches_on_one_thread(run: Reference) -> Reference:
    """Wrap a torch Reference so batches under 64 rows run on one torch thread.

    Tiny batches run faster on one thread, and far faster on a busy machine, where
    torch's thread pool waits for cores for every op.
    """
    import torch

    def wrapped(X: np.ndarray) -> np.ndarray:
        threads = torch.get_num_threads()
        torch.set_num_threads(1 if len(X) < 64 else threads)
        try:
            return run(X)
        finally:
            torch.set_num_threads(threads)

    return wrapped


def onnx_reference(model: bytes | str) -> Reference:
    """A Reference that runs an ONNX model (bytes or a path) with onnxruntime on the CPU."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(X: np.ndarray) -> np.ndarray:
        out: np.ndarray = session.run(None, {name: X})[0]
        return out

    return run


def _batches(X: np.ndarray, size: int) -> list[np.ndarray]:
    """X cut into batches of exactly `size` rows (rows repeated to fill the last one)."""
    n = min(max(len(X), size), MAX_BATCHES * size)
    n = -(-n // size) * size  # round up to whole batches
    idx = np.arange(n) % len(X)
    return [X[idx[i:i + size]] for i in range(0, n, size)]


def _labels(task: str, out: np.ndarray) -> np.ndarray:
    return (out.reshape(-1) > 0.5).astype(np.int64) if task == "binary" else out.argmax(axis=1)


def compare(task: str, onnx_out: np.ndarray, torch_out: np.ndarray, rtol: float,
            atol: float) -> dict[str, Any]:
    """Error figures of one batch set: max abs / rel error, values outside, argmax agreement.

    max_rel_err is taken over elements with |torch| >= atol (relative error of values
    that are zero within tolerance means nothing).
    """
    if onnx_out.shape != torch_out.shape:
        return {"shape_mismatch": [list(onnx_out.shape), list(torch_out.shape)],
                "max_abs_err": float("inf"), "max_rel_err": float("inf"),
                "outside": int(torch_out.size), "values": int(torch_out.size), "ok": False}
    o = onnx_out.astype(np.float64)
    t = torch_out.astype(np.float64)
    err = np.abs(o - t)
    bad = ~(err <= atol + rtol * np.abs(t))  # NaN counts as bad
    big = np.abs(t) >= atol
    rel = err[big] / np.abs(t[big]) if big.any() else np.zeros(1)
    res: dict[str, Any] = {
        "max_abs_err": float(err.max()) if err.size else 0.0,
        "max_rel_err": float(rel.max()) if rel.size else 0.0,
        "outside": int(bad.sum()), "values": int(t.size),
    }
    ok = res["outside"] == 0
    if task != "regression":
        lo, lt = _labels(task, onnx_out), _labels(task, torch_out)
        differ = lo != lt
        if task == "binary":
            margin = np.abs(t.reshape(-1) - 0.5)
            tol = atol + rtol * 0.5
        else:
            rows = np.arange(len(t))
            margin = np.abs(t[rows, lt] - t[rows, lo])
            tol = 2 * (atol + rtol * np.abs(t[rows, lt]))
        ties = differ & (margin <= tol)
        res["argmax_agreement"] = float(1.0 - differ.mean()) if len(differ) else 1.0
        res["argmax_disagreements"] = int((differ & ~ties).sum())
        res["argmax_ties"] = int(ties.sum())
        ok = ok and res["argmax_disagreements"] == 0
    res["ok"] = bool(ok)
    return res


def parity(onnx_run: Reference, torch_run: Reference, data: dict[str, np.ndarray], *,
           task: str, rtol: float, atol: float,
           batch_sizes: Sequence[int] = BATCH_SIZES) -> dict[str, Any]:
    """Run both sides on every data set at every batch size and collect the report.

    data: name -> raw rows (n, *input_shape) float32 (e.g. {"test": ..., "random": ...}).
    Returns the report dict (JSON-able); `passed` tells whether every check held.
    """
    checks: list[dict[str, Any]] = []
    for name, X in data.items():
        if len(X) == 0:
            continue
        if isinstance(X, np.ndarray):  # raw-column models verify on tables of columns
            X = np.ascontiguousarray(X, dtype=np.float32)
        for size in batch_sizes:
            batches = _batches(X, size)
            o = np.concatenate([onnx_run(b) for b in batches])
            t = np.concatenate([torch_run(b) for b in batches])
            checks.append({"data": name, "batch_size": size, "rows": len(t),
                           **compare(task, o, t, rtol, atol)})
    if not checks:
        raise VerificationError("nothing to verify: no rows in any data set")
    passed = all(c["ok"] for c in checks)
    report: dict[str, Any] = {
        "passed": passed, "rtol": rtol, "atol": atol, "task": task,
        "batch_sizes": list(batch_sizes), "data": {k: len(v) for k, v in data.items()},
        "max_abs_err": max(c["max_abs_err"] for c in checks),
        "max_rel_err": max(c["max_rel_err"] for c in checks),
        "rows_checked": sum(c["rows"] for c in checks),
    }
    if task != "regression":
        report["argmax_agreement"] = min(c["argmax_agreement"] for c in checks)
        report["argmax_ties"] = sum(c["argmax_ties"] for c in checks)
    report["checks"] = checks
    report["summary"] = _summary(report)
    return report


def _summary(report: dict[str, Any]) -> str:
    tol = f"rtol {report['rtol']:g} / atol {report['atol']:g}"
    figures = (f"max abs error {report['max_abs_err']:.3g}, max rel error "
               f"{report['max_rel_err']:.3g}")
    if "argmax_agreement" in report:
        figures += f", argmax agreement {report['argmax_agreement']:.2%}"
    n = len(report["checks"])
    if report["passed"]:
        return (f"onnxruntime matches torch within {tol} on {n} checks "
                f"({report['rows_checked']} rows, batch sizes "
                f"{', '.join(map(str, report['batch_sizes']))}): {figures}")
    failed = [c for c in report["checks"] if not c["ok"]]
    lines = [f"onnxruntime and torch disagree beyond {tol} in {len(failed)} of {n} checks "
             f"({figures}):"]
    for c in failed[:6]:
        if "shape_mismatch" in c:
            lines.append(f"  {c['data']} rows, batch size {c['batch_size']}: output shapes "
                         f"differ: onnx {c['shape_mismatch'][0]} vs torch "
                         f"{c['shape_mismatch'][1]}")
            continue
        line = (f"  {c['data']} rows, batch size {c['batch_size']}: max abs error "
                f"{c['max_abs_err']:.3g}, max rel error {c['max_rel_err']:.3g}, "
                f"{c['outside']} of {c['values']} values outside")
        if "argmax_agreement" in c:
            line += (f", argmax agrees on {c['argmax_agreement']:.2%} of {c['rows']} rows "
                     f"({c['argmax_disagreements']} real disagreements)")
        lines.append(line)
    if len(failed) > 6:
        lines.append(f"  ... and {len(failed) - 6} more")
    return "\n".join(lines)


def verify(onnx_run: Reference, torch_run: Reference, data: dict[str, np.ndarray], *,
           task: str, rtol: float, atol: float,
           batch_sizes: Sequence[int] = BATCH_SIZES) -> dict[str, Any]:
    """`parity`, raising VerificationError (exit code 3) with the figures when it fails."""
    report = parity(onnx_run, torch_run, data, task=task, rtol=rtol, atol=atol,
                    batch_sizes=batch_sizes)
    if not report["passed"]:
        raise VerificationError(report["summary"])
    return report


def random_rows(offset: np.ndarray, scale: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n random raw rows (n, *offset.shape): N(offset, (2 * scale)^2), float32, seeded."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, *offset.shape)) * 2.0
    return (z * scale + offset).astype(np.float32)
