from __future__ import annotations

import pytest
import torch

from trustbench.errors import ConfigError
from trustbench.tasks import build_task, check_task_name, task_names


def test_builtin_tasks_listed():
    assert task_names()[:4] == ["digits-cnn", "mnist5k-cnn", "arrests-mlp", "cifar10-resnet18"]
    with pytest.raises(ConfigError, match="digits-cnn.*--bench-model"):
        check_task_name("mnist-cnn")


def test_digits_task_band(digits_task):
    t = digits_task
    acc = (t.predict(t.x_test).cpu() == t.y_test).float().mean().item()
    assert acc >= 0.95
    assert t.input_range == (0.0, 1.0) and t.modality == "image"
    meta = t.meta
    assert meta["model"]["parameters"] > 0 and len(meta["model"]["sha256"]) == 64
    assert meta["dataset"]["n"] == 450 and not t.model.training


def test_arrests_task(cpu_config):
    t = build_task("arrests-mlp", cpu_config)
    acc = (t.predict(t.x_test).cpu() == t.y_test).float().mean().item()
    assert 0.78 <= acc <= 0.9  # majority class is 0.83; the MLP must not be worse than ~chance
    assert t.input_range is None and t.sensitive_test is not None
    assert t.meta["dataset"]["sensitive"] == ["colour", "sex", "age_group"]


@pytest.mark.slow
def test_mnist5k_reference_model_meets_the_bar(cpu_config):
    t = build_task("mnist5k-cnn", cpu_config)
    acc = (t.predict(t.x_test).cpu() == t.y_test).float().mean().item()
    assert acc >= 0.95, acc
    assert t.x_train.shape == (4000, 1, 28, 28) and t.x_test.shape == (1000, 1, 28, 28)


def test_logits_batches_agree(digits_task):
    x = digits_task.x_test[:100]
    assert torch.allclose(digits_task.logits(x, batch_size=7), digits_task.logits(x), atol=1e-5)
