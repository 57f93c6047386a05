from __future__ import annotations

import pytest
import torch
from torch import nn

from trustbench import models as M
from trustbench.errors import ModelError


def test_detect_output_kind():
    logits = torch.randn(8, 10)
    assert M.detect_output_kind(logits) == "logits"
    assert M.detect_output_kind(logits.log_softmax(1)) == "log_probs"
    assert M.detect_output_kind(logits.softmax(1)) == "probs"


def test_task_model_turns_probs_into_logits():
    net = nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1))
    wrapped = M.TaskModel(net, output_kind="probs")
    x = torch.randn(5, 4)
    assert torch.allclose(wrapped(x).softmax(1), net(x), atol=1e-6)


def test_normalize_wrapper():
    norm = M.Normalize([0.5], [0.25], 2)
    x = torch.full((1, 1, 2, 2), 0.75)
    assert torch.allclose(norm(x), torch.ones(1, 1, 2, 2))


def test_factory_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "usernet.py").write_text(
        "import torch\n"
        "def build():\n    return torch.nn.Linear(4, 2)\n"
        "def not_a_model():\n    return 42\n"
        "def broken():\n    raise RuntimeError('boom')\n"
    )
    assert isinstance(M.load_factory("usernet:build"), nn.Linear)
    with pytest.raises(ModelError, match="MODULE:FACTORY"):
        M.load_factory("usernet.build")
    with pytest.raises(ModelError, match="cannot import module 'nosuchmod'"):
        M.load_factory("nosuchmod:build")
    with pytest.raises(ModelError, match="has no attribute 'missing'.*build"):
        M.load_factory("usernet:missing")
    with pytest.raises(ModelError, match="returned int, not a torch.nn.Module"):
        M.load_factory("usernet:not_a_model")
    with pytest.raises(ModelError, match="raised RuntimeError: boom"):
        M.load_factory("usernet:broken")


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_weights_errors(tmp_path):
    net = nn.Linear(4, 2)
    good = tmp_path / "good.pt"
    torch.save(net.state_dict(), good)
    assert M.load_weights(nn.Linear(4, 2), good) is not None
    with pytest.raises(ModelError, match="no such file"):
        M.load_weights(net, tmp_path / "missing.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelError, match="not a readable torch file"):
        M.load_weights(net, corrupt)
    evil = tmp_path / "evil.pt"
    torch.save({"weight": _Evil()}, evil)
    with pytest.raises(ModelError, match="weights_only=True. refuses"):
        M.load_weights(net, evil)
    other = tmp_path / "other.pt"
    torch.save(nn.Sequential(nn.Linear(4, 3)).state_dict(), other)
    with pytest.raises(ModelError, match=r"missing keys: bias, weight.*unexpected keys: 0.bias"):
        M.load_weights(net, other)
    shaped = tmp_path / "shaped.pt"
    torch.save(nn.Linear(5, 2).state_dict(), shaped)
    with pytest.raises(ModelError, match=r"shape mismatches: weight \(2, 5\) vs model \(2, 4\)"):
        M.load_weights(net, shaped)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_torchscript_weights(tmp_path):
    path = tmp_path / "script.pt"
    torch.jit.script(nn.Linear(4, 2)).save(str(path))
    loaded = M.load_weights(None, path)
    assert loaded(torch.randn(1, 4)).shape == (1, 2)


def test_sha256_is_stable_and_sensitive():
    torch.manual_seed(0)
    a = nn.Linear(4, 2)
    h = M.state_sha256(a)
    assert h == M.state_sha256(a)
    with torch.no_grad():
        a.weight[0, 0] += 1e-7
    assert M.state_sha256(a) != h
    assert M.count_parameters(a) == 10 and M.model_size_bytes(a) == 40


def test_sha256_handles_zero_dim_buffers():
    bn = nn.BatchNorm2d(3)  # num_batches_tracked is a 0-dim int64 buffer
    assert len(M.state_sha256(bn)) == 64
