"""Shared fixtures of the attack tests: a small CNN trained on sklearn's 8x8 digits (~1 s)."""

from __future__ import annotations

import pytest
import torch
from torch import nn


def make_digits_cnn() -> nn.Module:
    """A tiny CNN for 1x8x8 inputs in [0, 1]."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 32),
        nn.ReLU(),
        nn.Linear(32, 10),
    )


def load_digits_tensors() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """sklearn digits scaled to [0, 1]: (x_train, y_train, x_test, y_test), 1x8x8 images."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(d.target, dtype=torch.int64)
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(x), generator=g)
    x, y = x[perm], y[perm]
    return x[:1400], y[:1400], x[1400:], y[1400:]


def train_digits_cnn(
    seed: int = 0, epochs: int = 8
) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """Train the tiny CNN deterministically; return (model in eval mode, x_test, y_test)."""
    torch.manual_seed(seed)
    xtr, ytr, xte, yte = load_digits_tensors()
    model = make_digits_cnn()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(xtr), generator=g)
        for i in range(0, len(xtr), 128):
            idx = perm[i : i + 128]
            opt.zero_grad()
            nn.functional.cross_entropy(model(xtr[idx]), ytr[idx]).backward()
            opt.step()
    model.eval()
    return model, xte, yte


@pytest.fixture(scope="session")
def digits_model() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """(trained digits CNN, x_test (397, 1, 8, 8), y_test)."""
    torch.set_num_threads(min(2, torch.get_num_threads()))
    return train_digits_cnn()
