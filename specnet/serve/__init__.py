"""`specnet serve`: Open Inference Protocol v2 over onnxruntime (FastAPI + uvicorn), torch-free.

  app.py         the HTTP routes
  repository.py  what `specnet serve PATH` serves: one model or a repository of several
  protocol.py    v2 requests and responses (JSON and binary tensors, datatypes), transport-free
  grpc.py        the same protocol over gRPC (`--grpc-port`)
  limits.py      sizes, timeouts, concurrency, the worker pool, the connection guard
  openapi.py     the OpenAPI document (/openapi.json, /docs)
  stats.py       Prometheus metrics and Triton-style statistics
  run.py         uvicorn: one process or N workers
"""

from __future__ import annotations

from .app import create_app as create_app
from .app import load_model as load_model
from .app import load_models as load_models
from .limits import Limits as Limits
from .protocol import HTTPError as HTTPError
from .protocol import ProtocolError as ProtocolError
from .run import CONFIG_ENV as CONFIG_ENV
from .run import app_from_env as app_from_env
from .run import serve as serve
