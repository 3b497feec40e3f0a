"""specnet: declarative network specs compiled to PyTorch, trained, exported to ONNX, served.

Importing specnet does not import torch; the functions that need it import it themselves.
"""

from __future__ import annotations

from .compile import compile_spec as compile_spec
from .errors import DataError as DataError
from .errors import SpecError as SpecError
from .errors import SpecnetError as SpecnetError
from .errors import VerificationError as VerificationError
from .spec.schema import Spec as Spec
from .spec.validate import Checked as Checked
from .spec.validate import check as check
from .spec.validate import load_spec as load
from .spec.validate import validate as validate

__version__ = "0.1.0"


def summarize(spec: Spec) -> str:
    """The layer table of a validated spec (shapes, parameters, totals) as text."""
    return check(spec).summary.table()


__all__ = [
    "Checked", "DataError", "Spec", "SpecError", "SpecnetError", "VerificationError", "check",
    "compile_spec", "load", "summarize", "validate",
]
