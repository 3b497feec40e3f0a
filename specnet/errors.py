"""The specnet exception family: each error carries the exit code the CLI uses."""

from __future__ import annotations

from dataclasses import dataclass


class SpecnetError(Exception):
    """Base of every error specnet raises on purpose (a user error, exit code 1)."""

    exit_code = 1

    def lines(self) -> list[str]:
        """The message as `error:`-ready lines."""
        return str(self).splitlines() or [type(self).__name__]


@dataclass(frozen=True)
class Issue:
    """One located problem in a spec: `file:line:col: path: message`."""

    path: str
    message: str
    file: str = "<spec>"
    line: int = 0
    col: int = 0
    severity: str = "error"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}" if self.line else self.file
        kind = "warning: " if self.severity == "warning" else ""
        path = f"{self.path}: " if self.path else ""
        return f"{where}: {path}{kind}{self.message}"


class SpecError(SpecnetError):
    """A spec that cannot be loaded or validated; holds every issue found in one pass."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


class DataError(SpecnetError):
    """A data source or data file that cannot be read or does not fit the spec."""


class TrainingError(SpecnetError):
    """Training could not go on (diverged loss, missing device, bad checkpoint)."""


class ExportError(SpecnetError):
    """The model could not be exported to ONNX."""


class VerificationError(SpecnetError):
    """onnxruntime and torch disagree beyond the tolerance: its own exit code."""

    exit_code = 3


class ModelInputError(SpecnetError):
    """Input rows for predict/serve that do not fit the model (wrong width, NaN, text)."""
