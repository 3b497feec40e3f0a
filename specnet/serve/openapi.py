"""The OpenAPI document of `specnet serve`: every request body and every error, for the
served model (input names, feature names, row limit), served at /openapi.json and /docs.

Routes take raw bodies (the fast path parses them straight into numpy), so FastAPI cannot
infer the bodies: `Docs` hands each route its `openapi_extra` and `responses`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from ..artifact import Artifact
from .limits import Limits
from .protocol import MODEL_VERSION, NUMERIC

FLOAT32_LIMIT = 3.4028235677973366e38
"""The smallest magnitude that rounds to infinity as float32 (its max plus half an ulp):
a JSON number is a finite float32 input exactly when its magnitude is below this."""

_ERROR = {"type": "object", "required": ["error"],
          "properties": {"error": {"type": "string", "description": "What was wrong."}}}
_GET_ERRORS = {
    "404": "Unknown model or version.",
    "503": "Server busy: too many requests in flight (--limit-concurrency).",
}
_POST_ERRORS = {
    "400": "Malformed JSON, or tensors / rows that do not fit the model (the message "
           "names the tensor, row and column).",
    "404": "Unknown model or version.",
    "408": "The request body did not arrive within the body timeout.",
    "413": "Body (or decompressed body) over the size limit, or more rows than allowed.",
    "415": "Content-Type other than application/json or application/octet-stream, or a "
           "Content-Encoding other than gzip / deflate.",
    "503": "Server busy: too many requests in flight or queued for the worker pool.",
}


def _errors(table: dict[str, str]) -> dict[int | str, dict[str, Any]]:
    return {code: {"description": text, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Error"}}}} for code, text in table.items()}


class Docs:
    """OpenAPI pieces for the served models (name -> Artifact)."""

    def __init__(self, arts: Mapping[str, Artifact], limits: Limits) -> None:
        self.arts = dict(arts)
        self.limits = limits

    def _art(self, name: str | None) -> Artifact:
        return self.arts[name] if name is not None else next(iter(self.arts.values()))

    def get(self, summary: str, *, text: bool = False) -> dict[str, Any]:
        """Route keywords for a GET."""
        ok: dict[str, Any] = {"description": "OK", "content": {
            "text/plain" if text else "application/json": {"schema": {}}}}
        return {"summary": summary, "responses": {200: ok, **_errors(_GET_ERRORS)}}

    def post(self, summary: str, kind: str, name: str | None = None) -> dict[str, Any]:
        """Route keywords for a POST with a `kind` body (infer, predict, index) for model
        `name` (default: the only one)."""
        ok: dict[str, Any] = {"description": "OK", "content": {
            "application/json": {"schema": {}}}}
        if kind == "infer":
            ok["content"]["application/octet-stream"] = {"schema": {
                "type": "string", "format": "binary"}}
            ok["description"] = ("The v2 response; with binary outputs, the JSON header "
                                 "(Inference-Header-Content-Length bytes) then the tensors.")
        art = self._art(name)
        body = {"infer": lambda: self.infer_body(art), "predict": lambda: self.predict_body(art),
                "index": self.index_body}[kind]()
        return {"summary": summary, "openapi_extra": {"requestBody": body},
                "responses": {200: ok, **_errors(_POST_ERRORS)}}

    # ------------------------------------------------------------ bodies

    def _number(self) -> dict[str, Any]:
        return {"type": "number", "exclusiveMinimum": -FLOAT32_LIMIT,
                "exclusiveMaximum": FLOAT32_LIMIT}

    def infer_body(self, art: Artifact) -> dict[str, Any]:
        """v2 inference request for `art`."""
        tensor = {
            "type": "object", "required": ["name", "shape", "datatype", "data"],
            "properties": {
                "name": {"type": "string", "enum": [art.input_name]},
                "shape": {"type": "array", "minItems": 2,
                          "items": {"type": "integer", "minimum": 0},
                          "description": f"[n, {art.n_features}] (n <= "
                                         f"{self.limits.max_rows})"},
                "datatype": {"type": "string", "enum": list(NUMERIC)},
                "data": {"type": "array", "items": {"anyOf": [
                    self._number(), {"type": "array", "items": self._number()}]},
                    "description": "Row-major values, flat or nested; their count is the "
                                   "product of `shape`."},
                "parameters": {"type": "object", "properties": {
                    "binary_data_size": {"type": "integer", "minimum": 0}}},
            },
        }
        request = {
            "type": "object", "required": ["inputs"],
            "properties": {
                "id": {"type": "string"},
                "parameters": {"type": "object", "properties": {
                    "binary_data_output": {"type": "boolean"}}},
                "inputs": {"type": "array", "minItems": 1, "maxItems": 1, "items": tensor},
                "outputs": {"type": "array", "items": {
                    "type": "object", "required": ["name"],
                    "properties": {"name": {"type": "string", "enum": [art.output_name]},
                                   "parameters": {"type": "object", "properties": {
                                       "binary_data": {"type": "boolean"}}}}}},
            },
        }
        return {"required": True, "description": (
            "A v2 inference request. Binary tensor data extension: send the JSON header, "
            "then each tensor's little-endian bytes (`parameters.binary_data_size`), with "
            "`Inference-Header-Content-Length: <JSON bytes>` and Content-Type "
            "application/octet-stream. Content-Encoding gzip / deflate accepted."),
            "content": {"application/json": {"schema": request}}}

    def predict_body(self, art: Artifact) -> dict[str, Any]:
        """/predict request for `art`: rows or records."""
        n = art.n_features
        rows = {"type": "object", "required": ["rows"], "properties": {"rows": {
            "type": "array", "minItems": 1, "maxItems": self.limits.max_rows,
            "items": {"type": "array", "minItems": n, "maxItems": n,
                      "items": self._number()}}}}
        records = {"type": "object", "required": ["records"], "properties": {"records": {
            "type": "array", "minItems": 1, "maxItems": self.limits.max_rows,
            "items": {"type": "object", "required": list(art.feature_names),
                      "properties": {f: self._number() for f in art.feature_names}}}}}
        if len(art.input_shape) > 1 or len(art.feature_names) != n:
            return {"required": True, "content": {"application/json": {"schema": rows}}}
        return {"required": True, "content": {"application/json": {"schema": {
            "oneOf": [
                {**rows, "not": {"required": ["records"]}},
                {**records, "not": {"required": ["rows"]}},
            ]}}}}

    def index_body(self) -> dict[str, Any]:
        """Repository index request (may be empty)."""
        return {"required": False, "content": {"application/json": {"schema": {
            "type": "object", "properties": {"ready": {"type": "boolean"}}}}}}

    # ------------------------------------------------------------ the document

    def finish(self, app: FastAPI) -> dict[str, Any]:
        """The whole document: FastAPI's, with the error schema and without the 422s
        FastAPI adds for path parameters (specnet answers 400 / 404 instead)."""
        doc = get_openapi(title=app.title, version=app.version or "0",
                          description=app.description, routes=app.routes)
        for path in doc.get("paths", {}).values():
            for op in path.values():
                op.get("responses", {}).pop("422", None)
                for p in op.get("parameters", []):
                    if p.get("in") != "path":
                        continue
                    if p.get("name") == "version":
                        p["description"] = "Model version (every model has version 1)."
                        p["schema"] = {"type": "string", "enum": [MODEL_VERSION]}
                    elif p.get("name") == "name":
                        p["description"] = "Model name."
                        p["schema"] = {"type": "string", "enum": list(self.arts)}
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        schemas["Error"] = _ERROR
        if not schemas or set(schemas) == {"Error"}:
            doc["components"]["schemas"] = {"Error": _ERROR}
        return doc
