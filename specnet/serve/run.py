"""Running the server: uvicorn with specnet's limits, one process or N workers on one port,
serving one model or a model repository."""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import SpecnetError
from ..runtime import Runtime, default_threads
from .app import create_app, load_models
from .limits import GuardedHTTP, Limits, configure

CONFIG_ENV = "SPECNET_SERVE_CONFIG"


def app_from_env() -> Any:
    """uvicorn factory for worker processes: the configuration comes in CONFIG_ENV."""
    cfg = json.loads(os.environ[CONFIG_ENV])
    limits = Limits(**cfg["limits"])
    configure(limits)
    app = create_app(cfg["model"], allow_unverified=cfg["allow_unverified"],
                     threads=cfg["threads"], limits=limits)
    gc.freeze()
    return app


def _healthcheck(uvicorn: Any) -> dict[str, Any]:
    """A worker start-up allowance for uvicorn >= 0.37 (which pings its workers).

    Each worker is a fresh (spawned) interpreter that imports numpy, onnxruntime and
    FastAPI before it can answer the supervisor's ping: several seconds on a loaded
    machine, past uvicorn's default of 5, after which it kills and restarts the worker.
    """
    import inspect

    if "timeout_worker_healthcheck" in inspect.signature(uvicorn.Config).parameters:
        return {"timeout_worker_healthcheck": 60}
    return {}


def serve(model: str | Path, *, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          threads: int | None = None, limits: Limits | None = None,
          allow_unverified: bool = False, access_log: bool = False,
          log_level: str = "info", models: Mapping[str, Runtime] | None = None) -> None:
    """Run the server until interrupted (SIGINT / SIGTERM drain in-flight requests first,
    for at most `limits.graceful_timeout` seconds).

    model: an exported model or a model repository (see `serve.repository`). Every model
    is opened (its verification checked, the memory budget counted over all of them and
    every worker) before anything listens, so a bad one fails fast. `models`: those
    models already open (`load_models(model)`), to share them with a gRPC server.
    """
    import uvicorn

    threads = threads or default_threads(workers)
    limits = limits or Limits()
    configure(limits)
    if models is None:
        models = load_models(model, allow_unverified=allow_unverified, threads=threads,
                             copies=workers)
    app: Any = "specnet.serve:app_from_env"
    if workers == 1:
        app = create_app(models, limits=limits)
    else:
        os.environ[CONFIG_ENV] = json.dumps({
            "model": str(Path(model).resolve()), "allow_unverified": allow_unverified,
            "threads": threads, "limits": limits.as_dict()})
    del models
    # What is loaded by now (modules, the models, the app) lives as long as the server:
    # out of the collector's sight, a full collection only walks what requests made. A
    # 10,000-row JSON body makes 10,000 lists, so full collections come often; walking
    # every module's objects each time held the GIL long enough to put the p99 of health
    # checks under such load at 71-92 ms (26-29 ms frozen; bench/serve.py).
    gc.freeze()
    try:
        uvicorn.run(app, host=host, port=port, workers=workers, factory=workers > 1,
                    access_log=access_log, log_level=log_level, http=GuardedHTTP,
                    timeout_keep_alive=limits.keep_alive,
                    timeout_graceful_shutdown=limits.graceful_timeout, **_healthcheck(uvicorn))
    except SystemExit as exc:
        # uvicorn logs why it could not start (e.g. the port is taken) and exits: with 3 (the
        # code specnet keeps for a failed verification) from 0.50, with 1 before.
        if exc.code in (1, 3):
            raise SpecnetError(f"cannot serve on {host}:{port} (see the uvicorn error "
                               "above)") from None
        raise
