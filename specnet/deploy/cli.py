"""`specnet export MODEL --target ...`: the command's checks and output lines."""

from __future__ import annotations

from pathlib import Path

import click

from ..artifact import MODEL_FILE


def export_target_cmd(model: Path, target: str | None, output: Path | None,
                      max_batch_size: int | None, storage_uri: str | None) -> None:
    """Check the options, write the target, print what was written and how it was checked."""
    if target is None:
        what = "--max-batch-size / --storage-uri need" if model.suffix != ".onnx" else \
            f"{model} is a model, not a training run: exporting it needs"
        raise click.UsageError(f"{what} --target triton|kserve|mlflow and -o DIR")
    if output is None:
        raise click.UsageError(f"--target {target} needs -o DIR, the folder to write")
    if max_batch_size is not None and target == "mlflow":
        raise click.UsageError("--max-batch-size is for --target triton or kserve")
    if storage_uri is not None and target != "kserve":
        raise click.UsageError("--storage-uri is for --target kserve")
    if model.is_dir() and not (model / MODEL_FILE).is_file():
        from ..errors import SpecnetError

        raise SpecnetError(f"{model}: no {MODEL_FILE} in it; --target takes an exported model "
                           f"(folder or model.onnx). For a training run folder, export it "
                           f"first: specnet export {model} -o exports/NAME")
    from . import export_target
    from .triton import DEFAULT_MAX_BATCH_SIZE

    deployed = export_target(model, target, output, max_batch_size=max_batch_size,
                             storage_uri=storage_uri)
    if deployed.warning:
        click.echo(f"warning: {deployed.warning}", err=True)
    click.echo(f"wrote {target} -> {deployed.folder}/ ({', '.join(deployed.files)})")
    click.echo(f"checked: {deployed.checked}")
    if target in ("triton", "kserve"):
        click.echo(f"max_batch_size: {max_batch_size or DEFAULT_MAX_BATCH_SIZE}, dynamic "
                   "batching on", err=True)
    if target == "kserve" and storage_uri is None:
        click.echo(f"note: no --storage-uri: set spec.predictor.model.storageUri in "
                   f"{deployed.folder}/inferenceservice.yaml to where you upload "
                   f"{deployed.folder}/repository/", err=True)
