"""The `specnet` command line. Commands are thin: they call the modules that do the work.

Heavy libraries (torch, sklearn, onnx) are imported inside the commands that need them,
so `specnet validate` and `specnet --help` start fast.
"""

from __future__ import annotations

import contextlib
import functools
import json
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .errors import Issue, SpecnetError

if TYPE_CHECKING:
    from .track import Trackers

F = TypeVar("F", bound=Callable[..., Any])


def _echo_issue(issue: Issue) -> None:
    label = "warning" if issue.severity == "warning" else "error"
    text = str(issue).replace(": warning: ", ": ", 1)
    click.echo(f"{label}: {escape(text)}", err=True)


def escape(text: str) -> str:
    """`text` with control characters (terminal escape codes, NUL, ...) shown escaped, so
    a hostile CSV header or spec string cannot drive the terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


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
        from . import signals

        try:
            with signals.handled():  # SIGTERM unwinds like Ctrl-C: children end, one line
                return fn(*args, **kwargs)
        except SpecnetError as exc:
            issues = getattr(exc, "issues", None)
            if issues:  # a SpecError: its warnings print as warnings
                for issue in issues:
                    _echo_issue(issue)
            else:
                for line in exc.lines():
                    click.echo(f"error: {escape(line)}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt as exc:  # SIGINT, or SIGTERM (signals.Terminated)
            click.echo(f"error: {escape(signals.interrupt_message(exc))}", err=True)
            sys.exit(signals.exit_code(exc))

    return wrapper  # type: ignore[return-value]


def tracking_options(fn: F) -> F:
    """`--tensorboard DIR` and `--mlflow [URI]` (train, build, sweep)."""
    fn = click.option("--mlflow", "mlflow_uri", is_flag=False, flag_value="mlruns",
                      default=None, metavar="[URI]",
                      help="Log to MLflow: a folder (alone: ./mlruns) or a tracking URI "
                           "(sqlite:///mlflow.db, http://host:5000). Needs specnet[mlflow].")(fn)
    return click.option("--tensorboard", type=click.Path(path_type=Path), default=None,
                        metavar="DIR", help="Write TensorBoard event files under "
                                            "DIR/<name>/. Needs specnet[tensorboard].")(fn)


@contextlib.contextmanager
def _tracking(tensorboard: Path | None, mlflow_uri: str | None,
              **how: Any) -> Iterator[Trackers]:
    """The trackers a command asked for, closed as failed when the command fails."""
    from .track import tracking

    opened = False
    try:
        with tracking(tensorboard=tensorboard, mlflow=mlflow_uri, **how) as trackers:
            opened = bool(trackers)
            yield trackers
    finally:
        if opened:
            _tracked(tensorboard, mlflow_uri)


def _tracked(tensorboard: Path | None, mlflow_uri: str | None) -> None:
    """Say where a command's run was tracked, if anywhere."""
    where = [f"TensorBoard {tensorboard}" if tensorboard is not None else "",
             f"MLflow {mlflow_uri}" if mlflow_uri is not None else ""]
    if any(where):
        click.echo(f"tracked in {' and '.join(w for w in where if w)}", err=True)


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
@click.argument("template", type=click.Choice(["classification", "regression", "image",
                                               "csv"]), default="classification")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Write the spec to this new file (never overwritten) instead of stdout.")
@handle_errors
def init(template: str, output: Path | None) -> None:
    """Write a starter spec: TEMPLATE is classification (default), regression, image or csv.

    Each template is commented, carries the schema comment for editors, and validates as
    written (csv: once its data.csv exists; point `path` and `target` at your file).

    \b
    Examples:
      specnet init > spec.yaml
      specnet init regression -o diabetes.yaml && specnet validate diabetes.yaml
    """
    from .templates import template as starter
    from .templates import write_new

    text = starter(template)
    if output is None:
        click.echo(text, nl=False)
        return
    write_new(output, text)
    click.echo(f"wrote {output}", err=True)


@main.command()
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("-o", "--run-dir", type=click.Path(path_type=Path), default=None,
              help="Run folder (default: runs/<name>/).")
@click.option("--resume", is_flag=True,
              help="Continue from the newest checkpoint in the run folder.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output; only the summary.")
@click.option("--log-every", type=click.IntRange(min=1), default=None, metavar="N",
              help="Off a terminal, a progress line every N epochs [default: ~20 a run].")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch threads [default: the spec's training.threads, auto].")
@click.option("--nproc", type=click.IntRange(min=1), default=None,
              help="Data-parallel processes on this machine (torch's elastic launcher).")
@tracking_options
@handle_errors
def train(spec: Path, run_dir: Path | None, resume: bool, quiet: bool, log_every: int | None,
          threads: int | None, nproc: int | None, tensorboard: Path | None,
          mlflow_uri: str | None) -> None:
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
    _resume_hint(folder, f"specnet train {_quote(spec)} -o {_quote(folder)} --resume")
    from .distributed import is_writer, launch

    if nproc is not None and nproc > 1:
        from .track import require

        require(tensorboard, mlflow_uri)
        m = launch(spec, nproc, folder, resume=resume, quiet=quiet, threads=threads,
                   tensorboard=tensorboard, mlflow=mlflow_uri)
        _tracked(tensorboard, mlflow_uri)
        run = None
    else:
        with _tracking(tensorboard if is_writer() else None,
                       mlflow_uri if is_writer() else None, name=checked.spec.name,
                       run_name="train", spec=checked.spec) as trackers:
            run = train_spec(checked.spec, folder, resume=resume, quiet=quiet, threads=threads,
                             callbacks=[trackers], log_every=log_every)
            trackers.run_done(run)
        if not is_writer():  # a rank other than 0 under torchrun: rank 0 reports
            return
        m = run.metrics
    stop = f", stopped early (best epoch {m['best_epoch']})" if m.get("stopped_early") else ""
    click.echo(f"trained {checked.spec.name}: {m['epochs_run']} epochs in "
               f"{m['training_time_s']:.1f}s{stop}")
    for split in ("train", "val", "test"):
        if m.get(split):
            values = "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                               for k, v in m[split].items())
            click.echo(f"  {split:<5}  {values}")
    if run is not None:  # a --nproc run's model lives in its run folder, not here
        from .baseline import baseline_warning, units_note

        if units_note(run):
            click.echo(f"  {units_note(run).strip(' ()')}")
        warning = baseline_warning(run)
        if warning:
            click.echo(warning, err=True)
    click.echo(f"run folder: {folder}")


@main.command()
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("-j", "--jobs", type=click.IntRange(min=0), default=None,
              help="Worker processes (0: one per core) [default: 1]; with --backend ray, the "
                   "most trainings at once [default: 0, as many as the cluster's CPUs hold].")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="torch threads per training (capped so jobs x threads <= cores).")
@click.option("-o", "--out", type=click.Path(path_type=Path), default=None,
              help="Output folder [default: sweeps/<name>].")
@click.option("--dry-run", is_flag=True, help="Validate and list the variants; train nothing.")
@click.option("-q", "--quiet", is_flag=True, help="No per-variant progress lines.")
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local",
              show_default=True, help="Where the trainings run: local processes, or Ray tasks "
                                      "(pip install 'specnet[ray]'); same results.")
@click.option("--address", default=None, metavar="ADDR",
              help="With --backend ray: the cluster to join ('auto', 'HOST:6379', "
                   "'ray://HOST:10001') [default: start a local Ray].")
@tracking_options
@handle_errors
def sweep(spec: Path, jobs: int | None, threads: int, out: Path | None, dry_run: bool,
          quiet: bool, backend: str, address: str | None, tensorboard: Path | None,
          mlflow_uri: str | None) -> None:
    """Train every variant of a sweep (grid, random search, cv, repeats) and compare them.

    SPEC is a spec with a `sweep:` section, or a file that `extends:` a base spec. Every
    variant is validated before anything trains. Writes summary.md, summary.csv, runs.csv,
    plot.png and best.yaml (the best variant's spec, for `specnet build`) to the output folder.

    \b
    Examples:
      specnet sweep specs/sweeps/optimizers_digits.yaml --jobs 2
      specnet sweep specs/sweeps/cv_tuning_iris.yaml --dry-run
      specnet sweep specs/sweeps/optimizers_digits.yaml --backend ray
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
        from .sweep.asha import plan_for

        asha = plan_for(sw)
        if asha is not None:
            click.echo(f"early termination: {asha.describe()}")
        for v in sw.variants:
            settings = ", ".join(f"{k}={json.dumps(x)}" for k, x in v.settings.items())
            click.echo(f"  {v.name}: {settings or '(base spec)'}")
        return
    folder = out if out is not None else Path("sweeps") / sw.name
    check_out_dir(folder)  # before training, not after
    from .signals import on_interrupt

    on_interrupt(f"nothing was written to {folder} (a sweep does not checkpoint); run the "
                 "same command again to start over")
    progress = None if quiet else (lambda line: click.echo(line, err=True))
    if jobs is None:
        jobs = 0 if backend == "ray" else 1
    params = {"sweep.file": sw.file, "sweep.metric": sw.metric, "sweep.mode": sw.mode,
              "sweep.cv": sw.cv, "sweep.repeats": sw.section.repeats,
              "sweep.variants": len(sw.variants), "sweep.backend": backend}
    with _tracking(tensorboard, mlflow_uri, name=sw.name, run_name=sw.name,
                   params=params) as trackers:
        result = run_sweep(sw, jobs=jobs, threads=threads, progress=progress,
                           backend=backend, address=address)
        click.echo(result.text_table())
        files = result.write(folder)
        click.echo(f"wrote {folder}/ ({', '.join(files)})", err=True)
        trackers.sweep_done(result)


def _quote(path: Path | str) -> str:
    import shlex

    return shlex.quote(str(path))


def _resume_hint(run_dir: Path, command: str) -> None:
    """On an interruption: say which checkpoint the run folder keeps and how to resume."""
    from .signals import on_interrupt

    def hint() -> str:
        from .checkpoint import list_checkpoints

        found = list_checkpoints(run_dir / "checkpoints")
        if not found:
            return f"no checkpoint was written yet; start again with: {command}"
        return f"kept {found[-1]}; resume with: {command}"

    on_interrupt(hint)


def _echo_columns(spec: Any, quiet: bool) -> None:
    """The column table of a tabular data file (CSV, Parquet), with its notes."""
    from .data.sources import _Tabular

    if quiet or not isinstance(spec.data, _Tabular):
        return
    if getattr(spec.data, "stream", False):  # the table reads every column whole
        click.echo(f"streaming {spec.data.path} (data.stream: true)")
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
@click.argument("run_dir", metavar="RUN|MODEL", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Artifact folder [default: exports/<name>]; with --target, the "
                   "target's folder (required).")
@click.option("--target", type=click.Choice(["triton", "kserve", "mlflow"]), default=None,
              help="Write the exported MODEL (folder or model.onnx) for this platform.")
@click.option("--max-batch-size", type=click.IntRange(min=1), default=None,
              help="triton/kserve: Triton's max_batch_size [default: 1024].")
@click.option("--storage-uri", default=None,
              help="kserve: where DIR/repository/ will be uploaded (s3://..., gs://..., "
                   "pvc://...), written as the manifest's storageUri.")
@handle_errors
def export_cmd(run_dir: Path, output: Path | None, target: str | None,
               max_batch_size: int | None, storage_uri: str | None) -> None:
    """Export a trained run folder to ONNX and verify it against torch; or, with
    --target, hand an exported MODEL to Triton, KServe or MLflow.

    Writes model.onnx (preprocessing and output head inside, metadata inside),
    weights.safetensors, spec.yaml, preprocessing.json, metrics.json, history.csv,
    learning_curve.png and verification.json. The folder appears complete or not at
    all. Exit code 3 when onnxruntime and torch disagree beyond the spec's tolerance.

    With --target (torch-free; the result is checked with the platform's own parser or
    loader): triton adds DIR/<name>/ (config.pbtxt, 1/model.onnx) to the model
    repository DIR; kserve writes DIR/inferenceservice.yaml and DIR/repository/; mlflow
    writes the MLflow model DIR (onnx flavor; needs specnet[mlflow]).

    \b
    Examples:
      specnet train specs/iris.yaml && specnet export runs/iris
      specnet export exports/iris --target triton -o model_repository
      specnet export exports/iris --target kserve -o deploy/iris --storage-uri s3://b/iris
    """
    if (target is not None or max_batch_size is not None or storage_uri is not None
            or (run_dir.suffix == ".onnx" and run_dir.is_file())):
        from .deploy.cli import export_target_cmd

        export_target_cmd(run_dir, target, output, max_batch_size, storage_uri)
        return
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
@click.option("--resume", is_flag=True,
              help="Continue the training of an interrupted build from its checkpoints.")
@click.option("-q", "--quiet", is_flag=True, help="No training progress output.")
@click.option("--log-every", type=click.IntRange(min=1), default=None, metavar="N",
              help="Off a terminal, a progress line every N epochs [default: ~20 a run].")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch threads [default: the spec's training.threads, auto].")
@tracking_options
@handle_errors
def build(spec: Path, output: Path | None, run_dir: Path | None, resume: bool, quiet: bool,
          log_every: int | None, threads: int | None, tensorboard: Path | None,
          mlflow_uri: str | None) -> None:
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
    from .artifact import OWNED_FILES
    from .export import export_run
    from .outdir import Layout, check_destination
    from .spec.validate import load_spec
    from .trainer import check_run_dir
    from .trainer import train as train_spec

    checked = load_spec(spec)
    for issue in checked.warnings:
        _echo_issue(issue)
    _echo_columns(checked.spec, quiet)
    folder = output if output is not None else Path("exports") / checked.spec.name
    dest = check_destination(folder, Layout.flat(OWNED_FILES, "a specnet export"),
                             spec_file=spec)  # before training
    # Training checkpoints go to --run-dir, or to a hidden folder beside the artifact that
    # an interrupted build keeps (for --resume) and a finished or failed one removes.
    work = run_dir if run_dir is not None else dest.parent / f".{dest.name}.run"
    check_run_dir(work, spec)
    again = f"specnet build {_quote(spec)}" + (f" -o {_quote(output)}" if output else "") + \
        (f" --run-dir {_quote(run_dir)}" if run_dir else "")
    _resume_hint(work, f"{again} --resume")
    with _tracking(tensorboard, mlflow_uri, name=checked.spec.name, run_name="build",
                   spec=checked.spec) as trackers:
        try:
            run = train_spec(checked.spec, work, resume=resume, quiet=quiet, threads=threads,
                             callbacks=[trackers], log_every=log_every)
            trackers.run_done(run)
            exported = export_run(run, folder)
        except SpecnetError:
            if run_dir is None:
                shutil.rmtree(work, ignore_errors=True)
            raise
        m = run.metrics
        test = "  ".join(f"{k} {v:.4f}" for k, v in (m.get("test") or {}).items()
                         if isinstance(v, float))
        from .baseline import baseline_warning, units_note

        click.echo(f"trained {run.spec.name}: {m.get('epochs_run', '?')} epochs"
                   + (f"; test {test}{units_note(run)}" if test else ""))
        warning = baseline_warning(run)
        if warning:
            click.echo(warning, err=True)
        if run_dir is None:
            shutil.rmtree(work, ignore_errors=True)
        _echo_export(exported)
        trackers.exported(exported)


@main.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("input_path", metavar="INPUT")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Write here instead of stdout (format from the extension).")
@click.option("-f", "--format", "fmt", type=click.Choice(["csv", "json"]), default=None,
              help="Output format [default: from -o's extension, else csv].")
@click.option("--input-format", type=click.Choice(["csv", "json", "npy"]), default=None,
              help="Input format [default: from INPUT's extension; stdin: from its content].")
@click.option("--threshold", type=click.FloatRange(0.0, 1.0), default=None,
              help="Binary models: class 1 when P(class 1) > this [default: 0.5].")
@click.option("--keep", "keep", multiple=True, metavar="COLUMN",
              help="Pass this input column through to the output (repeatable); the "
                   "model's id columns always are.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="onnxruntime threads [default: the available cores].")
@handle_errors
def predict(model: Path, input_path: str, output: Path | None, fmt: str | None,
            input_format: str | None, threshold: float | None, keep: tuple[str, ...],
            threads: int | None) -> None:
    """Predict with an exported MODEL (folder or model.onnx) on the rows in INPUT.

    INPUT is CSV with a header (columns matched by feature name, others ignored), JSON
    (records, rows, or {"instances": ...}) or NPY; '-' reads stdin, whose format is told
    by its content. Output: id and --keep columns first, then CSV (label and
    prob_<class> columns, or one column per target) or JSON. Runs on onnxruntime only
    (torch is not imported).

    \b
    Examples:
      specnet predict exports/iris flowers.csv
      specnet predict exports/iris rows.json -o predictions.json
      cat rows.csv | specnet predict exports/moons - --threshold 0.3 --keep id
    """
    from .predict import predict_file

    if fmt is None:
        fmt = "json" if output is not None and output.suffix.lower() == ".json" else "csv"

    def note(text: str) -> None:
        click.echo(f"note: {text}", err=True)

    art, text = predict_file(model, input_path, input_fmt=input_format, output_fmt=fmt,
                             note=note, threshold=threshold, keep=keep, threads=threads)
    problem = art.verification_problem()
    if problem:
        click.echo(f"warning: {problem}", err=True)
    _emit(text, output)


@main.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("data_path", metavar="DATA")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Folder for evaluation.json and the figures [default: "
                   "evaluations/<model name>].")
@click.option("--target", multiple=True, metavar="COLUMN",
              help="Label column (repeat for several regression targets) [default: the "
                   "model's target column].")
@click.option("--threshold", type=click.FloatRange(0.0, 1.0), default=None,
              help="Binary models: class 1 when P(class 1) > this [default: 0.5].")
@click.option("--input-format", type=click.Choice(["csv", "json"]), default=None,
              help="Input format [default: from DATA's extension; stdin: from its content].")
@handle_errors
def evaluate(model: Path, data_path: str, output: Path | None, target: tuple[str, ...],
             threshold: float | None, input_format: str | None) -> None:
    """Score an exported MODEL (folder or model.onnx) on the labelled rows in DATA.

    DATA is CSV with a header or JSON records holding the model's inputs and the label
    column; '-' reads stdin. Prints the metrics, the per-class table and the confusion
    matrix (or per-target errors), and writes evaluation.json and the figures
    (confusion matrix, ROC, precision-recall, calibration; residuals and predicted vs
    true) to the output folder. Runs on onnxruntime only (torch is not imported).

    \b
    Examples:
      specnet evaluate exports/iris labelled.csv -o eval/iris
      specnet evaluate exports/moons test.json --threshold 0.3
    """
    from .evaluate import EVALUATION_FILES, evaluate_file, summary, write_evaluation
    from .io import atomic_dir

    def note(text: str) -> None:
        click.echo(f"note: {text}", err=True)

    scored = evaluate_file(model, data_path, input_fmt=input_format, target=target,
                           threshold=threshold, note=note)
    problem = scored.art.verification_problem()
    if problem:
        click.echo(f"warning: {problem}", err=True)
    folder = output if output is not None else Path("evaluations") / scored.art.name
    with atomic_dir(folder, EVALUATION_FILES, "a specnet evaluation") as tmp:
        files = write_evaluation(scored, tmp)
    click.echo(summary(scored.report), nl=False)
    click.echo(f"wrote {folder}/ ({', '.join(files)})", err=True)


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
@click.option("--limit-concurrency", type=click.IntRange(min=1), default=1024,
              show_default=True, help="Most requests in flight (more: 503 at once) and open "
                                      "connections (more: the oldest idle ones are closed).")
@click.option("--max-queue", type=click.IntRange(min=0), default=64, show_default=True,
              help="Large requests waiting for the inference pool (more: 503).")
@click.option("--keep-alive", type=click.IntRange(min=1), default=5, show_default=True,
              help="Seconds an idle keep-alive connection stays open.")
@click.option("--header-timeout", type=click.FloatRange(min=0.1), default=10.0,
              show_default=True, help="Seconds a connection has to send a request head.")
@click.option("--body-timeout", type=click.FloatRange(min=0.1), default=30.0,
              show_default=True, help="Seconds a request has to send its body (more: 408).")
@click.option("--graceful-timeout", type=click.IntRange(min=0), default=30, show_default=True,
              help="Seconds SIGTERM waits for in-flight requests before stopping.")
@click.option("--allow-unverified", is_flag=True,
              help="Serve a model whose verification is missing or failed.")
@click.option("--grpc-port", type=click.IntRange(0, 65535), default=None,
              help="Also serve the Open Inference Protocol over gRPC on this port "
                   "(needs specnet[grpc]).")
@click.option("--access-log", is_flag=True, help="Log every request.")
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info",
                                                "debug"]), default="info",
              show_default=True)
@handle_errors
def serve(model: Path, host: str, port: int, workers: int, threads: int | None,
          max_rows: int, max_body_mb: float, limit_concurrency: int, max_queue: int,
          keep_alive: int, header_timeout: float, body_timeout: float,
          graceful_timeout: int, allow_unverified: bool, grpc_port: int | None,
          access_log: bool, log_level: str) -> None:
    """Serve an exported MODEL, or a model repository of several, over HTTP (Open
    Inference Protocol v2 + /predict).

    MODEL: an export folder, a model.onnx, or a repository: a folder of Triton model
    folders (`specnet export M --target triton -o DIR`, served by folder name) and/or of
    export folders (`specnet serve exports`, served by model name).

    Endpoints: /v2/health/live, /v2/health/ready, /v2/models/<name>[/versions/1]
    [/ready|/config|/stats|/infer], /v2/repository/index, /models/<name>/predict,
    /models/<name>/metadata, /predict and /metadata (one model only), /metrics
    (Prometheus), /openapi.json, /docs. Works with tritonclient and KServe's client as they
    are (binary tensors, gzip). Runs on onnxruntime only (no torch). Refuses a model whose
    verification is missing or failed unless --allow-unverified.

    \b
    Examples:
      specnet serve exports/iris --port 8000
      curl -s localhost:8000/predict --json '{"rows": [[5.1, 3.5, 1.4, 0.2]]}'
      specnet serve exports --port 8000 --grpc-port 8001    # every model in exports/
      curl -s localhost:8000/models/iris/predict --json '{"rows": [[5.1, 3.5, 1.4, 0.2]]}'
    """
    from .runtime import available_cores
    from .serve import Limits
    from .serve import serve as run_server

    if threads is not None and threads * workers > available_cores():
        click.echo(f"warning: {workers} workers x {threads} threads exceeds the "
                   f"{available_cores()} available cores", err=True)
    limits = Limits(max_rows=max_rows, max_body_bytes=int(max_body_mb * 1024 * 1024),
                    limit_concurrency=limit_concurrency, max_queue=max_queue,
                    keep_alive=keep_alive, header_timeout=header_timeout,
                    body_timeout=body_timeout, graceful_timeout=graceful_timeout)
    from .signals import on_interrupt, raise_if_received

    on_interrupt("the server stopped; nothing to resume")
    grpc_server = None
    models = None
    if grpc_port is not None:
        from . import __version__
        from .runtime import default_threads
        from .serve import load_models
        from .serve.grpc import GrpcLimits, check_installed, start

        check_installed()  # a missing extra is reported before any model is opened
        threads = threads or default_threads(workers)
        # One process: HTTP and gRPC share the open models. With N workers, each worker
        # holds its own copy and this process one more for gRPC.
        models = load_models(model, allow_unverified=allow_unverified, threads=threads,
                             copies=workers + (workers > 1))
        grpc_server = start(models, host=host, port=grpc_port, version=__version__,
                            limits=GrpcLimits(max_rows=max_rows,
                                              max_message_bytes=int(max_body_mb * 1024 * 1024)))
        click.echo(f"gRPC (GRPCInferenceService) on {host}:{grpc_server.port}", err=True)
    try:
        run_server(model, host=host, port=port, workers=workers, threads=threads,
                   limits=limits, allow_unverified=allow_unverified, access_log=access_log,
                   log_level=log_level, models=models if workers == 1 else None)
    finally:
        if grpc_server is not None:
            grpc_server.stop()
    raise_if_received()  # uvicorn stops on SIGTERM / SIGINT and returns: exit 143 / 130


if __name__ == "__main__":  # pragma: no cover
    main()
