"""Open Inference Protocol v2 (KServe / Triton): requests and responses, transport-free.

The same core serves HTTP (`app.py`) and gRPC: a transport turns its wire format into
tensors with `decode_tensor` (JSON `data` lists or raw little-endian bytes, as the binary
tensor data extension and gRPC's `raw_input_contents` carry them), `model_input` checks
them against the model and casts them safely to its input type, the runtime runs, and
`output_tensors` / `encode_http_response` give the answer back.

Datatypes (v2 names): BOOL, UINT8..UINT64, INT8..INT64, FP16, FP32, FP64, BYTES.
Every numeric type is accepted and cast to the model's FP32 input with range checks;
BOOL is refused; BYTES (length-prefixed in binary, strings in JSON) decodes to an object
array for models that take text columns, and is refused by models that take none.

Errors raise ProtocolError(status, message): the transport maps the status (400, 404,
413, 415, 503) to its own code (HTTP status, gRPC INVALID_ARGUMENT / NOT_FOUND ...).
"""

from __future__ import annotations

import gzip
import json
import math
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from ..artifact import Artifact
from ..errors import ModelInputError
from ..feed import feed_from_columns
from ..runtime import check_array

_orjson: Any
try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson is in the serve extra
    _orjson = None

T = TypeVar("T")

MODEL_VERSION = "1"
"""The one version every served model has (an export folder holds one model)."""

NUMERIC: dict[str, np.dtype[Any]] = {
    name: np.dtype(t).newbyteorder("<") for name, t in (
        ("UINT8", np.uint8), ("UINT16", np.uint16), ("UINT32", np.uint32),
        ("UINT64", np.uint64), ("INT8", np.int8), ("INT16", np.int16), ("INT32", np.int32),
        ("INT64", np.int64), ("FP16", np.float16), ("FP32", np.float32),
        ("FP64", np.float64))
}
"""v2 numeric datatype -> little-endian numpy dtype (the binary extension's byte order)."""
DATATYPES = ("BOOL", *NUMERIC, "BYTES")
"""Every datatype the protocol names, in the order error messages list them."""
EXTENSIONS = ["binary_tensor_data", "model_configuration", "model_repository", "statistics"]
"""What server metadata advertises (Triton's extension names)."""


class ProtocolError(Exception):
    """A request the protocol refuses: `status` is the HTTP code (400, 404, 413, 415, 503)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


HTTPError = ProtocolError
"""The name the first version used."""


# ---------------------------------------------------------------- bodies


def decompress(body: bytes, encoding: str | None, max_bytes: int) -> bytes:
    """The body after its `Content-Encoding` (gzip, deflate or identity), at most max_bytes.

    Decompresses in bounded steps, so a small bomb cannot allocate more than the limit.
    """
    enc = (encoding or "identity").strip().lower()
    if enc in ("identity", ""):
        return body
    if enc not in ("gzip", "x-gzip", "deflate"):
        raise ProtocolError(415, f"unsupported Content-Encoding {encoding!r}: send gzip, "
                                 "deflate or an uncompressed body")
    # gzip: wbits 16+15; deflate is zlib-wrapped (RFC 9110), but raw deflate is common
    # enough that it is accepted too (wbits -15).
    for wbits in ((31,) if enc != "deflate" else (15, -15)):
        d = zlib.decompressobj(wbits)
        try:
            out = d.decompress(body, max_bytes + 1)
        except zlib.error:
            continue
        if len(out) > max_bytes or d.unconsumed_tail:
            raise ProtocolError(413, f"body too large: at most {max_bytes} bytes once "
                                     "decompressed")
        if not d.eof:
            break
        return out
    raise ProtocolError(400, f"the body is not valid {enc} data (Content-Encoding: "
                             f"{encoding})")


def compress(body: bytes, accept_encoding: str | None,
             min_bytes: int = 1024) -> tuple[bytes, str | None]:
    """(body, Content-Encoding) compressed as the client accepts (gzip before deflate).

    Bodies under `min_bytes` go as they are: compressing them costs more than it saves.
    """
    if not accept_encoding or len(body) < min_bytes:
        return body, None
    accepted = _accepted(accept_encoding)
    if accepted.get("gzip", 0) > 0:
        return gzip.compress(body, compresslevel=1, mtime=0), "gzip"
    if accepted.get("deflate", 0) > 0:
        return zlib.compress(body, 1), "deflate"
    return body, None


def _accepted(header: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in header.split(","):
        name, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        out[name.strip().lower()] = q
    return out


def loads(data: bytes | memoryview) -> Any:
    """Parse JSON strictly (no NaN / Infinity); ProtocolError 400 when malformed.

    Integers beyond 64 bits (which orjson refuses) are read as floats.
    """
    if _orjson is not None:
        try:
            return _orjson.loads(data)
        except _orjson.JSONDecodeError as exc:
            if "integer" not in str(exc).lower():
                raise ProtocolError(400, f"malformed JSON: {exc}") from None
    try:
        return json.loads(bytes(data), parse_int=float, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(400, f"malformed JSON: {exc}") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (use a finite number)")


def json_object(body: bytes | memoryview, what: str) -> dict[str, Any]:
    """The body as a JSON object (400 naming `what` it should hold otherwise)."""
    if not bytes(body).strip():
        raise ProtocolError(400, f"empty body: expected a JSON object with {what}")
    data = loads(body)
    if not isinstance(data, dict):
        raise ProtocolError(400, f"expected a JSON object with {what}, got "
                                 f"{type(data).__name__}")
    return data


def contains_bool(data: Any) -> bool:
    """Whether (nested) JSON `data` holds a true / false anywhere."""
    if isinstance(data, list):
        return any(v is True or v is False or (isinstance(v, list) and contains_bool(v))
                   for v in data)
    return data is True or data is False


# ---------------------------------------------------------------- tensors


@dataclass
class RequestedOutput:
    """One entry of a request's `outputs`: its name and whether to send it as binary."""

    name: str
    binary: bool | None = None


@dataclass
class InferRequest:
    """A decoded inference request: input tensors by name, in request order."""

    inputs: dict[str, np.ndarray]
    datatypes: dict[str, str]
    id: str | None = None
    outputs: list[RequestedOutput] = field(default_factory=list)
    binary_output: bool = False
    parameters: dict[str, Any] = field(default_factory=dict)


def check_datatype(name: str, datatype: Any) -> str:
    """`datatype` when the protocol takes it for an input; 400 for an unknown name and
    for BOOL (true/false are not numbers the model takes)."""
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise ProtocolError(400, f"input {name!r}: datatype must be one of "
                                 f"{', '.join(DATATYPES)}, got {datatype!r:.40}")
    if datatype == "BOOL":
        raise ProtocolError(400, f"input {name!r}: BOOL tensors are not accepted: the model "
                                 "takes numbers (send 0 / 1 as INT8 or FP32 if you mean "
                                 "them as numbers)")
    return datatype


def _shape(shape: Any, name: str) -> list[int]:
    if (not isinstance(shape, list)
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                       for d in shape)):
        raise ProtocolError(400, f"input {name!r}: shape must be a list of non-negative "
                                 f"integers like [n, 4], got {shape!r:.80}")
    return shape


def decode_tensor(name: str, datatype: Any, shape: Any, *, data: Any = None,
                  raw: bytes | memoryview | None = None, check_bools: bool = True,
                  source: str = "'data'") -> np.ndarray:
    """One input tensor as a numpy array of `shape`, from a list of values or `raw` bytes.

    raw: little-endian, row-major; BYTES elements as a 4-byte little-endian length and the
    bytes (the binary tensor data extension and gRPC `raw_input_contents`).
    data: a flat or nested list: numbers, or strings / bytes for BYTES (JSON `data`, or
    the values of a gRPC typed `contents` field); `source` names it in messages.
    Numeric values are checked against `datatype`'s range (integers for integer types)
    and keep its dtype; `model_input` / `model_feed` cast them for the model. BYTES gives
    an object array of bytes or str.
    """
    datatype = check_datatype(name, datatype)
    dims = _shape(shape, name)
    size = math.prod(dims)
    if raw is not None:
        if datatype == "BYTES":
            return _bytes_from_raw(name, raw, size).reshape(dims)
        dtype = NUMERIC[datatype]
        if len(raw) != size * dtype.itemsize:
            raise ProtocolError(400, f"input {name!r}: shape {dims} of {datatype} needs "
                                     f"{size * dtype.itemsize} bytes, got {len(raw)}")
        return np.frombuffer(raw, dtype=dtype).reshape(dims)
    if not isinstance(data, list):
        raise ProtocolError(400, f"input {name!r}: {source} must be a list of "
                                 f"{'strings' if datatype == 'BYTES' else 'numbers'} (or "
                                 "send the tensor as binary data), got "
                                 f"{type(data).__name__}")
    if datatype == "BYTES":
        return _bytes_from_list(name, data, dims, size, source)
    if check_bools and contains_bool(data):
        raise ProtocolError(400, f"input {name!r}: {source} must hold numbers ({datatype}); "
                                 "found true/false")
    try:
        arr = to_array(data)
    except (ValueError, TypeError, OverflowError):
        raise ProtocolError(400, f"input {name!r}: {source} must be a flat (or evenly "
                                 "nested) list of numbers; it is ragged") from None
    if arr.dtype.kind not in "iuf" and arr.size:
        raise ProtocolError(400, f"input {name!r}: {source} must hold numbers ({datatype}); "
                                 f"found {_first_non_number(data)!r:.40}")
    if arr.size != size:
        raise ProtocolError(400, f"input {name!r}: shape {dims} needs {size} values, "
                                 f"{source} has {arr.size}")
    return _in_range(name, arr.reshape(dims), datatype)


CHUNK = 2048
"""List items numpy converts per call: numpy holds the GIL while it converts a list, so
large ones go in slices and the event loop thread gets a turn in between."""


def to_array(data: list[Any]) -> np.ndarray:
    """np.asarray(data) for a (nested) list, in slices of CHUNK items; ValueError when
    ragged (as numpy would raise)."""
    if len(data) <= CHUNK:
        return np.asarray(data)
    parts = [np.asarray(data[i:i + CHUNK]) for i in range(0, len(data), CHUNK)]
    if len({p.shape[1:] for p in parts}) != 1:
        raise ValueError("ragged")
    return np.concatenate(parts)


def _in_range(name: str, arr: np.ndarray, datatype: str) -> np.ndarray:
    """JSON numbers as `datatype`: integers for integer types, each within the type's range."""
    dtype = NUMERIC[datatype]
    if dtype.kind in "iu":
        if arr.dtype.kind == "f":
            frac = arr != np.floor(arr)
            if frac.any():
                bad = arr.reshape(-1)[int(np.argmax(frac.reshape(-1)))]
                raise ProtocolError(400, f"input {name!r}: {datatype} values must be "
                                         f"integers, got {bad}")
        info = np.iinfo(dtype)
        if arr.size and (arr.min() < info.min or arr.max() > info.max):
            bad = arr.min() if arr.min() < info.min else arr.max()
            raise ProtocolError(400, f"input {name!r}: {bad} is out of the {datatype} range "
                                     f"[{info.min}, {info.max}]")
        return arr.astype(dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        cast = arr.astype(dtype)
        big = np.isinf(cast) & np.isfinite(arr)
    if big.any():
        bad = arr.reshape(-1)[int(np.argmax(big.reshape(-1)))]
        raise ProtocolError(400, f"input {name!r}: {bad} is out of the {datatype} range "
                                 f"(largest magnitude {float(np.finfo(dtype).max):g})")
    return cast


def _first_non_number(data: list[Any]) -> Any:
    for v in data:
        if isinstance(v, list):
            bad = _first_non_number(v)
            if bad is not None:
                return bad
        elif isinstance(v, bool) or not isinstance(v, (int, float)):
            return v
    return None


def _bytes_from_raw(name: str, raw: bytes | memoryview, size: int) -> np.ndarray:
    if size * 4 > len(raw):
        raise ProtocolError(400, f"input {name!r}: {size} BYTES elements need at least "
                                 f"{size * 4} bytes (a 4-byte length each), got {len(raw)}")
    out = np.empty(size, dtype=object)
    view = memoryview(raw)
    pos = 0
    for i in range(size):
        if pos + 4 > len(view):
            raise ProtocolError(400, f"input {name!r}: BYTES data ends after {i} of {size} "
                                     "elements (each is a 4-byte little-endian length, then "
                                     "the bytes)")
        (n,) = struct.unpack_from("<I", view, pos)
        pos += 4
        if pos + n > len(view):
            raise ProtocolError(400, f"input {name!r}: BYTES element {i + 1} claims {n} "
                                     f"bytes but only {len(view) - pos} remain")
        out[i] = bytes(view[pos:pos + n])
        pos += n
    if pos != len(view):
        raise ProtocolError(400, f"input {name!r}: {len(view) - pos} bytes left over after "
                                 f"{size} BYTES elements")
    return out


def _bytes_from_list(name: str, data: list[Any], dims: list[int], size: int,
                     source: str) -> np.ndarray:
    flat = list(_iter_strings(name, data, source))
    if len(flat) != size:
        raise ProtocolError(400, f"input {name!r}: shape {dims} needs {size} values, "
                                 f"{source} has {len(flat)}")
    out = np.empty(size, dtype=object)
    out[:] = flat
    return out.reshape(dims)


def _iter_strings(name: str, data: list[Any], source: str) -> Iterator[str | bytes]:
    for v in data:
        if isinstance(v, list):
            yield from _iter_strings(name, v, source)
        elif isinstance(v, (str, bytes)):
            yield v
        else:
            raise ProtocolError(400, f"input {name!r}: BYTES {source} must hold strings, "
                                     f"found {v!r:.40}")


def encode_bytes(arr: np.ndarray) -> bytes:
    """A BYTES tensor in the binary extension's layout (4-byte LE length + bytes each)."""
    parts: list[bytes] = []
    for v in arr.reshape(-1):
        b = v if isinstance(v, bytes) else str(v).encode()
        parts += [struct.pack("<I", len(b)), b]
    return b"".join(parts)


def tensor_bytes(datatype: str, arr: np.ndarray) -> bytes:
    """An output tensor as raw bytes: little-endian values, or length-prefixed BYTES (the
    binary extension's blobs and gRPC's `raw_output_contents`)."""
    if datatype == "BYTES":
        return encode_bytes(arr)
    return arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()


# ---------------------------------------------------------------- requests


def parse_infer_request(header: Mapping[str, Any], binary: bytes | memoryview | None,
                        max_rows: int | None = None, check_bools: bool = True,
                        ) -> InferRequest:
    """An HTTP/REST inference request: the JSON object, and the bytes after it (binary
    tensor data, in input order, `binary_data_size` each). A first dimension over
    `max_rows` is a 413 before any data is decoded. check_bools=False skips the search
    for true/false in `data` lists (when the raw JSON holds neither token)."""
    inputs = header.get("inputs")
    if not isinstance(inputs, list) or not inputs or not all(isinstance(t, dict)
                                                             for t in inputs):
        got = (f"{len(inputs)} inputs" if isinstance(inputs, list)
               else type(inputs).__name__)
        raise ProtocolError(400, "'inputs' must be a non-empty list of tensors {name, shape, "
                                 f"datatype, data}}; got {got}")
    params = _params(header.get("parameters"), "request")
    binary_output = params.get("binary_data_output", False)
    if not isinstance(binary_output, bool):
        raise ProtocolError(400, "parameter 'binary_data_output' must be true or false, got "
                                 f"{binary_output!r:.40}")
    view = memoryview(binary) if binary is not None else memoryview(b"")
    pos = 0
    arrays: dict[str, np.ndarray] = {}
    datatypes: dict[str, str] = {}
    for t in inputs:
        name = t.get("name")
        if not isinstance(name, str):
            raise ProtocolError(400, f"every input needs a 'name' string, got {name!r:.40}")
        if name in arrays:
            raise ProtocolError(400, f"input {name!r} is given twice")
        check_rows(t.get("shape"), max_rows)
        tparams = _params(t.get("parameters"), f"input {name!r}")
        size = tparams.get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise ProtocolError(400, f"input {name!r}: binary_data_size must be a "
                                         f"non-negative integer, got {size!r:.40}")
            if "data" in t:
                raise ProtocolError(400, f"input {name!r} has both 'data' and "
                                         "binary_data_size: send one")
            if pos + size > len(view):
                raise ProtocolError(400, f"input {name!r}: binary_data_size {size} goes past "
                                         f"the end of the body ({len(view) - pos} binary "
                                         "bytes left; is Inference-Header-Content-Length "
                                         "right?)")
            arr = decode_tensor(name, t.get("datatype"), t.get("shape"),
                                raw=view[pos:pos + size])
            pos += size
        else:
            if "data" not in t:
                raise ProtocolError(400, f"input {name!r} has no 'data' (nor a "
                                         "binary_data_size parameter)")
            arr = decode_tensor(name, t.get("datatype"), t.get("shape"), data=t["data"],
                                check_bools=check_bools)
        arrays[name] = arr
        datatypes[name] = t["datatype"]
    if pos != len(view):
        raise ProtocolError(400, f"{len(view) - pos} bytes after the JSON header belong to no "
                                 "input (binary_data_size of the inputs adds up to "
                                 f"{pos})")
    return InferRequest(arrays, datatypes, id=_request_id(header.get("id")),
                        outputs=_requested_outputs(header.get("outputs")),
                        binary_output=binary_output, parameters=params)


def check_rows(shape: Any, max_rows: int | None) -> None:
    """413 when a tensor's first dimension is over `max_rows`, before its data is decoded."""
    if (max_rows is not None and isinstance(shape, list) and shape
            and type(shape[0]) is int and shape[0] > max_rows):
        raise ProtocolError(413, f"too many rows: at most {max_rows} per request, got "
                                 f"{shape[0]}")


def _request_id(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ProtocolError(400, f"'id' must be a string, got {value!r:.40}")
    return value


def _params(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ProtocolError(400, f"{where}: 'parameters' must be an object, got "
                                 f"{type(value).__name__}")
    return value


def _requested_outputs(value: Any) -> list[RequestedOutput]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(o, dict) for o in value):
        raise ProtocolError(400, "'outputs' must be a list of objects like {\"name\": ...}, "
                                 f"got {value!r:.80}")
    out = []
    for o in value:
        name = o.get("name")
        if not isinstance(name, str):
            raise ProtocolError(400, f"every requested output needs a 'name' string, got "
                                     f"{name!r:.40}")
        p = _params(o.get("parameters"), f"output {name!r}")
        binary = p.get("binary_data")
        if binary is not None and not isinstance(binary, bool):
            raise ProtocolError(400, f"output {name!r}: binary_data must be true or false, "
                                     f"got {binary!r:.40}")
        if p.get("classification"):
            raise ProtocolError(400, f"output {name!r}: the classification extension is not "
                                     "supported; read the class labels from the model "
                                     "metadata's parameters.class_labels")
        out.append(RequestedOutput(name, binary))
    return out


# ---------------------------------------------------------------- the model side


def check_input_names(art: Artifact, names: Sequence[str]) -> None:
    """400 unless `names` are the model's inputs: its one tensor, or (raw-column models)
    one tensor per column, in any order. Transports may call it before decoding."""
    if art.input_layout == "columns":
        types = art.input_types()
        unknown = [n for n in names if n not in types]
        missing = [n for n in types if n not in names]
        if unknown or missing:
            listed = ", ".join(f"{n!r} ({t})" for n, t in types.items())
            what = (f"unknown input tensor {unknown[0]!r}" if unknown
                    else f"missing input tensor(s) {', '.join(map(repr, missing))}")
            raise ProtocolError(400, f"{what}: this model takes one tensor per column, "
                                     f"shape [n, 1]: {listed}")
    elif list(names) != [art.input_name]:
        unknown = [n for n in names if n != art.input_name]
        what = (f"unknown input tensor {unknown[0]!r}" if unknown
                else f"{len(names)} input tensors")
        raise ProtocolError(400, f"{what}: this model's input is {art.input_name!r} "
                                 f"(one tensor, FP32, shape [n, {art.n_features}])")


def model_input(art: Artifact, request: InferRequest, max_rows: int) -> np.ndarray:
    """The model's input batch from decoded request tensors: names checked, every numeric
    datatype cast to float32 (values beyond its range refused), shape [n, features] or
    [n, *input_shape], at most `max_rows` rows."""
    check_input_names(art, list(request.inputs))
    arr = request.inputs[art.input_name]
    if arr.dtype == object:
        raise ProtocolError(400, f"input {art.input_name!r}: BYTES (text) tensors are only "
                                 "for models with text columns; this model takes numbers "
                                 "(FP32)")
    want = [[art.n_features], list(art.input_shape)]
    if arr.ndim < 1 or list(arr.shape[1:]) not in want:
        alt = (f" or [n, {', '.join(map(str, art.input_shape))}]"
               if len(art.input_shape) > 1 else "")
        raise ProtocolError(400, f"input shape must be [n, {art.n_features}]{alt}, got "
                                 f"{list(arr.shape)}")
    if len(arr) > max_rows:
        raise ProtocolError(413, f"too many rows: at most {max_rows} per request, got "
                                 f"{len(arr)}")
    try:
        return check_array(art, arr)
    except ModelInputError as exc:
        raise ProtocolError(400, str(exc)) from None


def model_feed(art: Artifact, request: InferRequest, max_rows: int) -> dict[str, np.ndarray]:
    """The session feed of a raw-column model (input_layout "columns") from one request
    tensor per feature column: BYTES for text columns, any numeric datatype for numbers,
    shape [n] or [n, 1]; blanks as empty strings or NaN (the graph imputes them)."""
    types = art.input_types()
    check_input_names(art, list(request.inputs))
    columns: dict[str, list[Any]] = {}
    rows = None
    for name, arr in request.inputs.items():
        if arr.ndim not in (1, 2) or (arr.ndim == 2 and arr.shape[1] != 1):
            raise ProtocolError(400, f"input {name!r}: shape must be [n] or [n, 1], got "
                                     f"{list(arr.shape)}")
        if rows is not None and len(arr) != rows:
            raise ProtocolError(400, f"input {name!r} has {len(arr)} rows, the others {rows}")
        rows = len(arr)
        flat = arr.reshape(-1)
        if arr.dtype == object:
            if types[name] != "BYTES":
                raise ProtocolError(400, f"input {name!r} is a number column: send "
                                         "a numeric tensor (FP32), not BYTES")
            columns[name] = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v
                             for v in flat]
        else:
            columns[name] = flat.astype(np.float64).tolist()
    if rows is not None and rows > max_rows:
        raise ProtocolError(413, f"too many rows: at most {max_rows} per request, got {rows}")
    try:
        return feed_from_columns(art, columns)
    except ModelInputError as exc:
        raise ProtocolError(400, str(exc)) from None


def request_feed(art: Artifact, request: InferRequest,
                 max_rows: int) -> tuple[dict[str, np.ndarray], int]:
    """(session feed, rows) of a decoded request, for either input layout: requested
    outputs checked (`check_outputs`), then `model_input` (one tensor) or `model_feed`
    (one tensor per raw column). What both transports run."""
    check_outputs(art, request)
    if art.input_layout == "columns":
        feed = model_feed(art, request, max_rows)
        return feed, len(next(iter(feed.values())))
    X = model_input(art, request, max_rows)
    return {art.input_name: X}, len(X)


def check_outputs(art: Artifact, request: InferRequest) -> None:
    """Refuse requested outputs the model does not have (before running it)."""
    for o in request.outputs:
        if o.name != art.output_name:
            raise ProtocolError(400, f"unknown output {o.name!r}: this model's output is "
                                     f"{art.output_name!r}")


def output_tensors(art: Artifact, request: InferRequest,
                   out: np.ndarray) -> list[tuple[str, str, np.ndarray, bool]]:
    """The response's outputs: (name, datatype, array, as_binary) each, in request order
    (every model output when the request names none)."""
    arr = np.ascontiguousarray(out, dtype=np.float32)
    wanted = request.outputs or [RequestedOutput(art.output_name)]
    result = []
    for o in wanted:
        binary = o.binary if o.binary is not None else request.binary_output
        result.append((o.name, "FP32", arr, binary))
    return result


def encode_http_response(art: Artifact, request: InferRequest,
                         outputs: Sequence[tuple[str, str, np.ndarray, bool]],
                         dumps: Any, name: str | None = None) -> tuple[bytes, int | None]:
    """(body, JSON header length or None): the v2 response, binary outputs after the JSON.

    The header length goes in `Inference-Header-Content-Length` when it is not None.
    `name`: the model name served (default the model's own).
    """
    answer: dict[str, Any] = {"model_name": name or art.name,
                              "model_version": MODEL_VERSION}
    if request.id is not None:
        answer["id"] = request.id
    tensors = []
    blobs: list[bytes] = []
    for output, datatype, arr, binary in outputs:
        t: dict[str, Any] = {"name": output, "datatype": datatype, "shape": list(arr.shape)}
        if binary:
            blob = tensor_bytes(datatype, arr)
            t["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            t["data"] = arr.reshape(-1)
        tensors.append(t)
    answer["outputs"] = tensors
    head: bytes = dumps(answer)
    if not blobs:
        return head, None
    return b"".join([head, *blobs]), len(head)


# ---------------------------------------------------------------- metadata


def _dims(shape: tuple[int, ...]) -> list[int]:
    return list(shape) if shape else [1]


def _inputs(art: Artifact, describe: Callable[[str, str, tuple[int, ...]], dict[str, Any]]
            ) -> list[dict[str, Any]]:
    """The model's inputs, each described: one FP32 tensor, or (raw-column models) one
    [n, 1] tensor per column, BYTES for text."""
    if art.input_layout == "columns":
        return [describe(n, dt, (1,)) for n, dt in art.input_types().items()]
    return [describe(art.input_name, "FP32", tuple(art.input_shape))]


def model_metadata(art: Artifact, name: str | None = None) -> dict[str, Any]:
    """v2 model metadata (feature names, class labels ... under `parameters`); `name`:
    the name it is served under (default the model's own)."""
    return {
        "name": name or art.name, "versions": [MODEL_VERSION], "platform": "onnxruntime_onnx",
        "inputs": _inputs(art, lambda n, dt, shape: {"name": n, "datatype": dt,
                                                     "shape": [-1, *shape]}),
        "outputs": [{"name": art.output_name, "datatype": "FP32",
                     "shape": [-1, *art.output_shape]}],
        "parameters": {"task": art.task, "feature_names": art.feature_names,
                       "class_labels": art.class_labels, "target_names": art.target_names,
                       "spec_sha256": art.spec_sha256},
    }


def model_config(art: Artifact, max_rows: int, name: str | None = None) -> dict[str, Any]:
    """The model's configuration as Triton's ModelConfig message in JSON (what
    tritonclient's get_model_config returns): dims without the batch axis; `name`: the
    name it is served under (default the model's own)."""
    params = {"task": art.task, "spec_sha256": art.spec_sha256,
              "feature_names": json.dumps(art.feature_names),
              "class_labels": json.dumps(art.class_labels),
              "target_names": json.dumps(art.target_names)}
    return {
        "name": name or art.name, "platform": "onnxruntime_onnx", "backend": "onnxruntime",
        "version_policy": {"latest": {"num_versions": 1}},
        "max_batch_size": max_rows,
        "input": _inputs(art, lambda n, dt, shape: {
            "name": n, "data_type": "TYPE_STRING" if dt == "BYTES" else "TYPE_FP32",
            "format": "FORMAT_NONE", "dims": _dims(shape)}),
        "output": [{"name": art.output_name, "data_type": "TYPE_FP32",
                    "dims": _dims(art.output_shape)}],
        "parameters": {k: {"string_value": v} for k, v in params.items()},
    }


def repository_index(names: Iterable[str], ready_only: bool = False) -> list[dict[str, str]]:
    """The model repository index: every served model (by name), READY (they load before
    the server listens)."""
    return [{"name": n, "version": MODEL_VERSION, "state": "READY", "reason": ""}
            for n in names]


def check_version(version: str | None, name: str | None = None) -> None:
    """404 unless `version` is None or '' (latest) or the one version served."""
    if version and version != MODEL_VERSION:
        of = f" of model {name!r}" if name is not None else ""
        raise ProtocolError(404, f"unknown version {version!r}{of}: its only version is "
                                 f"{MODEL_VERSION!r}")


def lookup(models: Mapping[str, T], name: str, version: str | None = None) -> T:
    """The served model `name` (at `version`, None or '' for the latest); 404 naming the
    served models otherwise."""
    model = models.get(name)
    if model is None:
        raise ProtocolError(404, f"unknown model {name!r}: this server serves "
                                 f"{', '.join(map(repr, models))}")
    check_version(version, name)
    return model
