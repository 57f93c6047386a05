from __future__ import annotations

import pytest

from trustbench.config import build_config, parse_normalize, resolve_device
from trustbench.errors import ConfigError


def test_defaults(tmp_path):
    cfg = build_config({}, tmp_path)
    assert cfg.profile == "standard" and cfg.seed == 0 and cfg.division == "closed"
    assert cfg.task_ids() == ["mnist5k-cnn", "arrests-mlp"]
    assert build_config({"bench_profile": "smoke"}, tmp_path).task_ids() == ["digits-cnn",
                                                                            "arrests-mlp"]


def test_file_then_options_precedence(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.trustbench]\nprofile = "full"\nseed = 7\ntask = ["digits-cnn"]\n'
        '[tool.trustbench.faults]\nlayers = ["conv"]\n')
    cfg = build_config({}, tmp_path)
    assert (cfg.profile, cfg.seed, cfg.tasks) == ("full", 7, ["digits-cnn"])
    assert cfg.pillar_options("faults") == {"layers": ["conv"]}
    cfg = build_config({"bench_profile": "smoke", "bench_seed": "3"}, tmp_path)
    assert (cfg.profile, cfg.seed) == ("smoke", 3)


def test_trustbench_toml_wins_over_pyproject(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.trustbench]\nprofile = "full"\n')
    (tmp_path / "trustbench.toml").write_text('profile = "smoke"\n')
    assert build_config({}, tmp_path).profile == "smoke"


@pytest.mark.parametrize("opts,match", [
    ({"bench_profile": "quick"}, "smoke.*standard.*full"),
    ({"bench_device": "gpu0"}, "cpu, cuda, cuda:N"),
    ({"bench_task": ["nope"]}, "mnist5k-cnn"),
    ({"bench_model": "m:f"}, "needs --bench-dataset"),
    ({"bench_weights": "w.pt"}, "go with --bench-model"),
    ({"bench_model": "m:f", "bench_dataset": "digits", "bench_task": ["digits-cnn"]},
     "exclude each other"),
    ({"bench_gate": ["accuracy>0.5"]}, "PILLAR.METRIC"),
    ({"bench_seed": "x"}, "integer"),
    ({"bench_output": "scores"}, "logits"),
])
def test_bad_options_are_clear(tmp_path, opts, match):
    with pytest.raises(ConfigError, match=match):
        build_config(opts, tmp_path)


def test_unknown_file_key(tmp_path):
    (tmp_path / "trustbench.toml").write_text('profil = "smoke"\n')
    with pytest.raises(ConfigError, match="unknown key 'profil'"):
        build_config({}, tmp_path)


def test_normalize():
    assert parse_normalize("0.5/0.25") == {"mean": [0.5], "std": [0.25]}
    assert parse_normalize("1,2,3/4,5,6")["std"] == [4.0, 5.0, 6.0]
    for bad in ("0.5", "1,2/3", "0.5/0", "a/b"):
        with pytest.raises(ConfigError):
            parse_normalize(bad)


def test_cuda_without_gpu_is_clear():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"
