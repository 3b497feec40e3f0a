"""scikit-learn estimators over specs: SpecClassifier and SpecRegressor.

    clf = SpecClassifier(spec="specs/iris.yaml", training__epochs=50)
    clf.fit(X, y).predict(X)
    GridSearchCV(clf, {"optimizer__lr": [0.001, 0.01], "model__0__units": [16, 64]})

`spec` is a spec file path, a spec dict or a `Spec`; None uses a small MLP. Any other
keyword is a spec path written with `__` (`optimizer__lr`, `model__0__units`,
`training__epochs`, `seed`), so `set_params`, `GridSearchCV`, `cross_val_score` and
`Pipeline` (`net__optimizer__lr`) reach into the spec. The spec's `data:` section only
gives its split and normalisation settings: the rows come from `fit(X, y)`, and the
input width and the `units: auto` output layer adapt to them. X is (n_samples,
n_features); for image models reshape inside the model (`- reshape: [1, 8, 8]`).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .spec.schema import Spec
from .sweep.paths import PathError, expand_node, parse_path, set_path

SpecLike = str | Path | dict[str, Any] | Spec | None

_DEFAULT_MODEL: list[Any] = [{"linear": 64}, "relu", {"linear": 64}, "relu", {"linear": "auto"}]
_DEFAULT_TRAINING: dict[str, Any] = {
    "epochs": 200, "batch_size": 32,
    "early_stopping": {"monitor": "val_loss", "patience": 20, "restore_best": True},
}

EXPECTED_FAILED_CHECKS: dict[str, str] = {}
"""Checks of sklearn's `check_estimator` these estimators are known not to pass, with why
(handed to `check_estimator(..., expected_failed_checks=...)` in the tests)."""


def _spec_data(spec: SpecLike, task: str) -> dict[str, Any]:
    """The spec as plain data the `__` parameters can be set into."""
    if spec is None:
        return {"name": f"sklearn_{task}", "task": task, "data": {"source": "arrays", "shape": [1]},
                "model": copy.deepcopy(_DEFAULT_MODEL), "optimizer": {"type": "adam", "lr": 0.001},
                "training": copy.deepcopy(_DEFAULT_TRAINING)}
    if isinstance(spec, Spec):
        return spec.model_dump(mode="json", exclude_unset=True)
    if isinstance(spec, dict):
        return copy.deepcopy(spec)
    if isinstance(spec, str | Path):
        from .spec.load import load_file

        data = load_file(spec).data
        if "sweep" in data or "extends" in data:
            raise ValueError(f"{spec}: a sweep file; give a plain spec (for example a sweep's "
                             "best.yaml)")
        return dict(data)
    raise TypeError(f"spec must be a path, a dict, a Spec or None, got {type(spec).__name__}")


def _check_key(key: str) -> tuple[str | int, ...]:
    if key == "spec":
        return ("spec",)
    try:
        path = parse_path(key)
    except PathError as exc:
        raise ValueError(str(exc)) from None
    if path[0] not in Spec.model_fields or "." in key or "[" in key:
        fields = ", ".join(sorted(Spec.model_fields))
        raise ValueError(f"invalid parameter {key!r}: give `spec`, or a spec path written with "
                         f"'__' that starts with a spec field ({fields}), e.g. optimizer__lr")
    return path


class _SpecEstimator(BaseEstimator):
    """Shared fit / predict machinery; see the module docstring for the parameters."""

    _task: ClassVar[str] = "classification"

    def __init__(self, spec: SpecLike = None, **params: Any) -> None:
        self.spec = spec
        for key, value in params.items():
            setattr(self, key, value)

    # ------------------------------------------------------------ parameters

    def _path_params(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items()
                if k != "spec" and not k.startswith("_") and not k.endswith("_")}

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """`spec` and every spec path set as a parameter (e.g. optimizer__lr)."""
        return {"spec": self.spec, **self._path_params()}

    def set_params(self, **params: Any) -> _SpecEstimator:
        """Set `spec` or spec paths written with '__' (optimizer__lr, model__0__units).

        Like every scikit-learn estimator, names and values are checked by `fit`.
        """
        for key, value in params.items():
            setattr(self, key, value)
        return self

    # ------------------------------------------------------------ the spec used for fit

    def _resolved(self, X: np.ndarray, n_classes: int, n_targets: int) -> Spec:
        """The spec with the parameters applied and a data section sized for X and y."""
        from .errors import SpecError
        from .spec.validate import check, validate

        data = _spec_data(self.spec, self._task)
        for key, value in sorted(self._path_params().items()):
            try:
                set_path(data, _check_key(key), value)
            except PathError as exc:
                raise ValueError(f"parameter {key!r}: {exc}") from None
        data.setdefault("task", self._task)
        task = data["task"]
        if self._task == "regression" and task != "regression":
            raise ValueError(f"SpecRegressor needs a spec with task: regression, got {task!r}")
        if self._task == "classification" and task == "regression":
            raise ValueError("SpecClassifier needs a classification or binary spec, got task: "
                             "regression (use SpecRegressor)")
        if task == "binary" and n_classes != 2:
            raise ValueError(f"the spec has task: binary but y has {n_classes} classes; use "
                             "task: classification")
        # The rows come from fit(); the data section keeps only its split and scaling
        # settings and becomes an in-memory source of their shape, which sizes the input
        # and `units: auto` (the arrays themselves are passed to train()).
        own = expand_node("data", data.get("data"))
        keep = {k: own[k] for k in ("split", "normalize", "target_normalize")
                if isinstance(own, dict) and k in own}
        sizes = {"n_targets": n_targets} if self._task == "regression" else {
            "n_classes": n_classes}
        data["data"] = {"source": "arrays", "shape": [int(X.shape[1])], **sizes, **keep}
        data["input"] = None
        try:
            return check(validate(data)).spec
        except SpecError as exc:
            raise ValueError("the spec does not fit this data:\n" + str(exc)) from None

    def _fit(self, X: np.ndarray, y: np.ndarray, n_classes: int, n_targets: int) -> None:
        from .data.prepare import prepare_arrays, split_indices
        from .data.sources import Arrays, Split
        from .errors import DataError
        from .trainer import train

        spec = self._resolved(X, n_classes, n_targets)
        regression = spec.task == "regression"
        names = [str(n) for n in getattr(self, "feature_names_in_", [])] or \
            [f"x{i}" for i in range(X.shape[1])]
        labels = None if regression else [str(c) for c in self.classes_]
        arrays = Arrays(X.astype(np.float32), y, names, labels)
        split = spec.data.split
        strat = y if split.stratify and not regression else None
        inner = Split(validation=split.validation, test=0.0, stratify=split.stratify)
        try:
            tr, va, _ = split_indices(len(X), inner, spec.seed, strat)
        except DataError:
            # Too few rows (per class) for a validation split: train on all of them.
            tr, va = np.arange(len(X)), np.arange(0)
        es = spec.training.early_stopping
        if len(va) == 0 and es is not None and es.monitor.startswith("val_"):
            # Nothing to watch: a val_ monitor would stop after `patience` epochs.
            training = spec.training.model_copy(update={"early_stopping": None})
            spec = spec.model_copy(update={"training": training})
        prepared = prepare_arrays(spec.data, arrays, spec.seed, regression, tr, va, None)
        run = train(spec, None, quiet=True, prepared=prepared)
        # Keep the fitted scalers and shapes, not a copy of the training rows.
        for name in ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test"):
            setattr(prepared, name, getattr(prepared, name)[:0])
        self.run_ = run
        self.spec_ = run.spec
        self.history_ = run.history
        self.metrics_ = run.metrics

    def _outputs(self, X: Any) -> np.ndarray:
        from .trainer import predict_torch

        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return predict_torch(self.run_, np.asarray(X, dtype=np.float32))


class SpecClassifier(ClassifierMixin, _SpecEstimator):
    """A classifier trained from a spec (task classification or binary).

    Attributes after fit: classes_, n_features_in_, spec_ (the spec trained, data section
    sized from X), run_ (model, scalers), history_ (per-epoch rows), metrics_.
    """

    _task = "classification"

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags

    def fit(self, X: Any, y: Any) -> SpecClassifier:
        """Train on X (n_samples, n_features) and class labels y (n_samples,)."""
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
        check_classification_targets(y)
        self.classes_, y_index = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"y has 1 class ({self.classes_[0]!r}); a classifier needs at "
                             "least 2 classes")
        self._fit(X, y_index.astype(np.int64), len(self.classes_), 1)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (n_samples, n_classes), columns in the order of classes_."""
        out = self._outputs(X).astype(np.float64)
        if out.ndim == 1:  # binary task: P(class 1)
            out = np.column_stack([1.0 - out, out])
        return out

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row (n_samples,), as the labels given to fit."""
        proba = self.predict_proba(X)
        return np.asarray(self.classes_[np.argmax(proba, axis=1)])


class SpecRegressor(RegressorMixin, _SpecEstimator):
    """A regressor trained from a spec (task regression); y may have several targets.

    Attributes after fit: n_features_in_, spec_, run_, history_, metrics_.
    """

    _task = "regression"

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.target_tags.multi_output = True
        return tags

    def fit(self, X: Any, y: Any) -> SpecRegressor:
        """Train on X (n_samples, n_features) and y (n_samples,) or (n_samples, targets)."""
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32], y_numeric=True,
                             multi_output=True)
        y = np.asarray(y, dtype=np.float64)
        self._y_1d = y.ndim == 1
        y2 = y.reshape(len(y), -1).astype(np.float32)
        self._fit(X, y2, 0, y2.shape[1])
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predictions (n_samples,) or (n_samples, targets), like the y given to fit."""
        out = self._outputs(X).astype(np.float64)
        return out.reshape(len(out)) if self._y_1d else out
