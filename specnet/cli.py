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


def _emit(text: str, output: Path | None) -> None:
    """Print `text` to stdout, or write it atomically to `output`."""
    if output is None:
        click.echo(text, nl=False)
        return
    from .io import atomic_write_text

    atomic_write_text(output, text)
    click.echo(f"wrote {output}", err=True)


def handle_errors(fn: F) -> F:
    """Turn specnet errors into `error:` lines and their exit code; never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SpecnetError as exc:
            issues = getattr(exc, "issues", None)
            if issues:  # a SpecError: its warnings print as warnings
                for issue in issues:
                    _echo_issue(issue)
            else:
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
            click.echo(f"ok: {path}: {checked.spec.name}, {len(checked.spec.model)} layers, "
                       f"{s.trainable:,} parameters, input {list(s.input_shape)} -> "
                       f"output {list(s.output_shape)}")
            _echo_columns(checked.spec, quiet)
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

    if as_json and not resolved:
        raise click.UsageError("--json works with --resolved: specnet show --resolved --json "
                               "SPEC")
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
    _emit(text, output)


@main.command()
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("-o", "--run-dir", type=click.Path(path_type=Path), default=None,
              help="Run folder (default: runs/<name>/).")
@click.option("--resume", is_flag=True,
              help="Continue from the newest checkpoint in the run folder.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output; only the summary.")
@handle_errors
def train(spec: Path, run_dir: Path | None, resume: bool, quiet: bool) -> None:
    """Train SPEC; write checkpoints, history, metrics and weights to the run folder.

    Progress is a bar on a terminal and one line per epoch otherwise. A run that was
    interrupted continues bit-identically with --resume.

    \b
    Examples:
      specnet train specs/iris.yaml                 # -> runs/iris/
      specnet train specs/digits.yaml -o runs/d1
      specnet train specs/digits.yaml -o runs/d1 --resume
    """
    from .spec.validate import load_spec
    from .trainer import check_run_dir
    from .trainer import train as train_spec

    checked = load_spec(spec)
    for issue in checked.warnings:
        _echo_issue(issue)
    folder = run_dir if run_dir is not None else Path("runs") / checked.spec.name
    check_run_dir(folder, spec)
    run = train_spec(checked.spec, folder, resume=resume, quiet=quiet)
    m = run.metrics
    stop = f", stopped early (best epoch {m['best_epoch']})" if m.get("stopped_early") else ""
    click.echo(f"trained {run.spec.name}: {m['epochs_run']} epochs in "
               f"{m['training_time_s']:.1f}s{stop}")
    for split in ("train", "val", "test"):
        if m.get(split):
            values = "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                               for k, v in m[split].items())
            click.echo(f"  {split:<5}  {values}")
    from .baseline import baseline_warning, units_note

    if units_note(run):
        click.echo(f"  {units_note(run).strip(' ()')}")
    warning = baseline_warning(run)
    if warning:
        click.echo(warning, err=True)
    click.echo(f"run folder: {folder}")


@main.command()
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("-j", "--jobs", type=click.IntRange(min=0), default=1, show_default=True,
              help="Worker processes (0: one per core).")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="torch threads per training (capped so jobs x threads <= cores).")
@click.option("-o", "--out", type=click.Path(path_type=Path), default=None,
              help="Output folder [default: sweeps/<name>].")
@click.option("--dry-run", is_flag=True, help="Validate and list the variants; train nothing.")
@click.option("-q", "--quiet", is_flag=True, help="No per-variant progress lines.")
@handle_errors
def sweep(spec: Path, jobs: int, threads: int, out: Path | None, dry_run: bool,
          quiet: bool) -> None:
    """Train every variant of a sweep (grid, random search, cv, repeats) and compare them.

    SPEC is a spec with a `sweep:` section, or a file that `extends:` a base spec. Every
    variant is validated before anything trains. Writes summary.md, summary.csv, runs.csv,
    plot.png and best.yaml (the best variant's spec, for `specnet build`) to the output folder.

    \b
    Examples:
      specnet sweep specs/sweeps/optimizers_digits.yaml --jobs 2
      specnet sweep specs/sweeps/cv_tuning_iris.yaml --dry-run
    """
    from .sweep import load_sweep, make_jobs, run_sweep
    from .sweep.report import check_out_dir

    sw = load_sweep(spec)
    for issue in sw.warnings:
        _echo_issue(issue)
    if dry_run:
        how = f"{sw.cv}-fold cv" if sw.cv else "the spec's train/val/test split"
        click.echo(f"{sw.name}: {len(sw.variants)} variants x {sw.runs_per_variant} runs "
                   f"({how}, {sw.section.repeats} seed(s)) = {len(make_jobs(sw))} trainings; "
                   f"ranked on {sw.metric.replace('test_', 'cv_') if sw.cv else sw.metric} "
                   f"({sw.mode})")
        for v in sw.variants:
            settings = ", ".join(f"{k}={json.dumps(x)}" for k, x in v.settings.items())
            click.echo(f"  {v.name}: {settings or '(base spec)'}")
        return
    folder = out if out is not None else Path("sweeps") / sw.name
    check_out_dir(folder)  # before training, not after
    progress = None if quiet else (lambda line: click.echo(line, err=True))
    result = run_sweep(sw, jobs=jobs, threads=threads, progress=progress)
    click.echo(result.text_table())
    files = result.write(folder)
    click.echo(f"wrote {folder}/ ({', '.join(files)})", err=True)


def _echo_columns(spec: Any, quiet: bool) -> None:
    """The column table of a tabular data file (CSV, Parquet), with its notes."""
    from .data.sources import _Tabular

    if quiet or not isinstance(spec.data, _Tabular):
        return
    from .data.tabular import describe

    click.echo(describe(spec.data).table())  # type: ignore[arg-type]


@main.command(name="inspect")
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--target", default=None, help="The target column [default: the last one].")
@click.option("--delimiter", default=",", show_default=True, help="CSV field separator.")
@handle_errors
def inspect_cmd(data: Path, target: str | None, delimiter: str) -> None:
    """Print the column table of a CSV or Parquet file and a starter spec that validates.

    \b
    Example:
      specnet inspect customers.csv --target churn > customers.yaml
    """
    from .data.inspect import inspect_file

    table, spec_text = inspect_file(data, target, delimiter)
    click.echo(table, err=True)
    click.echo(spec_text, nl=False)


def _echo_export(exported: Any) -> None:
    """The lines `export` and `build` print when an artifact is written."""
    report = exported.report
    size = exported.model_path.stat().st_size
    click.echo(f"exported {exported.artifact.name} -> {exported.folder}/ "
               f"(model.onnx {size / 1024:.1f} KiB; {', '.join(exported.files)})")
    click.echo(f"verified: {report['summary']}")


@main.command(name="export")
@click.argument("run_dir", metavar="RUN", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Artifact folder [default: exports/<name>].")
@handle_errors
def export_cmd(run_dir: Path, output: Path | None) -> None:
    """Export a trained run folder to ONNX and verify it against torch.

    Writes model.onnx (preprocessing and output head inside, metadata inside),
    weights.safetensors, spec.yaml, preprocessing.json, metrics.json, history.csv,
    learning_curve.png and verification.json. The folder appears complete or not at
    all. Exit code 3 when onnxruntime and torch disagree beyond the spec's tolerance.

    \b
    Example:
      specnet train specs/iris.yaml && specnet export runs/iris
    """
    from .export import export_run
    from .trainer import load_run

    run = load_run(run_dir)
    folder = output if output is not None else Path("exports") / run.spec.name
    _echo_export(export_run(run, folder))


@main.command()
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Artifact folder [default: exports/<name>].")
@click.option("--run-dir", type=click.Path(path_type=Path), default=None,
              help="Also keep the training run folder here (default: none is kept).")
@click.option("-q", "--quiet", is_flag=True, help="No training progress output.")
@handle_errors
def build(spec: Path, output: Path | None, run_dir: Path | None, quiet: bool) -> None:
    """The whole pipeline: validate, train, export and verify SPEC -> exports/<name>/.

    A failure at any step (bad spec, diverged training, failed verification) leaves no
    artifact behind, and an existing artifact of the same name as it was. Exit code 3
    when verification fails.

    \b
    Examples:
      specnet build specs/iris.yaml
      specnet predict exports/iris flowers.csv
      specnet serve exports/iris
    """
    from .artifact import FILES
    from .export import export_run
    from .io import check_replaceable
    from .spec.validate import load_spec
    from .trainer import train as train_spec

    checked = load_spec(spec)
    for issue in checked.warnings:
        _echo_issue(issue)
    _echo_columns(checked.spec, quiet)
    folder = output if output is not None else Path("exports") / checked.spec.name
    check_replaceable(folder, FILES.values(), "a specnet export")  # before training
    run = train_spec(checked.spec, run_dir, quiet=quiet)
    m = run.metrics
    test = "  ".join(f"{k} {v:.4f}" for k, v in (m.get("test") or {}).items()
                     if isinstance(v, float))
    from .baseline import baseline_warning, units_note

    click.echo(f"trained {run.spec.name}: {m.get('epochs_run', '?')} epochs"
               + (f"; test {test}{units_note(run)}" if test else ""))
    warning = baseline_warning(run)
    if warning:
        click.echo(warning, err=True)
    _echo_export(export_run(run, folder))


@main.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("input_path", metavar="INPUT")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Write here instead of stdout (format from the extension).")
@click.option("-f", "--format", "fmt", type=click.Choice(["csv", "json"]), default=None,
              help="Output format [default: from -o's extension, else csv].")
@click.option("--input-format", type=click.Choice(["csv", "json", "npy"]), default=None,
              help="Input format [default: from INPUT's extension].")
@handle_errors
def predict(model: Path, input_path: str, output: Path | None, fmt: str | None,
            input_format: str | None) -> None:
    """Predict with an exported MODEL (folder or model.onnx) on the rows in INPUT.

    INPUT is CSV with a header (columns matched by feature name, others ignored), JSON
    (records, rows, or {"instances": ...}) or NPY; '-' reads stdin. Output: CSV (label
    and prob_<class> columns, or one column per target) or JSON. Runs on onnxruntime
    only (torch is not imported).

    \b
    Examples:
      specnet predict exports/iris flowers.csv
      specnet predict exports/iris rows.json -o predictions.json
    """
    from .predict import predict_file

    if fmt is None:
        fmt = "json" if output is not None and output.suffix.lower() == ".json" else "csv"

    def note(text: str) -> None:
        click.echo(f"note: {text}", err=True)

    art, text = predict_file(model, input_path, input_fmt=input_format, output_fmt=fmt,
                             note=note)
    problem = art.verification_problem()
    if problem:
        click.echo(f"warning: {problem}", err=True)
    _emit(text, output)


@main.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to listen on (0.0.0.0 exposes the server to the network).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Server processes.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="onnxruntime threads per worker [default: cores // workers].")
@click.option("--max-rows", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="Most rows one request may carry (more: 413).")
@click.option("--max-body-mb", type=click.FloatRange(min=0.001), default=8.0,
              show_default=True, help="Largest request body in MiB (larger: 413).")
@click.option("--allow-unverified", is_flag=True,
              help="Serve a model whose verification is missing or failed.")
@click.option("--access-log", is_flag=True, help="Log every request.")
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info",
                                                "debug"]), default="info",
              show_default=True)
@handle_errors
def serve(model: Path, host: str, port: int, workers: int, threads: int | None,
          max_rows: int, max_body_mb: float, allow_unverified: bool, access_log: bool,
          log_level: str) -> None:
    """Serve an exported MODEL over HTTP (Open Inference Protocol v2 + /predict).

    Endpoints: /v2/health/live, /v2/health/ready, /v2/models/<name>[/ready|/infer],
    /predict, /metadata, /metrics (Prometheus). Runs on onnxruntime only (no torch).
    Refuses a model whose verification is missing or failed unless --allow-unverified.

    \b
    Example:
      specnet serve exports/iris --port 8000
      curl -s localhost:8000/predict -d '{"rows": [[5.1, 3.5, 1.4, 0.2]]}'
    """
    from .runtime import available_cores
    from .serve import Limits
    from .serve import serve as run_server

    if threads is not None and threads * workers > available_cores():
        click.echo(f"warning: {workers} workers x {threads} threads exceeds the "
                   f"{available_cores()} available cores", err=True)
    limits = Limits(max_rows=max_rows, max_body_bytes=int(max_body_mb * 1024 * 1024))
    run_server(model, host=host, port=port, workers=workers, threads=threads, limits=limits,
               allow_unverified=allow_unverified, access_log=access_log, log_level=log_level)


if __name__ == "__main__":  # pragma: no cover
    main()
