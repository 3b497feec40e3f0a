"""Data sources: the `data:` section of a spec, one model per source.

`info()` tells shapes and class counts without loading anything heavy (no torch, no
sklearn), so `specnet validate` stays fast. `load(seed)` returns the arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Union

from pydantic import Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from ..spec.base import Shape, Strict, Tagged
from .columns import ColumnSpec

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class SourceInfo:
    """What a source tells before loading: input shape, kind of target, classes."""

    input_shape: Shape
    kind: Literal["classification", "regression", "any"]
    """What the targets are; "any": whole numbers, classes or values as the task says."""
    n_classes: int | None = None
    n_targets: int = 1
    feature_names: tuple[str, ...] = ()


@dataclass
class Arrays:
    """A loaded data set. X: (n, *input_shape) float32. y: (n,) int64 class indices
    for classification, (n, targets) float32 for regression.

    extra["target_values"]: (n, targets) float32, set when whole-number targets were
    loaded as classes (SourceInfo.kind "any"); `prepare.for_task` trains regression on it.
    """

    X: np.ndarray
    y: np.ndarray
    feature_names: list[str]
    class_labels: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Split(Strict):
    """How the data is divided into train / validation / test, before any fitting."""

    validation: float = Field(0.2, ge=0, lt=1)
    """Fraction held out for validation (early stopping, model choice)."""
    test: float = Field(0.2, ge=0, lt=1)
    """Fraction held out for the final test metrics."""
    stratify: bool = True
    """Keep class proportions in every split (classification only)."""

    @model_validator(mode="after")
    def _room_left(self) -> Split:
        if self.validation + self.test >= 0.9:
            raise ValueError(f"validation + test = {self.validation + self.test:g} leaves "
                             "too little to train on; keep it below 0.9")
        return self


class DataSource(Tagged):
    """Fields every source has: the split and the input preprocessing."""

    source: str
    split: Split = Field(default_factory=Split)
    """Train / validation / test fractions."""
    normalize: Literal["none", "standard", "minmax"] = "standard"
    """Input scaling, fitted on the training split only and stored in the model."""
    target_normalize: Literal["auto", "none", "standard"] = "auto"
    """Standardise regression targets for training; predictions are scaled back.
    auto: standard for regression (raw targets in the hundreds of thousands train badly)."""

    def info(self) -> SourceInfo:
        """Shapes and class counts, without loading the data."""
        raise NotImplementedError

    def given_paths(self) -> dict[str, str]:
        """File fields as written in the spec (before resolving against its folder)."""
        return {}

    def load(self, seed: int) -> Arrays:
        """The whole data set as arrays (split later)."""
        raise NotImplementedError


def _sk_arrays(X: Any, y: Any, names: list[str] | None = None,
               labels: list[str] | None = None, regression: bool = False,
               n_classes: int | None = None) -> Arrays:
    import numpy as np

    X = np.asarray(X, dtype=np.float32)
    if regression:
        y = np.asarray(y, dtype=np.float32).reshape(len(y), -1)
    else:
        y = np.asarray(y, dtype=np.int64)
        # The declared class count, not the labels seen: a small sample may miss a class.
        count = n_classes if n_classes is not None else int(y.max()) + 1
        labels = labels or [str(c) for c in range(count)]
    names = names or [f"x{i}" for i in range(X.shape[1])]
    return Arrays(X, y, list(names), labels)


# ---------------------------------------------------------------- generators


class Xor(DataSource):
    """The XOR problem: corners of the unit square with Gaussian noise; label = x0 xor x1."""

    source: Literal["xor"] = "xor"
    n_samples: int = Field(400, ge=8)
    """Number of points (spread evenly over the four corners)."""
    noise: float = Field(0.1, ge=0)
    """Standard deviation of the Gaussian noise added to each corner."""

    def info(self) -> SourceInfo:
        return SourceInfo((2,), "classification", 2, feature_names=("x0", "x1"))

    def load(self, seed: int) -> Arrays:
        import numpy as np

        rng = np.random.default_rng(seed)
        corners = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
        idx = np.arange(self.n_samples) % 4
        X = corners[idx] + rng.normal(0, self.noise, (self.n_samples, 2)).astype(np.float32)
        y = (corners[idx, 0] != corners[idx, 1]).astype(np.int64)
        return _sk_arrays(X, y, ["x0", "x1"], ["0", "1"])


class Moons(DataSource):
    """Two interleaving half circles (sklearn make_moons)."""

    source: Literal["moons"] = "moons"
    n_samples: int = Field(1000, ge=10)
    """Number of points."""
    noise: float = Field(0.2, ge=0)
    """Standard deviation of Gaussian noise."""

    def info(self) -> SourceInfo:
        return SourceInfo((2,), "classification", 2, feature_names=("x0", "x1"))

    def load(self, seed: int) -> Arrays:
        from sklearn.datasets import make_moons

        X, y = make_moons(self.n_samples, noise=self.noise, random_state=seed)
        return _sk_arrays(X, y)


class Circles(DataSource):
    """A small circle inside a large one (sklearn make_circles)."""

    source: Literal["circles"] = "circles"
    n_samples: int = Field(1000, ge=10)
    """Number of points."""
    noise: float = Field(0.1, ge=0)
    """Standard deviation of Gaussian noise."""
    factor: float = Field(0.5, gt=0, lt=1)
    """Radius of the inner circle relative to the outer one."""

    def info(self) -> SourceInfo:
        return SourceInfo((2,), "classification", 2, feature_names=("x0", "x1"))

    def load(self, seed: int) -> Arrays:
        from sklearn.datasets import make_circles

        X, y = make_circles(self.n_samples, noise=self.noise, factor=self.factor,
                            random_state=seed)
        return _sk_arrays(X, y)


class Blobs(DataSource):
    """Isotropic Gaussian blobs (sklearn make_blobs)."""

    source: Literal["blobs"] = "blobs"
    n_samples: int = Field(1000, ge=10)
    """Number of points."""
    n_features: int = Field(2, ge=1)
    """Input width."""
    centers: int = Field(3, ge=2)
    """Number of blobs (classes)."""
    cluster_std: float = Field(1.0, gt=0)
    """Standard deviation of each blob."""

    def info(self) -> SourceInfo:
        return SourceInfo((self.n_features,), "classification", self.centers)

    def load(self, seed: int) -> Arrays:
        from sklearn.datasets import make_blobs

        X, y = make_blobs(self.n_samples, n_features=self.n_features, centers=self.centers,
                          cluster_std=self.cluster_std, random_state=seed)
        return _sk_arrays(X, y, n_classes=self.centers)


class Classification(DataSource):
    """A random n-class problem (sklearn make_classification)."""

    source: Literal["classification"] = "classification"
    n_samples: int = Field(1000, ge=10)
    """Number of points."""
    n_features: int = Field(20, ge=1)
    """Input width."""
    n_informative: int = Field(10, ge=1)
    """Features that carry the signal."""
    n_redundant: int = Field(2, ge=0)
    """Linear combinations of the informative features."""
    n_classes: int = Field(2, ge=2)
    """Number of classes."""
    n_clusters_per_class: int = Field(2, ge=1)
    """Gaussian clusters per class."""
    class_sep: float = Field(1.0, gt=0)
    """Larger values make the problem easier."""
    flip_y: float = Field(0.01, ge=0, le=1)
    """Fraction of labels flipped at random (label noise)."""

    @model_validator(mode="after")
    def _sklearn_rules(self) -> Classification:
        if self.n_informative + self.n_redundant > self.n_features:
            raise ValueError(f"n_informative ({self.n_informative}) + n_redundant "
                             f"({self.n_redundant}) must be at most n_features "
                             f"({self.n_features})")
        # bit_length, not 2**n_informative: a huge n_informative must not hang validation
        if (self.n_classes * self.n_clusters_per_class - 1).bit_length() > self.n_informative:
            raise ValueError(f"n_classes * n_clusters_per_class "
                             f"({self.n_classes * self.n_clusters_per_class}) must be at most "
                             f"2**n_informative ({2**self.n_informative})")
        return self

    def info(self) -> SourceInfo:
        return SourceInfo((self.n_features,), "classification", self.n_classes)

    def load(self, seed: int) -> Arrays:
        from sklearn.datasets import make_classification

        X, y = make_classification(
            self.n_samples, n_features=self.n_features, n_informative=self.n_informative,
            n_redundant=self.n_redundant, n_classes=self.n_classes,
            n_clusters_per_class=self.n_clusters_per_class, class_sep=self.class_sep,
            flip_y=self.flip_y, random_state=seed)
        return _sk_arrays(X, y, n_classes=self.n_classes)


class Regression(DataSource):
    """A random linear regression problem (sklearn make_regression)."""

    source: Literal["regression"] = "regression"
    n_samples: int = Field(1000, ge=10)
    """Number of points."""
    n_features: int = Field(10, ge=1)
    """Input width."""
    n_informative: int = Field(10, ge=1)
    """Features that carry the signal (at most n_features)."""
    n_targets: int = Field(1, ge=1)
    """Output width."""
    noise: float = Field(0.1, ge=0)
    """Standard deviation of the noise on the targets."""

    @model_validator(mode="after")
    def _fits(self) -> Regression:
        if self.n_informative > self.n_features:
            raise ValueError(f"n_informative ({self.n_informative}) must be at most "
                             f"n_features ({self.n_features})")
        return self

    def info(self) -> SourceInfo:
        return SourceInfo((self.n_features,), "regression", n_targets=self.n_targets)

    def load(self, seed: int) -> Arrays:
        from sklearn.datasets import make_regression

        X, y = make_regression(self.n_samples, n_features=self.n_features,
                               n_informative=self.n_informative, n_targets=self.n_targets,
                               noise=self.noise, random_state=seed)
        return _sk_arrays(X, y, regression=True)


# ---------------------------------------------------------------- bundled sets


class _Bundled(DataSource):
    loader: ClassVar[str] = ""
    shape: ClassVar[Shape] = ()
    kind: ClassVar[Literal["classification", "regression"]] = "classification"
    n_classes: ClassVar[int | None] = None

    def info(self) -> SourceInfo:
        return SourceInfo(self.shape, self.kind, self.n_classes)

    def load(self, seed: int) -> Arrays:
        import sklearn.datasets

        bunch = getattr(sklearn.datasets, self.loader)()
        names = [str(n) for n in getattr(bunch, "feature_names", [])] or None
        labels = [str(n) for n in bunch.target_names] if self.kind == "classification" else None
        return _sk_arrays(bunch.data, bunch.target, names, labels,
                          regression=self.kind == "regression")


class Iris(_Bundled):
    """Fisher's iris: 150 flowers, 4 measurements, 3 species."""

    source: Literal["iris"] = "iris"
    loader, shape, n_classes = "load_iris", (4,), 3


class Wine(_Bundled):
    """Wine recognition: 178 wines, 13 chemical measurements, 3 cultivars."""

    source: Literal["wine"] = "wine"
    loader, shape, n_classes = "load_wine", (13,), 3


class BreastCancer(_Bundled):
    """Wisconsin breast cancer: 569 samples, 30 features, malignant or benign."""

    source: Literal["breast_cancer"] = "breast_cancer"
    loader, shape, n_classes = "load_breast_cancer", (30,), 2


class Diabetes(_Bundled):
    """Diabetes progression: 442 patients, 10 features, one continuous target."""

    source: Literal["diabetes"] = "diabetes"
    loader, shape, kind = "load_diabetes", (10,), "regression"


class Digits(_Bundled):
    """Handwritten digits: 1,797 8x8 images, 10 classes; flat (64) or as [1, 8, 8]."""

    source: Literal["digits"] = "digits"
    loader, n_classes = "load_digits", 10
    as_image: bool = False
    """Give each sample as a [1, 8, 8] image (for conv layers) instead of 64 features."""

    def info(self) -> SourceInfo:
        return SourceInfo((1, 8, 8) if self.as_image else (64,), "classification", 10)

    def load(self, seed: int) -> Arrays:
        arrays = super().load(seed)
        if self.as_image:
            arrays.X = arrays.X.reshape(-1, 1, 8, 8)
        return arrays


# ---------------------------------------------------------------- files


class _FileSource(DataSource):
    _given: dict[str, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_given_paths(cls, data: Any, handler: Any) -> Any:
        # Keep the paths as written (relative to the spec) beside the resolved ones, so the
        # spec's hash and a model's metadata do not depend on where the spec lies.
        model = handler(data)
        if isinstance(data, dict):
            model._given = {k: str(v) for k, v in data.items()
                            if isinstance(v, str | Path) and cls.model_fields.get(k) is not None
                            and cls.model_fields[k].annotation in (Path, Path | None)}
        return model

    def given_paths(self) -> dict[str, str]:
        return dict(self._given)

    def __eq__(self, other: object) -> bool:
        # The same files and settings are the same source, however the paths were written.
        return type(other) is type(self) and self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]  # mutable, like every pydantic model

    @field_validator("*", mode="after")
    @classmethod
    def _resolve_paths(cls, v: Any, info: ValidationInfo) -> Any:
        # Paths in a spec are relative to the spec file, not to the working directory.
        if isinstance(v, Path) and not v.is_absolute() and info.context:
            base = info.context.get("base_dir")
            if base is not None:
                return Path(base) / v
        return v


class _Tabular(_FileSource):
    """Fields of tabular files (CSV, Parquet): the target, the columns and how they encode."""

    path: Path
    """Data file, relative to the spec file."""
    target: str
    """Name of the target column."""
    features: list[str] | None = None
    """Feature columns to use (default: every column but the target, ids and ignored ones)."""
    columns: dict[str, ColumnSpec] = Field(default_factory=dict)
    """Per-column type, role and encoding, overriding what is inferred from the file:
    `{customer_id: id, zip: categorical, notes: ignore, income: {impute: mean}}`."""
    impute: Literal["median", "mean", "constant"] = "median"
    """Missing numbers: the training split's median or mean, or `fill_value`."""
    fill_value: float = 0.0
    """The constant for `impute: constant`."""
    missing_indicator: bool = False
    """Add a 0/1 feature `<name>_missing` for every numeric / boolean feature."""
    max_categories: int = Field(20, ge=1)
    """Categories with a one-hot column of their own per column; rarer ones -> <other>."""

    def info(self) -> SourceInfo:
        from .tabular import info

        return info(self)  # type: ignore[arg-type]

    def load(self, seed: int) -> Arrays:
        from .tabular import load

        return load(self)  # type: ignore[arg-type]


class Csv(_Tabular):
    """A CSV file with a header row; one column is the target."""

    source: Literal["csv"] = "csv"
    path: Path
    """CSV file, relative to the spec file."""
    delimiter: str = Field(",", min_length=1, max_length=1)
    """Field separator."""


class Parquet(_Tabular):
    """A Parquet file (read with pyarrow); one column is the target."""

    source: Literal["parquet"] = "parquet"
    path: Path
    """Parquet file, relative to the spec file."""
    stream: bool = False
    """Read row groups while training instead of loading the file (numeric and boolean
    feature columns without blanks only; see docs/scale.md)."""
    stream_groups: int = Field(4, ge=1)
    """With `stream`: row groups shuffled together (and held in memory) at a time; each
    epoch visits the groups in a seeded order and shuffles the rows within them."""

    def info(self) -> SourceInfo:
        if self.stream:
            from .stream import parquet_info

            return parquet_info(self)
        return super().info()


class Npz(_FileSource):
    """A NumPy .npz archive with a feature array and a target array (no pickles)."""

    source: Literal["npz"] = "npz"
    path: Path
    """.npz file, relative to the spec file."""
    x_key: str = "X"
    """Name of the feature array, shape (n, ...)."""
    y_key: str = "y"
    """Name of the target array, shape (n,) or (n, targets)."""
    task_hint: Literal["auto", "classification", "regression"] = "auto"
    """Treat the targets as classes or values; auto: integers are classes."""

    def info(self) -> SourceInfo:
        from .files import npz_info

        return npz_info(self)

    def load(self, seed: int) -> Arrays:
        from .files import npz_load

        return npz_load(self)


class Npy(_FileSource):
    """NumPy .npy arrays: features and target in one (n, columns) array, or a feature file
    and a target file. Read whole, or memory-mapped batch by batch with `stream: true`."""

    source: Literal["npy"] = "npy"
    path: Path
    """.npy file of features (n, ...), or of features and target (n, columns) together."""
    y_path: Path | None = None
    """.npy file of targets (n,) or (n, targets); leave out to take the target from a
    column of `path` (`target_column`)."""
    target_column: int | None = None
    """The column of `path` (n, columns) that holds the target; -1 is the last (the
    default when `y_path` is not set)."""
    task_hint: Literal["auto", "classification", "regression"] = "auto"
    """Treat the targets as classes or values; auto: integers are classes."""
    stream: bool = False
    """Memory-map the file and gather each batch's rows from it instead of loading it
    (see docs/scale.md)."""

    @model_validator(mode="after")
    def _one_target(self) -> Npy:
        if self.y_path is not None and self.target_column is not None:
            raise ValueError("give either y_path (targets in a file of their own) or "
                             "target_column (the target is a column of `path`), not both")
        return self

    def info(self) -> SourceInfo:
        from .npy import npy_info

        return npy_info(self)

    def load(self, seed: int) -> Arrays:
        from .npy import npy_load

        return npy_load(self)


class MnistIdx(_FileSource):
    """MNIST-style IDX files (raw or .gz): an image file and a label file."""

    source: Literal["mnist_idx"] = "mnist_idx"
    images: Path
    """IDX3 image file (e.g. train-images-idx3-ubyte.gz), relative to the spec file."""
    labels: Path
    """IDX1 label file, relative to the spec file."""
    as_image: bool = False
    """Give each sample as [1, H, W] (for conv layers) instead of H*W features."""
    limit: int | None = Field(None, ge=1)
    """Use only the first `limit` samples."""

    def info(self) -> SourceInfo:
        from .files import idx_info

        return idx_info(self)

    def load(self, seed: int) -> Arrays:
        from .files import idx_load

        return idx_load(self)


class InMemory(DataSource):
    """Arrays handed over in Python (`SpecClassifier.fit(X, y)`, `train(spec, prepared=...)`):
    the spec only says their shape; there is nothing to load from the spec itself."""

    source: Literal["arrays"] = "arrays"
    shape: list[Annotated[int, Field(ge=1)]] = Field(..., min_length=1, max_length=3)
    """Shape of one sample (no batch axis), e.g. [20]."""
    n_classes: int | None = Field(None, ge=2)
    """Number of classes (classification); unset means regression targets."""
    n_targets: int = Field(1, ge=1)
    """Width of the regression targets."""

    def info(self) -> SourceInfo:
        kind: Literal["classification", "regression"] = (
            "regression" if self.n_classes is None else "classification")
        return SourceInfo(tuple(self.shape), kind, self.n_classes, self.n_targets)

    def load(self, seed: int) -> Arrays:
        from ..errors import DataError

        raise DataError("data source 'arrays' holds no data of its own: pass the arrays in "
                        "Python (SpecClassifier.fit(X, y), or train(spec, prepared=...)), or "
                        "name a built-in source or a file")


SOURCE_CLASSES: tuple[type[DataSource], ...] = (
    Xor, Moons, Circles, Blobs, Classification, Regression, Iris, Wine, BreastCancer,
    Digits, Diabetes, Csv, Parquet, Npz, Npy, MnistIdx, InMemory,
)
SOURCES: dict[str, type[DataSource]] = {
    cls.model_fields["source"].default: cls for cls in SOURCE_CLASSES
}
"""The closed registry of data sources: spec name -> source model."""

if TYPE_CHECKING:
    AnySource = DataSource
else:
    AnySource = Annotated[Union[SOURCE_CLASSES], Field(discriminator="source")]  # noqa: UP007
