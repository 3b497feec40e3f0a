"""The baseline for bench/serve.py: a FastAPI + torch server written the obvious way.

A pydantic request and response model, `torch.tensor(req.rows)`, `model(x)` under no_grad,
a sync endpoint (FastAPI runs it in its thread pool). It serves the same export folder as
`specnet serve` (weights.safetensors + preprocessing.json), with the same answer shape.

    python bench/plain_server.py exports/iris 8001
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import uvicorn
import yaml
from fastapi import FastAPI
from pydantic import BaseModel
from safetensors.torch import load_file

from specnet.compile import compile_spec
from specnet.spec.validate import validate


class PredictRequest(BaseModel):
    rows: list[list[float]]


class PredictResponse(BaseModel):
    labels: list[str]
    probabilities: list[list[float]]


def make_app(folder: Path) -> FastAPI:
    spec = validate(yaml.safe_load((folder / "spec.yaml").read_text()))
    model = compile_spec(spec)
    model.load_state_dict(load_file(folder / "weights.safetensors"))
    model.eval()
    pre = json.loads((folder / "preprocessing.json").read_text())
    offset = torch.tensor(pre["x_scaler"]["offset"])
    scale = torch.tensor(pre["x_scaler"]["scale"])
    labels = pre["class_labels"]
    app = FastAPI()

    @app.post("/predict")
    def predict(req: PredictRequest) -> PredictResponse:
        x = torch.tensor(req.rows)
        with torch.no_grad():
            probs = torch.softmax(model((x - offset) / scale), dim=1)
        return PredictResponse(labels=[labels[i] for i in probs.argmax(dim=1).tolist()],
                               probabilities=probs.tolist())

    return app


if __name__ == "__main__":
    uvicorn.run(make_app(Path(sys.argv[1])), host="127.0.0.1", port=int(sys.argv[2]),
                access_log=False, log_level="info")
