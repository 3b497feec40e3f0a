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
from ..feed import BLANKS, F32_MAX, FALSE_WORDS, TRUE_WORDS
from .limits import Limits
from .protocol import MODEL_VERSION, NUMERIC

FLOAT32_LIMIT = 3.4028235677973366e38
"""The smallest magnitude that rounds to infinity as float32 (its max plus half an ulp):
a JSON number is a finite float32 input exactly when its magnitude is below this."""

def _words(*words: str) -> str:
    """A regex alternation of `words` in any case ('na' -> '[Nn][Aa]')."""
    return "|".join("".join(f"[{c.upper()}{c}]" if c.isalpha() else
                            f"\\{c}" if c in ".?" else c for c in w) for w in words)


_BLANK_WORDS = _words(*sorted(BLANKS - {""}))
_NUMBER_TEXT = (r"^\s*([-+]?([0-9]{1,18}(\.[0-9]{0,20})?|\.[0-9]{1,20})([eE][-+]?[0-9])?|"
                + _BLANK_WORDS + r"|)\s*$")
"""Numeric text `specnet.feed` reads as a number (small enough for float32: at most 18
integer digits and a one-digit exponent) or as a blank; white space around it is stripped."""
_BOOLEAN_TEXT = (r"^\s*(" + _words(*sorted(TRUE_WORDS | FALSE_WORDS)) + "|" + _BLANK_WORDS
                 + r"|)\s*$")
"""The words `specnet.feed` reads as true / false (any case), or as a blank."""

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
        """v2 inference request for `art` (raw-column models: one tensor per column,
        BYTES strings for text columns)."""
        columns = art.input_layout == "columns"
        names = list(art.input_types()) if columns else [art.input_name]
        value: dict[str, Any] = ({"anyOf": [self._number(), {"type": "string"}]} if columns
                                 else self._number())
        tensor = {
            "type": "object", "required": ["name", "shape", "datatype", "data"],
            "properties": {
                "name": {"type": "string", "enum": names},
                "shape": {"type": "array", "minItems": 1 if columns else 2,
                          "items": {"type": "integer", "minimum": 0},
                          "description": (f"[n] or [n, 1] (n <= {self.limits.max_rows})"
                                          if columns else f"[n, {art.n_features}] (n <= "
                                          f"{self.limits.max_rows})")},
                "datatype": {"type": "string",
                             "enum": [*NUMERIC, "BYTES"] if columns else list(NUMERIC)},
                "data": {"type": "array", "items": {"anyOf": [
                    value, {"type": "array", "items": value}]},
                    "description": "Row-major values, flat or nested; their count is the "
                                   "product of `shape`" + ("; strings for a BYTES (text) "
                                                           "column." if columns else ".")},
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
                "inputs": {"type": "array", "minItems": 1, "maxItems": len(names),
                           "items": tensor},
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
        """/predict request for `art`: rows or records (raw-column models: records only,
        each column typed as the model reads it)."""
        if art.input_layout == "columns":
            return {"required": True, "content": {"application/json": {
                "schema": self._column_records(art)}}}
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

    def _column_records(self, art: Artifact) -> dict[str, Any]:
        """{"records": [{column: value}]} of a raw-column model: every feature column
        required (other keys are passed over), typed as `specnet.feed` reads it."""
        return {"type": "object", "required": ["records"], "properties": {"records": {
            "type": "array", "minItems": 1, "maxItems": self.limits.max_rows,
            "items": {"type": "object", "required": list(art.feature_names),
                      "properties": {n: self._cell(art, n) for n in art.feature_names}}}},
            "description": "One object per row, one key per column (null for a blank)."}

    def _cell(self, art: Artifact, name: str) -> dict[str, Any]:
        """One raw column's value: text for categorical columns (numbers and true/false
        are read as their text); true/false, 0/1 or the words for boolean ones; a number
        or its text for numeric ones; null, or a blank word, for a blank."""
        column = art.column(name) or {}
        kind = column.get("type", "numeric")
        blank: dict[str, Any] = {"type": "null"}
        if art.input_types()[name] == "BYTES":
            cats = column.get("categories") or []
            return {"type": ["string", "number", "boolean", "null"], "description": (
                f"{name}: text (categorical; one of {', '.join(map(repr, cats[:20]))}"
                f"{' ...' if len(cats) > 20 else ''}; any other maps to <other>), null for "
                "a blank" if cats else f"{name}: text (categorical), null for a blank")}
        if kind == "boolean":
            return {"anyOf": [{"type": "boolean"}, {"enum": [0, 1]}, blank,
                              {"type": "string", "pattern": _BOOLEAN_TEXT}],
                    "description": f"{name}: true/false (or yes/no, 1/0), null for a blank"}
        finite = {"type": "number", "minimum": -F32_MAX, "maximum": F32_MAX}
        return {"anyOf": [finite, {"type": "boolean"}, blank,
                          {"type": "string", "pattern": _NUMBER_TEXT}],
                "description": f"{name}: a number (or its text), null for a blank"}

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
