"""Synthetic data for the fairness unit tests: labels, predictions biased against one group."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def make_biased(n: int = 1200, seed: int = 0, gap: float = 0.2):
    """Binary labels, predictions with ``gap`` fewer selections for colour B, sensitive frame."""
    rng = np.random.default_rng(seed)
    sens = pd.DataFrame({
        "colour": rng.choice(["A", "B"], n, p=[0.7, 0.3]),
        "sex": rng.choice(["F", "M"], n, p=[0.4, 0.6]),
    })
    y = (rng.random(n) < 0.6).astype(np.int64)
    pred = np.where(rng.random(n) < 0.85, y, 1 - y)
    drop = (sens["colour"].to_numpy() == "B") & (rng.random(n) < gap)
    pred[drop] = 0
    return y, pred.astype(np.int64), sens


@pytest.fixture
def biased():
    return make_biased()
