"""Counters of one server process: Prometheus metrics and Triton-style model statistics.

Per worker process: with --workers N each worker counts its own requests.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Mapping
from typing import Any

from ..artifact import Artifact

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""Latency histogram bucket bounds, seconds."""


class Metrics:
    """Request counters and a latency histogram, rendered in Prometheus text format.

    Per worker process: with --workers N each worker counts its own requests.
    """

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = {}
        self.rows: dict[str, int] = {}
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.duration_sum = 0.0
        self.count = 0

    def observe(self, endpoint: str, status: int, seconds: float, rows: int) -> None:
        """Record one answered request."""
        key = (endpoint, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        if rows:
            self.rows[endpoint] = self.rows.get(endpoint, 0) + rows
        self.buckets[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.duration_sum += seconds
        self.count += 1

    def render(self, models: Mapping[str, Artifact]) -> str:
        """Prometheus exposition text (version 0.0.4); `models`: served name -> model."""
        out = [
            "# HELP specnet_model_info The served models.",
            "# TYPE specnet_model_info gauge",
            *(f'specnet_model_info{{name="{_esc(name)}",task="{art.task}",'
              f'spec_sha256="{art.spec_sha256}"}} 1' for name, art in models.items()),
            "# HELP specnet_requests_total Requests answered, by endpoint and status code.",
            "# TYPE specnet_requests_total counter",
        ]
        for (endpoint, status), n in sorted(self.requests.items()):
            out.append(f'specnet_requests_total{{endpoint="{endpoint}",code="{status}"}} {n}')
        errors: dict[str, int] = {}
        for (endpoint, status), n in self.requests.items():
            if status >= 400:
                errors[endpoint] = errors.get(endpoint, 0) + n
        out += ["# HELP specnet_request_errors_total Requests answered with a 4xx or 5xx.",
                "# TYPE specnet_request_errors_total counter"]
        out += [f'specnet_request_errors_total{{endpoint="{e}"}} {n}'
                for e, n in sorted(errors.items())]
        out += ["# HELP specnet_rows_total Rows predicted.", "# TYPE specnet_rows_total counter"]
        out += [f'specnet_rows_total{{endpoint="{e}"}} {n}' for e, n in sorted(self.rows.items())]
        out += ["# HELP specnet_request_duration_seconds Time to answer a request.",
                "# TYPE specnet_request_duration_seconds histogram"]
        total = 0
        for bound, n in zip((*BUCKETS, float("inf")), self.buckets, strict=True):
            total += n
            le = "+Inf" if bound == float("inf") else f"{bound:g}"
            out.append(f'specnet_request_duration_seconds_bucket{{le="{le}"}} {total}')
        out.append(f"specnet_request_duration_seconds_sum {self.duration_sum:.6f}")
        out.append(f"specnet_request_duration_seconds_count {self.count}")
        return "\n".join(out) + "\n"


def _esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _duration(count: int = 0, ns: int = 0) -> dict[str, int]:
    return {"count": count, "ns": ns}


class ModelStats:
    """Inference statistics in the form of Triton's statistics extension."""

    def __init__(self) -> None:
        self.last_inference_ms = 0
        self.inference_count = 0
        self.execution_count = 0
        self.totals: dict[str, list[int]] = {k: [0, 0] for k in (
            "success", "fail", "queue", "compute_input", "compute_infer", "compute_output")}
        self.batches: dict[int, list[int]] = {}

    def add(self, key: str, ns: int) -> None:
        """Count one `key` event (success, fail, queue, compute_*) lasting `ns`."""
        total = self.totals[key]
        total[0] += 1
        total[1] += ns

    def executed(self, rows: int, input_ns: int, infer_ns: int, output_ns: int) -> None:
        """Record one model execution over `rows` rows."""
        self.last_inference_ms = int(time.time() * 1000)
        self.inference_count += rows
        self.execution_count += 1
        self.add("compute_input", input_ns)
        self.add("compute_infer", infer_ns)
        self.add("compute_output", output_ns)
        b = self.batches.setdefault(rows, [0, 0, 0, 0])
        b[0] += 1
        b[1] += input_ns
        b[2] += infer_ns
        b[3] += output_ns

    def render(self, name: str, version: str) -> dict[str, Any]:
        """One `model_stats` entry."""
        return {
            "name": name, "version": version, "last_inference": self.last_inference_ms,
            "inference_count": self.inference_count, "execution_count": self.execution_count,
            "inference_stats": {**{k: _duration(*v) for k, v in self.totals.items()},
                                "cache_hit": _duration()},
            "batch_stats": [{"batch_size": size, "compute_input": _duration(n, i),
                             "compute_infer": _duration(n, f), "compute_output": _duration(n, o)}
                            for size, (n, i, f, o) in sorted(self.batches.items())],
        }
