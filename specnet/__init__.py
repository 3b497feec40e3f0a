"""specnet: declarative network specs compiled to PyTorch, trained, exported to ONNX, served.

    checked = specnet.load("specs/iris.yaml")        # Checked: .spec, .summary, .warnings
    net = specnet.compile_spec(checked.spec)         # nn.Sequential
    run = specnet.train(checked.spec, "runs/iris")   # Run; specnet.load_run("runs/iris")
    specnet.export_run(run, "exports/iris")          # ONNX artifact, verified

scikit-learn estimators: `from specnet.sklearn import SpecClassifier, SpecRegressor`.
Importing specnet does not import torch; the functions that need it import it themselves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import DataError as DataError
from .errors import SpecError as SpecError
from .errors import SpecnetError as SpecnetError
from .errors import VerificationError as VerificationError

__version__ = "0.1.0"

_SPEC_LANGUAGE = ("compile_spec", "Spec", "Checked", "check", "load", "validate")
"""Public names imported on first use: the spec language (pydantic models, the layer
registry) takes most of a second to import, which `specnet predict` and `specnet serve`
(and every `python -m specnet.cli` run, which imports this package) do not need."""


def __getattr__(name: str) -> Any:
    if name not in _SPEC_LANGUAGE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from .compile import compile_spec
    from .spec.schema import Spec
    from .spec.validate import Checked, check, load_spec, validate

    names = {"compile_spec": compile_spec, "Spec": Spec, "Checked": Checked, "check": check,
             "load": load_spec, "validate": validate}
    globals().update(names)  # once: later lookups find them without this function
    return names[name]


if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from .compile import compile_spec as compile_spec
    from .data.prepare import Prepared
    from .export import Exported
    from .spec.schema import Spec as Spec
    from .spec.validate import Checked as Checked
    from .spec.validate import check as check
    from .spec.validate import load_spec as load
    from .spec.validate import validate as validate
    from .track import Callback
    from .trainer import Run


def train(spec: Spec | str | Path | dict[str, Any], run_dir: Path | str | None = None, *,
          resume: bool = False, quiet: bool = True, prepared: Prepared | None = None,
          callbacks: Sequence[Callback] = (), log_every: int | None = None,
          threads: int | None = None) -> Run:
    """Train `spec` (a Spec, a spec file path or a dict of spec data) and return the Run;
    see `specnet.trainer.train`. run_dir None writes nothing to disk. callbacks: objects
    with `on_epoch_end(row)`, such as the trackers of `specnet.track`. threads overrides
    `training.threads`. Imports torch on first call.
    """
    from .trainer import train as _train

    return _train(spec, run_dir, resume=resume, quiet=quiet, prepared=prepared,
                  callbacks=callbacks, log_every=log_every, threads=threads)


def load_run(run_dir: Path | str) -> Run:
    """Rebuild a finished run from its folder; see `specnet.trainer.load_run`."""
    from .trainer import load_run as _load_run

    return _load_run(run_dir)


def export_run(run: Run | str | Path, out: str | Path) -> Exported:
    """Export a trained Run (or a finished run folder's path) to the folder `out` as ONNX
    and verify it against torch; see `specnet.export.export_run`. Raises VerificationError
    (exit code 3) on a mismatch."""
    from .export import export_run as _export_run

    return _export_run(run, out)


def summarize(spec: Spec) -> str:
    """The layer table of a validated spec (shapes, parameters, totals) as text."""
    from .spec.validate import check

    return check(spec).summary.table()


__all__ = [
    "Checked", "DataError", "Spec", "SpecError", "SpecnetError", "VerificationError", "check",
    "compile_spec", "export_run", "load", "load_run", "summarize", "train", "validate",
]
