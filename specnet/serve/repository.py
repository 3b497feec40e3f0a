"""What `specnet serve PATH` serves: one exported model, or a model repository of several.

PATH is, in the order tried:
  1. a model: an export folder (`exports/iris`, holding model.onnx) or a `.onnx` file;
     served under the model's own name;
  2. a model repository: a folder whose subfolders are models, each either
     - a Triton model folder (`<name>/config.pbtxt` and `<name>/<version>/model.onnx`, as
       `specnet export MODEL --target triton -o DIR` writes), served under its folder
       name, newest numeric version; or
     - a specnet export folder (`<folder>/model.onnx`, e.g. `exports/` after several
       `specnet build`s), served under the model's own name.
Other subfolders and files are passed over. Two models under one name, or a folder with
no model in it, are SpecnetErrors that say what was found. Every model is opened (its
verification checked) before anything listens, within the memory budget counted over all
of them (`specnet.budget`).
"""

from __future__ import annotations

from pathlib import Path

from ..artifact import MODEL_FILE
from ..budget import check_bytes
from ..deploy.triton import CONFIG_FILE
from ..errors import SpecnetError
from ..runtime import Runtime


def is_model(path: Path) -> bool:
    """True when `path` is one model: a .onnx file or a folder holding model.onnx."""
    return (path / MODEL_FILE).is_file() if path.is_dir() else path.suffix == ".onnx"


def _triton_model(folder: Path) -> Path | None:
    """The newest numeric version's model.onnx of a Triton model folder, or None."""
    if not (folder / CONFIG_FILE).is_file():
        return None
    versions = sorted((int(v.name), v) for v in folder.iterdir()
                      if v.is_dir() and v.name.isdigit() and (v / MODEL_FILE).is_file())
    return versions[-1][1] / MODEL_FILE if versions else None


def model_files(path: str | Path) -> list[tuple[str | None, Path]]:
    """(name, model.onnx) of everything `path` serves; name None: served under the model's
    own name (a single model, an export folder). SpecnetError when `path` is neither a
    model nor a repository, naming what it holds."""
    path = Path(path)
    if is_model(path) or not path.is_dir():
        return [(None, path)]  # Runtime reports a missing path or a non-model file
    found: list[tuple[str | None, Path]] = []
    for folder in sorted(p for p in path.iterdir() if p.is_dir()
                         and not p.name.startswith(".")):
        triton = _triton_model(folder)
        if triton is not None:
            found.append((folder.name, triton))
        elif (folder / MODEL_FILE).is_file():
            found.append((None, folder / MODEL_FILE))
    if not found:
        raise SpecnetError(f"{path}: neither a model nor a model repository: "
                           f"{_holds(path)}. Serve an export folder (<folder>/{MODEL_FILE}, "
                           "from `specnet build` / `specnet export`), a .onnx file, or a "
                           f"folder of them: a Triton repository (<name>/{CONFIG_FILE} and "
                           f"<name>/1/{MODEL_FILE}, from `specnet export MODEL --target "
                           f"triton -o {path}`) or a folder of export folders")
    return found


def _holds(path: Path) -> str:
    entries = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
    if not entries:
        return "it is empty"
    shown = ", ".join(entries[:8]) + (f" and {len(entries) - 8} more" if len(entries) > 8
                                      else "")
    return f"no {MODEL_FILE} in it or in its subfolders (it holds {shown})"


def check_memory(files: list[tuple[str | None, Path]], copies: int = 1) -> None:
    """BudgetError when holding every model `copies` times (one per server process) would
    exceed the memory budget: a session keeps its model's weights, as large as the file."""
    total = sum(f.stat().st_size for _, f in files if f.is_file()) * max(1, copies)
    what = (f"serving {len(files)} models" if len(files) > 1 else "serving the model")
    check_bytes(total, what + (f" in {copies} worker processes" if copies > 1 else ""))


def open_models(path: str | Path, *, threads: int | None = None,
                allow_unverified: bool = False, copies: int = 1) -> dict[str, Runtime]:
    """Name -> Runtime of everything `path` serves (see the module docstring), in name
    order for a repository. An unverified model is refused unless `allow_unverified`.
    `copies`: how many processes will each hold every model (for the memory budget)."""
    files = model_files(path)
    check_memory(files, copies)
    models: dict[str, Runtime] = {}
    where: dict[str, Path] = {}
    for served_as, file in files:
        runtime = Runtime(file, threads=threads)
        name = served_as or runtime.artifact.name
        problem = runtime.artifact.verification_problem()
        if problem and not allow_unverified:
            raise SpecnetError(f"refusing to serve: {problem}; rebuild it with `specnet build` "
                               "/ `specnet export`, or pass --allow-unverified to serve it "
                               "anyway")
        if name in models:
            raise SpecnetError(f"two models are named {name!r}: {where[name]} and {file}; "
                               "a repository serves each model under one name: rename or "
                               "remove one of them")
        models[name] = runtime
        where[name] = file
    return dict(sorted(models.items())) if len(models) > 1 else models
