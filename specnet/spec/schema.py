"""The spec language as pydantic models: every field typed, defaulted and described."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ..data.sources import SOURCES, AnySource
from ..layers import LAYERS, AnyLayer, expand_layer
from .base import BiasInit, InitName, Strict, Tagged, did_you_mean, expand_shorthand

Task = Literal["classification", "binary", "regression"]

# ---------------------------------------------------------------- losses


class Loss(Tagged):
    """Base of the losses; `type` picks one."""

    kind = "loss"
    type: str
    """Loss name, one of LOSSES."""


class MSE(Loss):
    """Mean squared error (regression)."""

    type: Literal["mse"] = "mse"


class MAE(Loss):
    """Mean absolute error, L1 (regression)."""

    type: Literal["mae"] = "mae"


class Huber(Loss):
    """Squared error near zero, absolute error beyond `delta` (regression)."""

    type: Literal["huber"] = "huber"
    primary = "delta"
    delta: float = Field(1.0, gt=0)
    """Where the loss turns from quadratic to linear."""


class CrossEntropy(Loss):
    """Softmax cross-entropy on logits (multi-class classification)."""

    type: Literal["cross_entropy"] = "cross_entropy"
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    """Mass moved from the true class to all classes evenly."""
    class_weights: Literal["balanced"] | list[Annotated[float, Field(gt=0)]] | None = None
    """Per-class weights, or 'balanced' (inverse class frequency on the training split)."""


class NLL(Loss):
    """Negative log-likelihood on log-probabilities (after a `log_softmax` layer)."""

    type: Literal["nll"] = "nll"
    class_weights: Literal["balanced"] | list[Annotated[float, Field(gt=0)]] | None = None
    """Per-class weights, or 'balanced' (inverse class frequency on the training split)."""


class BCE(Loss):
    """Binary cross-entropy on one logit (binary classification)."""

    type: Literal["bce"] = "bce"
    pos_weight: float | Literal["balanced"] | None = None
    """Weight of positive examples, or 'balanced' (negatives / positives)."""


class Hinge(Loss):
    """Hinge loss: binary on one output with ±1 targets, or multi-class margin."""

    type: Literal["hinge"] = "hinge"
    primary = "margin"
    margin: float = Field(1.0, gt=0)
    """Required margin between the true class score and the others."""


LOSS_CLASSES: tuple[type[Loss], ...] = (MSE, MAE, Huber, CrossEntropy, NLL, BCE, Hinge)
LOSSES: dict[str, type[Loss]] = {c.model_fields["type"].default: c for c in LOSS_CLASSES}
"""Closed registry of losses."""
REGRESSION_LOSSES = ("mse", "mae", "huber")

# ---------------------------------------------------------------- optimizers


class Optimizer(Tagged):
    """Base of the optimizers; `type` picks one."""

    kind = "optimizer"
    type: str
    """Optimizer name, one of OPTIMIZERS."""
    lr: float = Field(0.001, gt=0, le=10)
    """Learning rate."""
    weight_decay: float = Field(0.0, ge=0)
    """Decay applied by the optimizer itself (see regularization.l2 for the penalty)."""


class SGD(Optimizer):
    """Plain stochastic gradient descent."""

    type: Literal["sgd"] = "sgd"
    lr: float = Field(0.01, gt=0, le=10)
    """Learning rate."""


class Momentum(Optimizer):
    """SGD with (heavy-ball) momentum."""

    type: Literal["momentum"] = "momentum"
    lr: float = Field(0.01, gt=0, le=10)
    """Learning rate."""
    momentum: float = Field(0.9, ge=0, lt=1)
    """Momentum factor."""
    dampening: float = Field(0.0, ge=0, le=1)
    """Dampening for momentum."""


class Nesterov(Optimizer):
    """SGD with Nesterov momentum."""

    type: Literal["nesterov"] = "nesterov"
    lr: float = Field(0.01, gt=0, le=10)
    """Learning rate."""
    momentum: float = Field(0.9, gt=0, lt=1)
    """Momentum factor."""


class RMSprop(Optimizer):
    """Divides the gradient by a running average of its squared magnitude."""

    type: Literal["rmsprop"] = "rmsprop"
    alpha: float = Field(0.99, gt=0, lt=1)
    """Smoothing constant of the squared-gradient average."""
    eps: float = Field(1e-8, gt=0)
    """Added to the denominator for stability."""
    momentum: float = Field(0.0, ge=0, lt=1)
    """Momentum factor."""
    centered: bool = False
    """Normalise by the estimated variance of the gradient."""


class Adam(Optimizer):
    """Adaptive moment estimation."""

    type: Literal["adam"] = "adam"
    betas: tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]] = (
        0.9, 0.999)
    """Decay rates of the first and second moment estimates."""
    eps: float = Field(1e-8, gt=0)
    """Added to the denominator for stability."""
    amsgrad: bool = False
    """Use the AMSGrad variant."""


class AdamW(Adam):
    """Adam with decoupled weight decay."""

    type: Literal["adamw"] = "adamw"  # type: ignore[assignment]
    weight_decay: float = Field(0.01, ge=0)
    """Decoupled weight decay."""


class Adagrad(Optimizer):
    """Per-parameter learning rates scaled by accumulated squared gradients."""

    type: Literal["adagrad"] = "adagrad"
    lr: float = Field(0.01, gt=0, le=10)
    """Learning rate."""
    lr_decay: float = Field(0.0, ge=0)
    """Learning-rate decay."""
    eps: float = Field(1e-10, gt=0)
    """Added to the denominator for stability."""


OPTIMIZER_CLASSES: tuple[type[Optimizer], ...] = (
    SGD, Momentum, Nesterov, RMSprop, Adam, AdamW, Adagrad)
OPTIMIZERS: dict[str, type[Optimizer]] = {
    c.model_fields["type"].default: c for c in OPTIMIZER_CLASSES}
"""Closed registry of optimizers."""

# ---------------------------------------------------------------- schedules


class Schedule(Tagged):
    """Base of the learning-rate schedules (stepped once per epoch)."""

    kind = "schedule"
    type: str
    """Schedule name, one of SCHEDULES."""
    warmup_epochs: int = Field(0, ge=0)
    """Linear warm-up from lr/ (warmup_epochs+1) to lr over this many epochs first."""


class Constant(Schedule):
    """Keep the learning rate (after any warm-up)."""

    type: Literal["constant"] = "constant"


class StepLR(Schedule):
    """Multiply the learning rate by `gamma` every `step_size` epochs."""

    type: Literal["step"] = "step"
    primary = "step_size"
    step_size: int = Field(30, ge=1)
    """Epochs between decays."""
    gamma: float = Field(0.1, gt=0, le=1)
    """Decay factor."""


class ExponentialLR(Schedule):
    """Multiply the learning rate by `gamma` every epoch."""

    type: Literal["exponential"] = "exponential"
    primary = "gamma"
    gamma: float = Field(0.95, gt=0, le=1)
    """Decay factor per epoch."""


class CosineLR(Schedule):
    """Cosine annealing from lr to `eta_min` over `t_max` epochs."""

    type: Literal["cosine"] = "cosine"
    t_max: int | None = Field(None, ge=1)
    """Length of the cosine in epochs (default: training.epochs - warmup_epochs)."""
    eta_min: float = Field(0.0, ge=0)
    """Final learning rate."""


class PlateauLR(Schedule):
    """Multiply the learning rate by `factor` when the monitored value stops improving."""

    type: Literal["plateau"] = "plateau"
    monitor: str = "val_loss"
    """History column to watch."""
    factor: float = Field(0.1, gt=0, lt=1)
    """Decay factor."""
    patience: int = Field(10, ge=0)
    """Epochs without improvement before decaying."""
    min_lr: float = Field(0.0, ge=0)
    """Lower bound on the learning rate."""


SCHEDULE_CLASSES: tuple[type[Schedule], ...] = (
    Constant, StepLR, ExponentialLR, CosineLR, PlateauLR)
SCHEDULES: dict[str, type[Schedule]] = {
    c.model_fields["type"].default: c for c in SCHEDULE_CLASSES}
"""Closed registry of learning-rate schedules."""

METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "precision_macro", "recall_macro",
           "roc_auc", "mse", "mae", "rmse", "r2")
"""Closed registry of metric names (computed with sklearn.metrics)."""
CLASSIFICATION_METRICS = METRICS[:6]
REGRESSION_METRICS = METRICS[6:]
DEFAULT_LOSS = {"classification": "cross_entropy", "binary": "bce", "regression": "mse"}
"""The loss a task uses when the spec names none."""
DEFAULT_METRICS = {"classification": ("accuracy", "f1_macro"),
                   "binary": ("accuracy", "f1_macro", "roc_auc"),
                   "regression": ("mse", "mae", "r2")}
"""The metrics a task reports when the spec lists none."""


def _known_metric(name: str) -> str:
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}{did_you_mean(name, METRICS)}; "
                         f"choose from {', '.join(METRICS)}")
    return name


MetricName = Annotated[str, AfterValidator(_known_metric)]

if TYPE_CHECKING:
    AnyLoss = Loss
    AnyOptimizer = Optimizer
    AnySchedule = Schedule
else:
    AnyLoss = Annotated[Union[LOSS_CLASSES], Field(discriminator="type")]  # noqa: UP007
    AnyOptimizer = Annotated[Union[OPTIMIZER_CLASSES], Field(discriminator="type")]  # noqa: UP007
    AnySchedule = Annotated[Union[SCHEDULE_CLASSES], Field(discriminator="type")]  # noqa: UP007

# ---------------------------------------------------------------- sections


class GradClip(Strict):
    """Gradient clipping, applied after backward and before the optimizer step."""

    norm: float | None = Field(None, gt=0)
    """Clip the global L2 norm of all gradients to this value."""
    value: float | None = Field(None, gt=0)
    """Clip each gradient element to [-value, value]."""

    @model_validator(mode="after")
    def _one(self) -> GradClip:
        if self.norm is not None and self.value is not None:
            raise ValueError("give either `norm` or `value`, not both")
        return self


class Regularization(Strict):
    """Penalties added to the loss and gradient clipping (dropout and batchnorm are layers)."""

    l1: float = Field(0.0, ge=0)
    """Coefficient of the L1 penalty sum(|w|) over weights (not biases or norm scales)."""
    l2: float = Field(0.0, ge=0)
    """Coefficient of the explicit L2 penalty sum(w**2) over weights (not biases)."""
    grad_clip: GradClip | None = None
    """Gradient clipping by norm or value."""


class EarlyStopping(Strict):
    """Stop when the monitored value has not improved for `patience` epochs."""

    monitor: str = "val_loss"
    """History column to watch: val_loss, or val_<metric> for a listed metric."""
    mode: Literal["auto", "min", "max"] = "auto"
    """Whether smaller or larger is better; auto: min for losses and errors, else max."""
    patience: int = Field(20, ge=1)
    """Epochs without improvement before stopping."""
    min_delta: float = Field(0.0, ge=0)
    """Smallest change that counts as an improvement."""
    restore_best: bool = True
    """Put back the best weights at the end (also when training runs to max epochs)."""


class LocalSGD(Strict):
    """Data-parallel training by periodic model averaging (local SGD) instead of a gradient
    all-reduce every step; see docs/scale.md."""

    average_every: int = Field(..., ge=2, le=1_000_000)
    """Optimizer steps between parameter averages over ranks (and at every epoch's end).

    At least 2: averaging after every step costs more than all-reducing gradients."""


class Training(Strict):
    """The training loop settings."""

    epochs: int = Field(100, ge=1, le=100_000)
    """Maximum number of passes over the training split."""
    batch_size: Annotated[int, Field(ge=1)] | Literal["full"] = 32
    """Rows per optimizer step; 'full' uses the whole training split (batch GD)."""
    accumulate: int = Field(1, ge=1, le=65_536)
    """Split each optimizer step's rows into this many micro-batches and add up their
    gradients (one gradient all-reduce per step under --nproc); 1: no accumulation."""
    shuffle: bool = True
    """Reshuffle the training split every epoch (from the seeded generator)."""
    schedule: AnySchedule | None = None
    """Learning-rate schedule, stepped once per epoch."""
    early_stopping: EarlyStopping | None = None
    """Early stopping; unset trains for all epochs."""
    metrics: list[MetricName] = Field(default_factory=list)
    """Metrics reported every epoch and at the end (default: chosen from the task)."""
    checkpoint_every: int = Field(1, ge=1)
    """Write a resumable checkpoint every this many epochs."""
    threads: Annotated[int, Field(ge=1, le=1024)] | Literal["auto"] = "auto"
    """CPU threads torch trains with; auto: one for small work per batch, more for large
    convolutions and batches, never more than the cores available (see docs/scale.md)."""
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    """Arithmetic of forward and loss: fp32, or mixed precision bf16 (CPU or GPU) / fp16
    (GPU only, with loss scaling). Weights, optimizer and evaluation stay fp32."""
    local_sgd: LocalSGD | None = None
    """Under --nproc: average parameters every `average_every` steps instead of all-reducing
    gradients every step (a different algorithm); unset: gradients every step."""

    @field_validator("accumulate")
    @classmethod
    def _accumulate_fits(cls, v: int, info: ValidationInfo) -> int:
        batch = info.data.get("batch_size")
        if isinstance(batch, int) and v > batch:
            raise ValueError(
                f"{v} micro-batches per step do not fit batch_size {batch} (at least one row "
                f"each): use accumulate <= {batch}, or raise batch_size to {v} or more")
        return v

    @field_validator("schedule", mode="before")
    @classmethod
    def _expand_schedule(cls, v: Any) -> Any:
        return expand_shorthand(v, "type", SCHEDULES)  # type: ignore[arg-type]


class Export(Strict):
    """ONNX export and verification settings."""

    opset: int = Field(20, ge=17, le=23)
    """ONNX opset version."""
    rtol: float = Field(1e-4, gt=0)
    """Relative tolerance of the onnxruntime-vs-torch check."""
    atol: float = Field(1e-5, gt=0)
    """Absolute tolerance of the onnxruntime-vs-torch check."""


class Init(Strict):
    """Global weight initialisation, overridden per layer by `init` / `bias_init`."""

    weight: InitName = "default"
    """Weights: default (torch's), xavier, kaiming, orthogonal, normal, zeros."""
    bias: BiasInit = "default"
    """Biases: default (torch's) or zeros."""


class Spec(Strict):
    """A complete network spec: data, model, loss, optimizer, training and export."""

    name: str = Field("model", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    """Model name: the artifact folder exports/<name>/ and the served model's name."""
    seed: int = Field(0, ge=0, le=2**32 - 1)
    """One seed for Python, NumPy, torch and the data splits."""
    task: Task = "classification"
    """classification (n classes, softmax), binary (one logit), or regression."""
    input: list[Annotated[int, Field(ge=1)]] | None = Field(None, min_length=1, max_length=3)
    """Input shape without the batch axis; default: from the data source."""
    data: AnySource
    """Where the data comes from and how it is split and scaled."""
    model: list[AnyLayer] = Field(..., min_length=1)
    """Layers in order; compiles to torch.nn.Sequential."""
    loss: AnyLoss | None = None
    """Loss; default from the task: cross_entropy, bce or mse (filled in on validation)."""
    optimizer: AnyOptimizer = Field(default_factory=lambda: Adam())
    """Optimizer and its arguments."""
    regularization: Regularization = Field(default_factory=Regularization)
    """L1 / L2 penalties and gradient clipping."""
    training: Training = Field(default_factory=Training)
    """The training loop."""
    export: Export = Field(default_factory=Export)
    """ONNX export and verification."""
    init: Init = Field(default_factory=Init)
    """Global weight initialisation."""
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    """Where to train: cpu, cuda, or auto (cuda when available)."""

    @model_validator(mode="before")
    @classmethod
    def _task_defaults(cls, data: Any) -> Any:
        # Fill the task's default loss and metrics now, so a spec and its resolved form
        # (`specnet show --resolved`) validate to equal Specs.
        task = data.get("task", "classification") if isinstance(data, dict) else None
        if not isinstance(task, str) or task not in DEFAULT_LOSS:
            return data  # not a mapping, or a bad task: validation reports it
        out = dict(data)
        if out.get("loss") is None:
            out["loss"] = DEFAULT_LOSS[task]
        training = out.get("training", {})
        if isinstance(training, dict) and training.get("metrics", []) == []:
            out["training"] = {**training, "metrics": list(DEFAULT_METRICS[task])}
        return out

    @field_validator("data", mode="before")
    @classmethod
    def _expand_data(cls, v: Any) -> Any:
        return expand_shorthand(v, "source", SOURCES)  # type: ignore[arg-type]

    @field_validator("model", mode="before")
    @classmethod
    def _expand_model(cls, v: Any) -> Any:
        return [expand_layer(x) for x in v] if isinstance(v, list) else v

    @field_validator("loss", mode="before")
    @classmethod
    def _expand_loss(cls, v: Any) -> Any:
        return expand_shorthand(v, "type", LOSSES)  # type: ignore[arg-type]

    @field_validator("optimizer", mode="before")
    @classmethod
    def _expand_optimizer(cls, v: Any) -> Any:
        return expand_shorthand(v, "type", OPTIMIZERS)  # type: ignore[arg-type]

    @property
    def loss_name(self) -> str:
        """The loss in use, defaulted from the task."""
        return self.loss.type if self.loss is not None else DEFAULT_LOSS[self.task]

    @property
    def metric_names(self) -> list[str]:
        """The metrics in use, defaulted from the task."""
        return list(self.training.metrics or DEFAULT_METRICS[self.task])


REGISTRIES: dict[str, dict[str, Any]] = {
    "layer": LAYERS, "loss": LOSSES, "optimizer": OPTIMIZERS, "schedule": SCHEDULES,
    "source": SOURCES,
}
