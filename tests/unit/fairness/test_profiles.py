"""Fairness budgets per profile and user overrides."""

from __future__ import annotations

import pytest

from trustbench.errors import ConfigError
from trustbench.fairness.profiles import budget


def test_profiles_scale_resamples():
    assert budget("smoke").n_boot < budget("standard").n_boot < budget("full").n_boot
    assert budget("standard").min_group_size == 30


def test_options_override_and_validate():
    b = budget("smoke", {"min_group_size": 50, "sensitive": "sex", "intersections": "all"})
    assert (b.min_group_size, b.sensitive, b.intersections) == (50, ("sex",), "all")
    with pytest.raises(ConfigError, match="unknown"):
        budget("smoke", {"n_bootstrap": 5})
    with pytest.raises(ConfigError, match="n_boot"):
        budget("smoke", {"n_boot": 0})
    with pytest.raises(ConfigError, match="profile"):
        budget("huge")
