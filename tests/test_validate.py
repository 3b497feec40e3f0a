"""specnet.spec.validate: located errors in one pass, shorthand == full form, cross-field rules.

The tables below are the spec language's contract: each invalid spec with the exact lines
`specnet validate` prints for it (file:line:col: path: message), and each valid spec with
what it validates to.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from specnet.data.sources import SOURCES
from specnet.errors import SpecError
from specnet.layers import LAYERS, Block, Linear
from specnet.spec.load import loads
from specnet.spec.resolve import dump_resolved, resolved_dict, spec_hash
from specnet.spec.schema import LOSSES, METRICS, OPTIMIZERS, SCHEDULES, CosineLR, Huber, StepLR
from specnet.spec.validate import Checked, check, load_spec, validate

SPECS = sorted((Path(__file__).resolve().parent.parent / "specs").glob("*.yaml"))
NAMES = {k: ", ".join(v) for k, v in
         {"layer": LAYERS, "loss": LOSSES, "optimizer": OPTIMIZERS, "schedule": SCHEDULES,
          "source": SOURCES, "metric": METRICS}.items()}

BASE = "data: iris\nmodel:\n  - linear: 8\n  - relu\n  - linear: auto\n"  # lines 1-5
IMAGE = "data: {source: digits, as_image: true}\nmodel:\n"


def _check(text: str, file: str = "spec.yaml") -> Checked:
    src = loads(text, file)
    return check(validate(src), src)


def _lines(text: str) -> list[str]:
    with pytest.raises(SpecError) as exc:
        _check(text)
    return [str(i) for i in exc.value.issues]


# ---------------------------------------------------------------- invalid specs

INVALID: list[tuple[str, str, list[str]]] = [
    # ---- unknown names and keys, with did-you-mean
    ("unknown-top-key", BASE + "optimiser: adam\n", [
        "spec.yaml:6:1: optimiser: unknown key 'optimiser' (did you mean 'optimizer'?); "
        "allowed: data, device, export, init, input, loss, model, name, optimizer, "
        "regularization, seed, task, training"]),
    ("unknown-layer", "data: iris\nmodel:\n  - linear: 8\n  - rellu\n  - linear: auto\n", [
        "spec.yaml:4:5: model[1]: unknown layer 'rellu' (did you mean 'relu'?); choose from "
        + NAMES["layer"]]),
    ("unknown-layer-key", "data: iris\nmodel:\n  - linear: {units: 8, bais: false}\n"
                          "  - linear: auto\n", [
        "spec.yaml:3:24: model[0].bais: unknown key 'bais' (did you mean 'bias'?); allowed: "
        "bias, bias_init, init, units"]),
    ("unknown-key-full-form", "data: iris\nmodel:\n  - {type: linear, units: 3, bais: false}\n", [
        "spec.yaml:3:30: model[0].bais: unknown key 'bais' (did you mean 'bias'?); allowed: "
        "bias, bias_init, init, units"]),
    ("unknown-loss", BASE + "loss: crossentropy\n", [
        "spec.yaml:6:1: loss: unknown loss 'crossentropy' (did you mean 'cross_entropy'?); "
        "choose from " + NAMES["loss"]]),
    ("unknown-optimizer", BASE + "optimizer: {type: adamm}\n", [
        "spec.yaml:6:1: optimizer: unknown optimizer 'adamm' (did you mean 'adam'?); choose from "
        + NAMES["optimizer"]]),
    ("unknown-source", "data: irsi\nmodel: [linear: auto]\n", [
        "spec.yaml:1:1: data: unknown data source 'irsi' (did you mean 'iris'?); choose from "
        + NAMES["source"]]),
    ("unknown-schedule", BASE + "training: {schedule: cosin}\n", [
        "spec.yaml:6:12: training.schedule: unknown schedule 'cosin' (did you mean 'cosine'?); "
        "choose from " + NAMES["schedule"]]),
    ("unknown-metric", BASE + "training: {metrics: [accuracy, f1]}\n", [
        "spec.yaml:6:32: training.metrics[1]: unknown metric 'f1' (did you mean 'f1_macro'?); "
        "choose from " + NAMES["metric"]]),
    ("unknown-optimizer-key", BASE + "optimizer: {type: sgd, momentum: 0.9}\n", [
        "spec.yaml:6:24: optimizer.momentum: unknown key 'momentum'; allowed: lr, weight_decay"]),
    ("bad-task", BASE + "task: clasification\n", [
        "spec.yaml:6:1: task: must be 'classification', 'binary' or 'regression' (did you mean "
        "'classification'?), got 'clasification'"]),
    ("bad-device", BASE + "device: gpu\n", [
        "spec.yaml:6:1: device: must be 'cpu', 'cuda' or 'auto', got 'gpu'"]),
    # ---- shape of the document
    ("missing-model", "data: iris\n", [
        "spec.yaml:1:1: model: required field is missing (Layers in order; compiles to "
        "torch.nn.Sequential)"]),
    ("empty-model", "data: iris\nmodel: []\n", [
        "spec.yaml:2:1: model: must have at least 1 item, got []"]),
    ("model-not-list", "data: iris\nmodel: relu\n", [
        "spec.yaml:2:1: model: must be a list, got 'relu'"]),
    ("layer-not-mapping", "data: iris\nmodel:\n  - 5\n  - linear: auto\n", [
        "spec.yaml:3:5: model[0]: must be a layer: a name like `relu`, `relu: {...}`, or a "
        "mapping with `type:`, got int"]),
    ("optimizer-not-mapping", BASE + "optimizer: [adam]\n", [
        "spec.yaml:6:1: optimizer: must be an optimizer: a name like `sgd`, `sgd: {...}`, or a "
        "mapping with `type:`, got list"]),
    ("yes-for-a-number", BASE + "seed: yes\ntraining: {batch_size: on}\n", [
        "spec.yaml:6:1: seed: must be an integer, got true",
        "spec.yaml:7:12: training.batch_size: must be an integer >= 1 or 'full', got true"]),
    ("missing-type", "data: iris\nmodel:\n  - {units: 3}\n", [
        "spec.yaml:3:5: model[0]: missing `type`: choose from " + NAMES["layer"]]),
    ("shorthand-without-argument", "data: iris\nmodel:\n  - relu: 2\n  - linear: auto\n", [
        "spec.yaml:3:5: model[0]: layer 'relu' takes no shorthand value (got 2); write just "
        "`relu`, or `relu: {field: value}`"]),
    ("shorthand-with-more-keys", "data: iris\nmodel:\n  - {block: [relu], repeat: 2}\n"
                                 "  - linear: auto\n", [
        "spec.yaml:3:5: model[0]: `block:` shorthand cannot take other keys (got repeat); "
        "write the full form `{type: block, layers: ..., repeat: ...}`"]),
    ("loss-shorthand-with-more-keys", BASE + "loss: {huber: 1, delta: 2}\n", [
        "spec.yaml:6:1: loss: `huber:` shorthand cannot take other keys (got delta); "
        "write the full form `{type: huber, delta: ...}`"]),
    ("two-layers-in-one-item", "data: iris\nmodel:\n  - linear: 8\n    relu:\n"
                               "  - linear: auto\n", [
        "spec.yaml:3:5: model[0]: one layer per item, got 'linear' and 'relu'; start each "
        "with its own `- `"]),
    ("type-given-twice", "data: iris\nmodel:\n  - linear: {type: relu}\n  - linear: auto\n", [
        "spec.yaml:3:5: model[0]: `linear:` holds `type: 'relu'`; give the layer once, as "
        "`linear: {...}` or `{type: linear, ...}`"]),
    # ---- values out of range or of the wrong type
    ("negative-lr", BASE + "optimizer: {type: adam, lr: -0.1}\n", [
        "spec.yaml:6:25: optimizer.lr: must be greater than 0, got -0.1"]),
    ("nan-lr", BASE + "optimizer: {type: sgd, lr: .nan}\n", [
        "spec.yaml:6:24: optimizer.lr: must be a finite number, got nan"]),
    ("negative-seed", BASE + "seed: -1\n", ["spec.yaml:6:1: seed: must be at least 0, got -1"]),
    ("seed-too-large", BASE + "seed: 99999999999\n", [
        "spec.yaml:6:1: seed: must be at most 4294967295, got 99999999999"]),
    ("bad-name", BASE + "name: 'my model!'\n", [
        "spec.yaml:6:1: name: must match the pattern ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$, "
        "got 'my model!'"]),
    ("dropout-one", "data: iris\nmodel:\n  - linear: 8\n  - dropout: 1.0\n  - linear: auto\n", [
        "spec.yaml:4:5: model[1].p: must be less than 1, got 1.0"]),
    ("units-zero", "data: iris\nmodel:\n  - linear: 0\n  - linear: auto\n", [
        "spec.yaml:3:5: model[0].units: must be an integer >= 1 or 'auto', got 0"]),
    ("units-text", "data: iris\nmodel:\n  - linear: eight\n  - linear: auto\n", [
        "spec.yaml:3:5: model[0].units: must be an integer >= 1 or 'auto', got 'eight'"]),
    ("epochs-fraction", BASE + "training: {epochs: 1.5}\n", [
        "spec.yaml:6:12: training.epochs: must be a whole number, got 1.5"]),
    ("batch-size-zero", BASE + "training: {batch_size: 0}\n", [
        "spec.yaml:6:12: training.batch_size: must be an integer >= 1 or 'full', got 0"]),
    ("batch-size-typo", BASE + "training: {batch_size: ful}\n", [
        "spec.yaml:6:12: training.batch_size: must be an integer >= 1 or 'full' (did you mean "
        "'full'?), got 'ful'"]),
    ("split-leaves-nothing", "data: {source: iris, split: {validation: 0.5, test: 0.45}}\n"
                             "model: [linear: auto]\n", [
        "spec.yaml:1:22: data.split: validation + test = 0.95 leaves too little to train on; "
        "keep it below 0.9"]),
    ("grad-clip-both", BASE + "regularization: {grad_clip: {norm: 1, value: 1}}\n", [
        "spec.yaml:6:18: regularization.grad_clip: give either `norm` or `value`, not both"]),
    ("negative-l2", BASE + "regularization: {l2: -1}\n", [
        "spec.yaml:6:18: regularization.l2: must be at least 0, got -1"]),
    ("betas-too-short", BASE + "optimizer: {type: adam, betas: [0.9]}\n", [
        "spec.yaml:6:25: optimizer.betas[1]: missing: the list is too short"]),
    ("conv-padding-negative", IMAGE + "  - conv2d: {out_channels: 4, padding: -1}\n"
                                      "  - flatten\n  - linear: auto\n", [
        "spec.yaml:3:31: model[0].padding: must be an integer >= 0, a list of 2 integers >= 0, "
        "'same' or 'valid', got -1"]),
    ("conv-kernel-pair", IMAGE + "  - conv2d: {out_channels: 4, kernel_size: [0, 3]}\n"
                                 "  - flatten\n  - linear: auto\n", [
        "spec.yaml:3:45: model[0].kernel_size[0]: must be at least 1, got 0"]),
    ("input-zero", BASE + "input: [0]\n", ["spec.yaml:6:9: input[0]: must be at least 1, got 0"]),
    ("class-weights-text", BASE + "loss: {type: cross_entropy, class_weights: heavy}\n", [
        "spec.yaml:6:29: loss.class_weights: must be 'balanced', a list of numbers > 0 or null, "
        "got 'heavy'"]),
    ("every-error-in-one-pass",
     "name: x\ndata: iris\nmodel:\n  - linear: 0\n  - relu2\n  - linear: auto\nloss: msee\n"
     "optimizer: {type: adam, lr: 0}\ntraining: {epochs: 0}\n", [
         "spec.yaml:4:5: model[0].units: must be an integer >= 1 or 'auto', got 0",
         "spec.yaml:5:5: model[1]: unknown layer 'relu2' (did you mean 'relu'?); choose from "
         + NAMES["layer"],
         "spec.yaml:7:1: loss: unknown loss 'msee' (did you mean 'mse'?); choose from "
         + NAMES["loss"],
         "spec.yaml:8:25: optimizer.lr: must be greater than 0, got 0",
         "spec.yaml:9:12: training.epochs: must be at least 1, got 0"]),
    # ---- cross-field rules, each with its fix
    ("regression-data-default-task", "data: diabetes\nmodel:\n  - linear: 8\n  - relu\n"
                                     "  - linear: auto\n", [
        "spec.yaml:1:1: task: task is classification but 'diabetes' has continuous targets; "
        "use task: regression"]),
    ("bce-with-2-unit-head", "task: binary\ndata: moons\nmodel:\n  - linear: 8\n  - relu\n"
                             "  - linear: 2\nloss: bce\n", [
        "spec.yaml:6:5: model[2]: the network outputs [2] but a binary task needs [1] (one "
        "logit); make the last layer `linear: 1` or `linear: auto`, or use task: classification "
        "with cross_entropy"]),
    ("bce-on-classification", BASE + "loss: bce\n", [
        "spec.yaml:6:1: loss: bce takes one logit per row (task: binary); for 3 classes use "
        "cross_entropy"]),
    ("cross-entropy-on-regression", "task: regression\ndata: diabetes\nmodel:\n  - linear: 8\n"
                                    "  - linear: auto\nloss: cross_entropy\n", [
        "spec.yaml:6:1: loss: cross_entropy is a classification loss but the task is "
        "regression; use one of mse, mae, huber"]),
    ("mse-on-classification", BASE + "loss: mse\n", [
        "spec.yaml:6:1: loss: mse is a regression loss but the task is classification; use "
        "cross_entropy"]),
    ("cross-entropy-on-binary", "task: binary\ndata: moons\nmodel:\n  - linear: 8\n"
                                "  - linear: auto\nloss: cross_entropy\n", [
        "spec.yaml:6:1: loss: task binary has one output logit; use bce, or task: "
        "classification with cross_entropy and 2 output units"]),
    ("binary-on-3-classes", "task: binary\ndata: iris\nmodel:\n  - linear: 8\n"
                            "  - linear: auto\n", [
        "spec.yaml:1:1: task: task is binary but 'iris' has 3 classes; use task: "
        "classification"]),
    ("regression-on-classes", "task: regression\ndata: iris\nmodel:\n  - linear: auto\n", [
        "spec.yaml:1:1: task: task is regression but 'iris' is a classification data set; use "
        "task: classification (or binary)"]),
    ("wrong-output-width", "data: iris\nmodel:\n  - linear: 8\n  - linear: 4\n", [
        "spec.yaml:4:5: model[1]: the network outputs [4] but 'iris' has 3 classes, so it "
        "needs [3]; make the last layer `linear: 3` or `linear: auto`"]),
    ("wrong-target-width", "task: regression\ndata: {source: regression, n_targets: 2}\n"
                           "model:\n  - linear: 8\n  - linear: 1\n", [
        "spec.yaml:5:5: model[1]: the network outputs [1] but 'regression' has 2 targets, so "
        "it needs [2]; make the last layer `linear: 2` or `linear: auto`"]),
    ("monitor-unknown", BASE + "training: {early_stopping: {monitor: val_acc}}\n", [
        "spec.yaml:6:29: training.early_stopping.monitor: cannot monitor 'val_acc' (did you "
        "mean 'val_accuracy'?); choose from accuracy, f1_macro, loss, val_accuracy, "
        "val_f1_macro, val_loss"]),
    ("monitor-without-validation", "data: {source: iris, split: {validation: 0}}\n"
                                   "model: [linear: auto]\n"
                                   "training: {early_stopping: {monitor: val_loss}}\n", [
        "spec.yaml:3:29: training.early_stopping.monitor: monitoring 'val_loss' needs a "
        "validation split; set data.split.validation above 0 or monitor a training column"]),
    ("plateau-monitor", BASE + "training: {schedule: {type: plateau, monitor: accuracy_val}}\n", [
        "spec.yaml:6:38: training.schedule.monitor: cannot monitor 'accuracy_val' (did you mean "
        "'accuracy'?); choose from accuracy, f1_macro, loss, val_accuracy, val_f1_macro, "
        "val_loss"]),
    ("metric-of-other-task", "task: regression\ndata: diabetes\nmodel: [linear: auto]\n"
                             "training: {metrics: [accuracy, r2]}\n", [
        "spec.yaml:4:22: training.metrics[0]: metric 'accuracy' does not apply to regression; "
        "use mse, mae, rmse, r2"]),
    ("roc-auc-on-3-classes", BASE + "training: {metrics: [roc_auc]}\n", [
        "spec.yaml:6:22: training.metrics[0]: roc_auc is for two classes, 'iris' has 3; remove "
        "it or use task: binary"]),
    ("class-weights-count", BASE + "loss: {type: cross_entropy, class_weights: [1, 2]}\n", [
        "spec.yaml:6:29: loss.class_weights: 2 class weights for 3 classes; give one weight per "
        "class, or 'balanced'"]),
    ("target-normalize-on-classes", "data: {source: iris, target_normalize: standard}\n"
                                    "model: [linear: auto]\n", [
        "spec.yaml:1:22: data.target_normalize: target_normalize applies to regression only; "
        "remove it (or set it to none)"]),
    ("nll-without-log-softmax", BASE + "loss: nll\n", [
        "spec.yaml:6:1: loss: nll expects log-probabilities: end the model with "
        "`- log_softmax`, or use cross_entropy on logits"]),
    ("input-mismatch", BASE + "input: [5]\n", [
        "spec.yaml:6:1: input: input [5] does not match the data's shape [4]; remove `input:` "
        "(the data's shape is the default) or correct it"]),
    ("warmup-too-long", BASE + "training: {epochs: 5, schedule: {type: cosine, "
                               "warmup_epochs: 5}}\n", [
        "spec.yaml:6:48: training.schedule.warmup_epochs: warm-up of 5 epochs leaves none of "
        "the 5 training epochs; make warmup_epochs smaller than training.epochs"]),
    # ---- shapes: the layer, its line, expected and got
    ("conv-on-flat-features", "data: iris\nmodel:\n  - linear: 8\n  - conv2d: 4\n"
                              "  - linear: auto\n", [
        "spec.yaml:4:5: model[1]: conv2d expects [C, H, W] (channels, height, width), got [8]; "
        "add `- reshape: [...]` before it"]),
    ("linear-on-image", IMAGE + "  - conv2d: 4\n  - linear: auto\n", [
        "spec.yaml:4:5: model[1]: linear expects [features] (flat features), got [4, 6, 6]; "
        "add `- flatten` before it"]),
    ("kernel-too-big", IMAGE + "  - conv2d: {out_channels: 4, kernel_size: 9}\n  - flatten\n"
                               "  - linear: auto\n", [
        "spec.yaml:3:5: model[0]: kernel [9, 9] does not fit input [1, 8, 8] (output would be "
        "[4, 0, 0]); use a smaller kernel or add padding"]),
    ("reshape-count", "data: iris\nmodel:\n  - reshape: [3, 3]\n  - flatten\n  - linear: auto\n", [
        "spec.yaml:3:5: model[0]: cannot reshape [4] (4 values) to [3, 3] (9 values)"]),
    ("mismatch-inside-block", "data: iris\nmodel:\n  - block:\n      layers: [linear: 8, "
                              "conv1d: 2]\n      repeat: 2\n  - linear: auto\n", [
        "spec.yaml:4:27: model[0].layers[1]: conv1d expects [C, L] (channels, length), got [8]; "
        "add `- reshape: [...]` before it"]),
    ("groups-do-not-divide", IMAGE + "  - conv2d: {out_channels: 4, groups: 3}\n  - flatten\n"
                                     "  - linear: auto\n", [
        "spec.yaml:3:5: model[0]: groups=3 must divide in_channels=1 and out_channels=4 (input "
        "to this layer: [1, 8, 8])"]),
    ("softmax-over-batch", "data: iris\nmodel:\n  - linear: auto\n  - log_softmax: 0\n"
                           "loss: nll\n", [
        "spec.yaml:4:5: model[1]: log_softmax dim 0 is the batch axis; use dim 1 (or -1) to "
        "normalise over the features (input to this layer: [3])"]),
    ("same-padding-with-stride", IMAGE + "  - conv2d: {out_channels: 4, padding: same, "
                                         "stride: 2}\n  - flatten\n  - linear: auto\n", [
        "spec.yaml:3:5: model[0]: padding 'same' needs stride 1; give a number instead (input "
        "to this layer: [1, 8, 8])"]),
    ("pool-window-too-big", IMAGE + "  - maxpool2d: 16\n  - flatten\n  - linear: auto\n", [
        "spec.yaml:3:5: model[0]: window [16, 16] does not fit input [1, 8, 8]; use a smaller "
        "window"]),
    ("block-too-big", "data: iris\nmodel:\n  - block: {repeat: 1000, layers: [block: "
                      "{repeat: 1000, layers: [relu]}]}\n  - linear: auto\n", [
        "spec.yaml:3:5: model[0]: block expands to 1,000,000 layers (repeats included); the "
        "limit is 10,000 (input to this layer: [4])"]),
]

# Valid specs: (id, text, check on the result)
VALID: list[tuple[str, str, Callable[[Checked], Any]]] = [
    ("minimal", "data: iris\nmodel: [linear: auto]\n",
     lambda c: c.summary.output_shape == (3,) and c.spec.loss_name == "cross_entropy"),
    ("binary-defaults", "task: binary\ndata: moons\nmodel: [linear: 8, relu, linear: auto]\n",
     lambda c: (c.spec.loss_name, c.spec.metric_names, c.summary.output_shape)
     == ("bce", ["accuracy", "f1_macro", "roc_auc"], (1,))),
    ("regression-defaults", "task: regression\ndata: diabetes\nmodel: [linear: auto]\n",
     lambda c: (c.spec.loss_name, c.spec.metric_names) == ("mse", ["mse", "mae", "r2"])),
    ("auto-sizes-from-targets", "task: regression\ndata: {source: regression, n_targets: 3}\n"
                                "model: [linear: 4, linear: auto]\n",
     lambda c: c.summary.output_shape == (3,)),
    ("batch-size-full", BASE + "training: {batch_size: full}\n",
     lambda c: c.spec.training.batch_size == "full"),
    ("huber-shorthand", "task: regression\ndata: diabetes\nmodel: [linear: auto]\n"
                        "loss: {huber: 0.5}\n",
     lambda c: c.spec.loss == Huber(delta=0.5)),
    ("schedule-shorthand", BASE + "training: {schedule: {step: 10}}\n",
     lambda c: c.spec.training.schedule == StepLR(step_size=10)),
    ("schedule-name", BASE + "training: {schedule: cosine}\n",
     lambda c: c.spec.training.schedule == CosineLR()),
    ("block-repeat", "data: iris\nmodel:\n  - block: {layers: [linear: 8, relu], repeat: 3}\n"
                     "  - linear: auto\n",
     lambda c: [r.label for r in c.summary.rows if r.depth == 0] == ["block x3", "linear(3)"]
     and c.summary.trainable == (4 * 8 + 8) + 2 * (8 * 8 + 8) + (8 * 3 + 3)),
    ("conv-net", IMAGE + "  - conv2d: {out_channels: 4, padding: same}\n  - batchnorm\n"
                         "  - maxpool2d: 2\n  - flatten\n  - linear: auto\n",
     lambda c: [r.shape for r in c.summary.rows] == [(4, 8, 8), (4, 8, 8), (4, 4, 4), (64,),
                                                     (10,)]),
    ("input-equal-to-data", BASE + "input: [4]\n", lambda c: c.summary.input_shape == (4,)),
    ("merge-keys", "data: iris\nmodel:\n  - linear: &h {units: 8, init: kaiming}\n"
                   "  - linear: {<<: *h, units: auto}\n",
     lambda c: c.spec.model[1] == Linear(units="auto", init="kaiming")),
    ("softmax-warning-only", "data: iris\nmodel: [linear: auto, softmax]\n",
     lambda c: [str(w) for w in c.warnings] == [
         "spec.yaml:2:23: model[1]: warning: softmax before cross_entropy applies softmax "
         "twice (cross_entropy works on logits); remove it: the exported model adds softmax "
         "to its output itself"]),
    ("sigmoid-warning-only", "task: binary\ndata: moons\nmodel: [linear: 1, sigmoid]\n",
     lambda c: [w.message for w in c.warnings] == [
         "sigmoid before bce applies sigmoid twice (bce works on logits); remove it: the "
         "exported model adds sigmoid to its output itself"]),
    ("batchnorm-batch-1-warning", "data: iris\nmodel: [linear: 8, batchnorm, linear: auto]\n"
                                  "training: {batch_size: 1}\n",
     lambda c: [w.message for w in c.warnings] == [
         "batchnorm with batch_size 1 cannot estimate batch statistics; use a larger batch"]),
    ("patience-warning", BASE + "training: {epochs: 10, early_stopping: {patience: 10}}\n",
     lambda c: [w.message for w in c.warnings] == [
         "patience 10 >= epochs 10: early stopping can never trigger; lower patience or raise "
         "training.epochs"]),
    ("huge-sklearn-numbers-do-not-hang", "data: {source: classification, n_samples: 10, "
                                         "n_features: 1000002, n_informative: 1000000}\n"
                                         "model: [linear: auto]\n",
     lambda c: c.summary.output_shape == (2,)),
    ("step-warning", BASE + "training: {epochs: 10, schedule: {step: 10}}\n",
     lambda c: [w.message for w in c.warnings] == [
         "step_size 10 >= epochs 10: the learning rate never decays; use a smaller step_size"]),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in INVALID],
                         ids=[c[0] for c in INVALID])
def test_invalid_spec(text: str, expected: list[str]) -> None:
    assert _lines(text) == expected


@pytest.mark.parametrize(("text", "ok"), [c[1:] for c in VALID], ids=[c[0] for c in VALID])
def test_valid_spec(text: str, ok: Callable[[Checked], Any]) -> None:
    assert ok(_check(text))


def test_ids_are_unique() -> None:
    ids = [c[0] for c in INVALID] + [c[0] for c in VALID]
    assert len(ids) == len(set(ids))


def test_warnings_are_reported_with_errors() -> None:
    lines = _lines("data: iris\nmodel: [linear: auto, softmax]\ntraining: {metrics: [r2]}\n")
    assert lines == [
        "spec.yaml:2:23: model[1]: warning: softmax before cross_entropy applies softmax twice "
        "(cross_entropy works on logits); remove it: the exported model adds softmax to its "
        "output itself",
        "spec.yaml:3:22: training.metrics[0]: metric 'r2' does not apply to classification; "
        "use accuracy, balanced_accuracy, f1_macro, precision_macro, recall_macro, roc_auc"]


# ---------------------------------------------------------------- shorthand == full form

SHORT = """\
data: iris
model:
  - linear: 16
  - leaky_relu: 0.1
  - dropout: 0.2
  - batchnorm
  - block: [linear: 8, relu]
  - linear: auto
loss: {cross_entropy: {label_smoothing: 0.1}}
optimizer: adam
training: {schedule: {step: 5}}
"""
FULL = """\
data: {source: iris}
model:
  - {type: linear, units: 16}
  - {type: leaky_relu, negative_slope: 0.1}
  - {type: dropout, p: 0.2}
  - {type: batchnorm}
  - {type: block, layers: [{type: linear, units: 8}, {type: relu}], repeat: 1}
  - {type: linear, units: auto}
loss: {type: cross_entropy, label_smoothing: 0.1}
optimizer: {type: adam}
training: {schedule: {type: step, step_size: 5}, metrics: [accuracy, f1_macro]}
"""


def test_shorthand_and_full_form_validate_to_the_same_spec() -> None:
    short, full = validate(loads(SHORT)), validate(loads(FULL))
    assert short == full
    assert short.model[-2] == Block(layers=[Linear(units=8), LAYERS["relu"]()])
    assert spec_hash(short) == spec_hash(full)


@pytest.mark.parametrize(("short", "full"), [
    ("relu", {"type": "relu"}),
    ({"relu": None}, {"type": "relu"}),
    ({"linear": 16}, {"type": "linear", "units": 16}),
    ({"linear": {"units": 16, "bias": False}}, {"type": "linear", "units": 16, "bias": False}),
    ({"dropout": 0.3}, {"type": "dropout", "p": 0.3}),
    ({"softmax": 1}, {"type": "softmax", "dim": 1}),
    ({"conv2d": 8}, {"type": "conv2d", "out_channels": 8}),
    ({"maxpool2d": 2}, {"type": "maxpool2d", "kernel_size": 2}),
    ({"reshape": [1, 2, 2]}, {"type": "reshape", "shape": [1, 2, 2]}),
    ({"prelu": True}, {"type": "prelu", "per_channel": True}),
], ids=lambda v: str(v))
def test_layer_shorthand(short: Any, full: Any) -> None:
    def spec(layer: Any) -> Any:
        return validate({"data": "iris", "input": [1, 2, 2], "model": [layer]})

    assert spec(short) == spec(full)


def test_a_dict_spec_validates_without_positions() -> None:
    with pytest.raises(SpecError) as exc:
        validate({"data": "iris", "model": ["relu2"]})
    assert str(exc.value).startswith("<spec>:1:1: model[0]: unknown layer 'relu2'")


def test_name_defaults_to_the_file_stem(tmp_path: Path) -> None:
    path = tmp_path / "my-net.yaml"
    path.write_text("data: iris\nmodel: [linear: auto]\n")
    assert load_spec(path).spec.name == "my-net"
    path.write_text("name: given\ndata: iris\nmodel: [linear: auto]\n")
    assert load_spec(path).spec.name == "given"


# ---------------------------------------------------------------- show --resolved round trip


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_resolved_form_validates_to_an_equal_spec(path: Path, fmt: str) -> None:
    checked = load_spec(path)
    # Portable (data paths as written), read back from the spec's folder: file sources
    # (specs/customers.yaml) resolve their paths the same way.
    text = dump_resolved(checked.spec, fmt, portable=True)
    again = validate(loads(text, f"resolved.{fmt}", base_dir=path.parent))
    assert again == checked.spec
    assert resolved_dict(again) == resolved_dict(checked.spec)
    assert spec_hash(again) == spec_hash(checked.spec)
    # resolved means every field is written out: nothing left to default
    assert set(resolved_dict(again)) >= {"name", "seed", "task", "data", "model", "loss",
                                         "optimizer", "regularization", "training", "export",
                                         "init", "device"}


RICH = """\
name: rich
task: classification
data: {source: digits, as_image: true, split: {validation: 0.1, test: 0.1}}
model:
  - conv2d: {out_channels: 4, kernel_size: [3, 3], padding: same, init: kaiming}
  - block:
      layers: [conv2d: {out_channels: 4, padding: 1}, batchnorm, prelu: true]
      repeat: 2
  - adaptive_avgpool2d: [2, 2]
  - flatten
  - layernorm: {over: all}
  - dropout: 0.1
  - linear: {units: auto, bias_init: zeros}
loss: {cross_entropy: {label_smoothing: 0.1, class_weights: balanced}}
optimizer: {adamw: {lr: 0.003, betas: [0.8, 0.99]}}
regularization: {l1: 0.0001, grad_clip: {norm: 1.0}}
training:
  epochs: 30
  batch_size: full
  schedule: {cosine: {warmup_epochs: 2, eta_min: 0.0001}}
  early_stopping: {monitor: val_accuracy, patience: 5}
  metrics: [accuracy, balanced_accuracy]
init: {weight: xavier, bias: zeros}
export: {opset: 18}
device: auto
"""


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_every_section_round_trips_through_the_resolved_form(fmt: str) -> None:
    checked = _check(RICH)
    again = _check(dump_resolved(checked.spec, fmt), f"resolved.{fmt}")
    assert again.spec == checked.spec
    assert again.summary == checked.summary


@pytest.mark.parametrize("task", ["classification", "binary"])
def test_one_class_in_the_data_is_an_error_for_classifiers(tmp_path: Path, task: str) -> None:
    (tmp_path / "d.csv").write_text("a,y\n1,x\n2,x\n3,x\n4,x\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"task: {task}\ndata: {{source: csv, path: d.csv, target: y}}\n"
                    "model:\n  - linear: auto\n")
    with pytest.raises(SpecError) as exc:
        load_spec(spec)
    assert [str(i) for i in exc.value.issues] == [
        f"{spec}:1:1: task: 'csv' has one class in its targets, but task {task} needs at "
        "least 2; check the target column, or use task: regression for numeric targets"]


def test_huge_model_warns_when_the_memory_budget_allows(monkeypatch: pytest.MonkeyPatch) -> None:
    # Over the default memory budget it is an error (see test_budget.py); a machine with the
    # memory (SPECNET_MAX_MEMORY_MB raised) still gets the warning.
    monkeypatch.setenv("SPECNET_MAX_MEMORY_MB", str(10**9))
    checked = _check("data: {source: blobs, n_features: 100000}\n"
                     "model: [linear: 100000, linear: auto]\n")
    assert [w.message for w in checked.warnings] == [
        "the model holds 10,000,400,003 parameters (37.3 GiB as float32); check the layer "
        "widths"]
