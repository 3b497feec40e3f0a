"""Starter specs for `specnet init`: one commented spec per template, each valid as
written (the csv template once its data file exists beside it).

A plain dict from the template's name to its text; adding a template is adding an entry.
"""

from __future__ import annotations

from pathlib import Path

from .errors import SpecnetError

SCHEMA_FILE = "specnet.schema.json"
HEADER = f"""\
# yaml-language-server: $schema={SCHEMA_FILE}
# Editors with the YAML language server complete and check this file against the schema;
# write it beside this spec with: specnet schema -o {SCHEMA_FILE}
"""

_TRAINING = """\
loss: {loss}
optimizer: {{type: adam, lr: {lr}}}            # sgd, adamw, rmsprop, ...
training:
  epochs: {epochs}
  batch_size: {batch}
  metrics: [{metrics}]
  early_stopping: {{monitor: val_loss, patience: {patience}, restore_best: true}}
"""

TEMPLATES: dict[str, str] = {
    "classification": HEADER + """\
# Multi-class classification: Iris, 3 species from 4 measurements (built in, offline).
# Next: specnet validate SPEC; specnet show SPEC; specnet build SPEC
name: my_classifier            # the artifact folder: exports/my_classifier/
seed: 0                        # one seed for Python, NumPy, torch and the splits
task: classification           # classification | binary | regression
data:
  source: iris                 # or csv / npz / a built-in set: wine, breast_cancer, digits
  split: {validation: 0.2, test: 0.2, stratify: true}
  normalize: standard          # fitted on the training split, stored in the model
model:
  - linear: 32
  - relu
  - dropout: 0.1
  - linear: 32
  - relu
  - linear: auto               # sized from the data: one unit per class
""" + _TRAINING.format(loss="cross_entropy", lr=0.01, epochs=200, batch=16,
                       metrics="accuracy, f1_macro", patience=30),

    "regression": HEADER + """\
# Regression: disease progression of 442 diabetes patients from 10 measurements (built in).
# Next: specnet validate SPEC; specnet build SPEC; specnet evaluate exports/NAME DATA
name: my_regressor
seed: 0
task: regression
data:
  source: diabetes
  split: {validation: 0.2, test: 0.2}
  normalize: standard
  target_normalize: standard   # train on standardised targets; predictions come back in units
model:
  - linear: 32
  - relu
  - linear: auto               # one unit per target
regularization: {l2: 0.0001}
""" + _TRAINING.format(loss="mse", lr=0.003, epochs=300, batch=32, metrics="r2, mae",
                       patience=30),

    "image": HEADER + """\
# Images: handwritten digits as [1, 8, 8] images, a small convolutional network (built in).
# Shapes are checked before anything trains: specnet show SPEC prints them per layer.
name: my_image_model
seed: 0
task: classification
data: {source: digits, as_image: true}
model:
  - conv2d: {out_channels: 16, kernel_size: 3, padding: same}
  - relu
  - maxpool2d: 2               # [16, 4, 4]
  - conv2d: {out_channels: 32, kernel_size: 3, padding: same}
  - batchnorm                  # BatchNorm2d, chosen from the shape
  - relu
  - maxpool2d: 2               # [32, 2, 2]
  - flatten
  - linear: 64
  - relu
  - dropout: 0.2
  - linear: auto
""" + _TRAINING.format(loss="cross_entropy", lr=0.003, epochs=60, batch=64,
                       metrics="accuracy", patience=15),

    "csv": HEADER + """\
# Your own data: a CSV file with a header row. `path` is relative to this spec file;
# `target` names the column to predict, every other column is a feature unless listed
# in `features`. Point both at your file, then: specnet validate SPEC
name: my_csv_model
seed: 0
task: classification           # binary for two classes, regression for numbers
data:
  source: csv
  path: data.csv
  target: target
  # features: [age, income]    # default: every column but the target
  split: {validation: 0.2, test: 0.2, stratify: true}
  normalize: standard
model:
  - linear: 32
  - relu
  - linear: auto
""" + _TRAINING.format(loss="cross_entropy", lr=0.01, epochs=200, batch=32,
                       metrics="accuracy, f1_macro", patience=30),
}


def template(name: str) -> str:
    """The text of the starter spec `name`; SpecnetError listing the templates if unknown."""
    if name not in TEMPLATES:
        raise SpecnetError(f"no template {name!r}; choose one of {', '.join(TEMPLATES)}")
    return TEMPLATES[name]


def write_new(path: Path, text: str) -> None:
    """Write `text` to a new file `path`; an existing file is never overwritten."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("x", encoding="utf-8") as f:
            f.write(text)
    except FileExistsError:
        raise SpecnetError(f"{path} already exists; choose another file (-o) or remove it "
                           "first") from None
    except OSError as exc:
        raise SpecnetError(f"cannot write {path}: {exc.strerror or exc}") from None
