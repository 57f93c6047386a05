"""Common corruptions: range, shape, determinism, severity ordering, evaluation in bands."""

from __future__ import annotations

import pytest
import torch

from trustbench import (
    attacks,  # noqa: F401
    registry,
)
from trustbench.attacks.corruptions import evaluate_corruptions
from trustbench.errors import ConfigError, DataError

NAMES = sorted(registry.all_plugins("corruption"))


def test_the_nine_corruptions_are_registered() -> None:
    assert set(NAMES) >= {
        "gaussian_noise",
        "shot_noise",
        "impulse_noise",
        "gaussian_blur",
        "defocus_blur",
        "contrast",
        "brightness",
        "jpeg",
        "pixelate",
    }


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("channels", [1, 3])
def test_corruption_contract(name: str, channels: int) -> None:
    c = registry.get("corruption", name)()
    x = torch.rand(6, channels, 16, 16, generator=torch.Generator().manual_seed(0))
    x_copy = x.clone()
    dists = []
    for s in (1, 3, 5):
        out = c(x, s, torch.Generator().manual_seed(1))
        again = c(x, s, torch.Generator().manual_seed(1))
        assert out.shape == x.shape and out.dtype == x.dtype
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
        assert torch.equal(out, again), "same seed, same corruption"
        dists.append(float((out - x).abs().mean()))
    assert torch.equal(x, x_copy)
    assert dists[2] > 0.0
    assert dists[2] >= dists[0] * 0.9, f"severity 5 should corrupt more than 1: {dists}"


def test_bad_severity_and_shape() -> None:
    c = registry.get("corruption", "contrast")()
    with pytest.raises(ConfigError, match="1-5"):
        c(torch.rand(2, 1, 8, 8), 6)
    with pytest.raises(DataError, match="N, C, H, W"):
        c(torch.rand(2, 8), 1)


def test_brightness_is_hsv_value_shift() -> None:
    c = registry.get("corruption", "brightness")()
    x = torch.tensor([0.2, 0.4, 0.1]).reshape(1, 3, 1, 1)
    out = c(x, 1)  # V 0.4 -> 0.45, hue/saturation kept: channels scale by 0.45/0.4
    assert torch.allclose(out.flatten(), x.flatten() * 0.45 / 0.4)


def test_evaluate_corruptions_bands(digits_model) -> None:
    model, x, y = digits_model
    ev = evaluate_corruptions(model, x[:200], y[:200], severities=(1, 5))
    acc = ev.accuracy()
    assert 0.85 <= ev.clean_accuracy <= 1.0
    assert 0.3 <= ev.mean_corruption_accuracy <= ev.clean_accuracy + 0.02
    assert ev.relative_corruption_error == pytest.approx(
        ev.clean_accuracy - ev.mean_corruption_accuracy
    )
    # severity 5 hurts at least as much as severity 1 on average
    assert sum(r[1] for r in acc) <= sum(r[0] for r in acc) + 0.05
    # per-sample results add up to the cell counts, and the intervals hold the estimates
    cells = len(ev.names) * 2
    assert int(ev.sample_correct.sum()) == sum(map(sum, ev.correct))
    assert int(ev.sample_clean.sum()) == ev.clean_correct and len(ev.sample_correct) == 200
    assert ev.sample_correct.max() <= cells
    est = ev.estimates()
    for name in ("mean_corruption_accuracy", "relative_corruption_error"):
        lo, hi = est[name].ci
        assert est[name].value == getattr(ev, name) and est[name].n == 200
        assert lo < getattr(ev, name) < hi and hi - lo < 0.2
    # resampling whole images is wider than treating the 200 x cells trials as independent
    from trustbench.stats import wilson_interval

    k = int(ev.sample_correct.sum())
    pooled = wilson_interval(k, 200 * cells)
    lo, hi = est["mean_corruption_accuracy"].ci
    assert hi - lo > 1.5 * (pooled[1] - pooled[0])
