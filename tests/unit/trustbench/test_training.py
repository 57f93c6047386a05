from __future__ import annotations

import torch

from trustbench import models as M
from trustbench.training import Recipe, train_or_load


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 1, 8, 8, generator=g)
    y = (x.mean((1, 2, 3)) > 0).long()
    return x, y


def test_training_is_deterministic_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("TRUSTBENCH_CACHE", str(tmp_path))
    x, y = _data()
    recipe = Recipe("unit", "DigitsCNN", "synthetic", epochs=2, batch_size=32, lr=1e-3)
    a = train_or_load(recipe, lambda: M.DigitsCNN(2), x, y, use_cache=False)
    b = train_or_load(recipe, lambda: M.DigitsCNN(2), x, y)
    assert not a.cached and not b.cached
    net_a, net_b = M.DigitsCNN(2), M.DigitsCNN(2)
    net_a.load_state_dict(a.state_dict)
    net_b.load_state_dict(b.state_dict)
    assert M.state_sha256(net_a) == M.state_sha256(net_b)
    c = train_or_load(recipe, lambda: M.DigitsCNN(2), x, y)
    assert c.cached and c.path == b.path
    assert all(torch.equal(c.state_dict[k], b.state_dict[k]) for k in b.state_dict)


def test_recipe_key_changes_with_recipe():
    r1 = Recipe("t", "a", "d", epochs=1, batch_size=8, lr=0.1)
    r2 = Recipe("t", "a", "d", epochs=2, batch_size=8, lr=0.1)
    assert r1.key() != r2.key() and r1.key() == Recipe("t", "a", "d", 1, 8, 0.1).key()


def test_corrupt_cache_entry_is_retrained(tmp_path, monkeypatch):
    monkeypatch.setenv("TRUSTBENCH_CACHE", str(tmp_path))
    x, y = _data()
    recipe = Recipe("unit2", "DigitsCNN", "synthetic", epochs=1, batch_size=64, lr=1e-3)
    first = train_or_load(recipe, lambda: M.DigitsCNN(2), x, y)
    first.path.write_bytes(b"corrupt")
    again = train_or_load(recipe, lambda: M.DigitsCNN(2), x, y)
    assert not again.cached
