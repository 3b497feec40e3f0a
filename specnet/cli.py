"""The `specnet` command line. Commands are thin: they call the modules that do the work.

Heavy libraries (torch, sklearn, onnx) are imported inside the commands that need them,
so `specnet validate` and `specnet --help` start fast.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .errors import Issue, SpecnetError

F = TypeVar("F", bound=Callable[..., Any])


def _echo_issue(issue: Issue) -> None:
    label = "warning" if issue.severity == "warning" else "error"
    text = str(issue).replace(": warning: ", ": ", 1)
    click.echo(f"{label}: {text}", err=True)


def handle_errors(fn: F) -> F:
    """Turn specnet errors into `error:` lines and their exit code; never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SpecnetError as exc:
            for line in exc.lines():
                click.echo(f"error: {line}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("error: interrupted", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="specnet")
def main() -> None:
    """specnet: declarative network specs -> trained, verified ONNX models.

    \b
    Everyday flow:
      specnet validate specs/iris.yaml     check a spec (fast, no torch)
      specnet show specs/iris.yaml         layer table with shapes and parameters
      specnet build specs/iris.yaml        train, export and verify -> exports/iris/
      specnet serve exports/iris           HTTP inference server over onnxruntime
    """


@main.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success.")
@handle_errors
def validate(specs: tuple[Path, ...], quiet: bool) -> None:
    """Load, validate and shape-check SPEC files; print every problem found.

    Exits 0 when every spec is valid, 1 otherwise. Does not import torch.

    \b
    Example:
      specnet validate specs/*.yaml
    """
    from .errors import SpecError
    from .spec.validate import load_spec

    failed = 0
    for path in specs:
        try:
            checked = load_spec(path)
        except SpecError as exc:
            failed += 1
            for issue in exc.issues:
                _echo_issue(issue)
            continue
        for issue in checked.warnings:
            _echo_issue(issue)
        if not quiet:
            s = checked.summary
            click.echo(f"ok: {path}: {checked.spec.name}, {len(s.rows)} layers, "
                       f"{s.trainable:,} parameters, input {list(s.input_shape)} -> "
                       f"output {list(s.output_shape)}")
    if failed:
        click.echo(f"error: {failed} of {len(specs)} spec(s) invalid", err=True)
        sys.exit(1)


@main.command()
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("--resolved", is_flag=True,
              help="Print the full spec with every default filled in (YAML).")
@click.option("--json", "as_json", is_flag=True, help="With --resolved: print JSON instead.")
@handle_errors
def show(spec: Path, resolved: bool, as_json: bool) -> None:
    """Show the layer table of SPEC: output shape and parameters per layer, totals.

    \b
    Examples:
      specnet show specs/digits_cnn.yaml
      specnet show --resolved specs/iris.yaml > iris.full.yaml
    """
    from .spec.validate import load_spec

    checked = load_spec(spec)
    for issue in checked.warnings:
        _echo_issue(issue)
    if resolved:
        from .spec.resolve import dump_resolved

        click.echo(dump_resolved(checked.spec, "json" if as_json else "yaml"), nl=False)
        return
    click.echo(f"{checked.spec.name}: task {checked.spec.task}, data {checked.spec.data.source}, "
               f"loss {checked.spec.loss_name}, optimizer {checked.spec.optimizer.type}")
    click.echo(checked.summary.table())


@main.command()
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Write to this file instead of stdout.")
@handle_errors
def schema(output: Path | None) -> None:
    """Print the JSON Schema of the spec language (for editors and CI checks).

    \b
    Example:
      specnet schema -o specnet.schema.json
      # then, first line of a spec:
      # yaml-language-server: $schema=./specnet.schema.json
    """
    from .spec.resolve import json_schema

    text = json.dumps(json_schema(), indent=2) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        from .io import atomic_write_text

        atomic_write_text(output, text)
        click.echo(f"wrote {output}", err=True)


if __name__ == "__main__":  # pragma: no cover
    main()
