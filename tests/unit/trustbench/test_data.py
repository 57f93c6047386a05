from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from trustbench import data as D
from trustbench.errors import DataError


def _png(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_embedded_digits_and_arrests():
    d = D.load_digits()
    assert d.x_train.shape == (1347, 1, 8, 8) and d.x_test.shape == (450, 1, 8, 8)
    assert float(d.x_test.min()) >= 0.0 and float(d.x_test.max()) <= 1.0
    a = D.load_arrests()
    assert a.modality == "tabular" and a.num_classes == 2
    assert list(a.sensitive_test.columns) == ["colour", "sex", "age_group"]
    assert len(a.sensitive_test) == len(a.y_test)
    assert set(a.sensitive_test["age_group"]) <= {"<25", "25-44", "45+"}


def test_local_parquet_images_through_hf_datasets(tmp_path):
    """The CIFAR-10 loading path (HF datasets on local parquet) on a tiny file we write."""
    import datasets

    rng = np.random.default_rng(0)
    rows = {"img": [], "label": []}
    for i in range(6):
        rows["img"].append({"bytes": _png(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)),
                            "path": None})
        rows["label"].append(i % 3)
    feats = datasets.Features({"img": datasets.Image(),
                               "label": datasets.ClassLabel(names=["a", "b", "c"])})
    for split in ("train", "test"):
        datasets.Dataset.from_dict(rows, features=feats).to_parquet(
            str(tmp_path / f"{split}-00000-of-00001.parquet"))
    td = D.load_hf(str(tmp_path), split="test")
    assert td.x_test.shape == (6, 3, 32, 32) and td.modality == "image"
    assert td.class_names == ["a", "b", "c"] and td.y_test.tolist() == [0, 1, 2, 0, 1, 2]
    assert float(td.x_test.min()) >= 0.0 and float(td.x_test.max()) <= 1.0
    c10 = D.load_cifar10(tmp_path)  # the built-in task's loader, from a local folder
    assert c10.x_train.shape == (6, 3, 32, 32) and c10.x_test.shape == (6, 3, 32, 32)


def test_cifar10_offline_says_how_to_provide_data(tmp_path, monkeypatch):
    monkeypatch.delenv("TRUSTBENCH_CIFAR10", raising=False)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(DataError, match="TRUSTBENCH_CIFAR10"):
        D.load_cifar10()
    with pytest.raises(DataError, match="neither"):
        D.load_cifar10(tmp_path)


def test_csv_tabular_with_sensitive(tmp_path):
    df = pd.DataFrame({"f1": [0.1, 0.2, 0.3, 0.4], "f2": [1, 2, 3, 4], "group": list("abab"),
                       "y": ["no", "yes", "no", "yes"]})
    p = tmp_path / "t.csv"
    df.to_csv(p, index=False)
    td = D.load_local(p, label_column="y", sensitive=["group"])
    assert td.x_test.shape == (4, 2) and td.feature_names == ["f1", "f2"]
    assert td.class_names == ["no", "yes"] and td.sensitive_test["group"].tolist() == list("abab")
    with pytest.raises(DataError, match="sensitive column.*race.*columns are"):
        D.load_local(p, label_column="y", sensitive=["race"])
    with pytest.raises(DataError, match="label column 'target' not found"):
        D.load_local(p, label_column="target")
    with pytest.raises(DataError, match="non-numeric feature column.*group"):
        D.load_local(p, label_column="y")


@pytest.mark.parametrize("labels", [
    list(range(11)),                      # integers
    [float(i) for i in range(11)],        # integral floats (a CSV column with a missing value)
    [str(i) for i in range(11)],          # digit strings (a parquet string column)
])
def test_numeric_labels_are_class_indices_not_sorted_text(tmp_path, labels):
    df = pd.DataFrame({"f": np.arange(11, dtype=float), "y": labels})
    p = tmp_path / "t.parquet"
    df.to_parquet(p)
    td = D.load_local(p, label_column="y")
    assert td.y_test.tolist() == list(range(11))  # "10" is class 10, not class 2
    assert td.class_names == [str(i) for i in range(11)]


def test_missing_or_fractional_labels(tmp_path):
    p = tmp_path / "t.csv"
    pd.DataFrame({"f": [0.1, 0.2, 0.3], "y": [0, None, 1]}).to_csv(p, index=False)
    with pytest.raises(DataError, match="label column 'y' has 1 missing value"):
        D.load_local(p, label_column="y")
    pd.DataFrame({"f": [0.1, 0.2, 0.3], "y": [0.5, 1.5, 0.5]}).to_csv(p, index=False)
    td = D.load_local(p, label_column="y")  # not integers: named classes
    assert td.class_names == ["0.5", "1.5"] and td.y_test.tolist() == [0, 1, 0]


def test_image_folder(tmp_path):
    rng = np.random.default_rng(1)
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for i in range(2):
            (tmp_path / cls / f"{i}.png").write_bytes(
                _png(rng.integers(0, 256, (8, 8), dtype=np.uint8)))
    td = D.load_local(tmp_path)
    assert td.x_test.shape == (4, 1, 8, 8) and td.class_names == ["cat", "dog"]


def test_dataset_spec_errors(tmp_path):
    with pytest.raises(DataError, match="not a built-in dataset"):
        D.load_dataset_spec("imagenet")
    with pytest.raises(DataError, match="no sensitive column"):
        D.load_dataset_spec("digits", sensitive=["sex"])
    with pytest.raises(DataError, match="cannot load dataset"):
        D.load_dataset_spec("hf:nobody/nothing-here")
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(DataError, match="unsupported file type"):
        D.load_dataset_spec(str(tmp_path / "x.txt"))


@pytest.mark.slow
def test_cifar10_task_builds_from_a_local_folder(tmp_path, monkeypatch, cpu_config):
    """The cifar10-resnet18 task end to end (loading, normalisation, training path) on 8 images."""
    import datasets

    from trustbench.tasks import build_task

    rng = np.random.default_rng(0)
    rows = {"img": [{"bytes": _png(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)),
                     "path": None} for _ in range(8)],
            "label": [i % 10 for i in range(8)]}
    feats = datasets.Features({"img": datasets.Image(),
                               "label": datasets.ClassLabel(names=D.CIFAR10_CLASSES)})
    for split in ("train", "test"):
        datasets.Dataset.from_dict(rows, features=feats).to_parquet(
            str(tmp_path / f"{split}-00000-of-00001.parquet"))
    monkeypatch.setenv("TRUSTBENCH_CIFAR10", str(tmp_path))
    monkeypatch.setenv("TRUSTBENCH_CACHE", str(tmp_path / "cache"))
    task = build_task("cifar10-resnet18", cpu_config)
    assert task.input_shape == (3, 32, 32) and task.class_names == D.CIFAR10_CLASSES
    assert task.normalization["mean"] == [0.4914, 0.4822, 0.4465]
    assert task.logits(task.x_test).shape == (8, 10)
    from trustbench.attacks.profiles import task_eps

    assert task_eps(task)["linf"] == [8 / 255]


def test_image_pixels_are_scaled_by_their_type_not_their_values():
    from PIL import Image

    dark = np.zeros((4, 4), dtype=np.uint8)
    dark[0, 0] = 1  # a dark 8-bit image: only 0 and 1
    assert D._decode_image(Image.fromarray(dark)).max() == pytest.approx(1 / 255)
    assert D._decode_image(np.full((2, 2), 255, dtype=np.uint8)).max() == 1.0
    assert D._decode_image(np.full((2, 2), 0.5, dtype=np.float32)).max() == 0.5
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        D._decode_image(np.full((2, 2), 7.0, dtype=np.float32))
