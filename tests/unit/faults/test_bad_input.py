"""Bad input to a campaign: a clear error naming what was wrong and what is accepted, and the
model and data left as they were (faults.campaign, faults.protection)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trustbench.errors import ModelError
from trustbench.faults.campaign import CampaignState, run_campaign
from trustbench.faults.errors import FaultError
from trustbench.faults.protection import RangeRestriction, evaluate_protection

from .conftest import MemoryCheckpoint, make_data, state_bytes


def test_a_submodule_in_training_mode_is_refused_before_anything_runs():
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.5),
                        nn.Linear(8, 3)).eval()
    net[1].train()
    net[2].train()
    x, y = torch.randn(16, 4), torch.zeros(16, dtype=torch.long)
    before = state_bytes(net)
    with pytest.raises(FaultError, match=r"training mode: 1, 2; call model.eval\(\)"):
        run_campaign(net, x, y, n_faults=10)
    with pytest.raises(FaultError, match="training mode"):
        evaluate_protection(net, x, y, RangeRestriction(), n_faults=10)
    assert state_bytes(net) == before  # BN statistics untouched, nothing fitted


@pytest.mark.parametrize("labels, match", [
    (lambda y: y + 10, "out of range"),
    (lambda y: y - 10, ">= 0"),
    (lambda y: y.float(), "integer class labels"),
    (lambda y: nn.functional.one_hot(y, 5), "1-D"),
    (lambda y: y[:-1], "labels"),
])
def test_labels_must_be_one_class_index_per_input(labels, match):
    net, x, y = make_data()
    with pytest.raises(FaultError, match=match):
        run_campaign(net, x, labels(y), n_faults=10)


class TupleOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(x), x


class InPlaceNormalise(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(x.sub_(0.5))


@pytest.mark.parametrize("target", ["weights", "activations", "inputs"])
@pytest.mark.parametrize("model, x, match", [
    (TupleOut(), torch.randn(8, 4), "returns a tuple"),
    (nn.Sequential(nn.Linear(4, 3), nn.Unflatten(1, (1, 3))), torch.randn(8, 4),
     r"shape \(2, 1, 3\)"),
    (nn.Linear(4, 3), torch.randn(8, 5), "fails on the evaluation inputs"),
    (InPlaceNormalise(), torch.randn(8, 4), "changes its input tensor in place"),
])
def test_models_a_campaign_cannot_use_are_named(target, model, x, match):
    x_before = x.clone()
    with pytest.raises(ModelError, match=match):
        run_campaign(model.eval(), x, torch.zeros(8, dtype=torch.long), target=target,
                     n_faults=10)
    assert torch.equal(x, x_before)


@pytest.mark.parametrize("kwargs, match", [
    (dict(pattern="(["), "not a valid regular expression"),
    (dict(pattern=5), "pattern must be a regular expression string"),
    (dict(layer_types=5), "layer_types must be"),
    (dict(seed=-1), "seed must be a non-negative integer"),
    (dict(seed=1.5), "seed"),
    (dict(fault_params="abc"), "fault_params must be a dict"),
    (dict(checkpoint_every=True), "checkpoint_every"),
    (dict(checkpoint_every="5"), "checkpoint_every"),
    (dict(n_fault=10), r"unknown campaign setting\(s\) \['n_fault'\]"),
    (dict(stop_after=-1), "stop_after"),
])
def test_settings_that_are_not_accepted(kwargs, match):
    net, x, y = make_data()
    with pytest.raises(FaultError, match=match):
        run_campaign(net, x, y, **{"n_faults": 10, **kwargs})


def test_a_state_is_not_resumed_on_other_inputs_with_the_same_predictions():
    net, x, y = make_data()
    part = run_campaign(net, x, y, n_faults=40, seed=1, stop_after=20)
    nudged = x + 1e-6
    with torch.no_grad():
        assert torch.equal(net(nudged).argmax(1), net(x).argmax(1))
    refused = run_campaign(net, nudged, y, n_faults=40, seed=1,
                           checkpoint=MemoryCheckpoint.holding(part.state))
    assert refused.resumed_from == 0 and refused.complete
    resumed = run_campaign(net, x, y, n_faults=40, seed=1,
                           checkpoint=MemoryCheckpoint.holding(part.state))
    assert resumed.resumed_from == 20 and resumed.complete


def test_a_state_is_not_resumed_by_a_changed_forward_with_the_same_predictions():
    class Leaky(nn.Module):
        def __init__(self, slope: float) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.fc1, self.fc2, self.slope = nn.Linear(4, 16), nn.Linear(16, 3), slope

        def forward(self, x):
            return self.fc2(nn.functional.leaky_relu(self.fc1(x), self.slope))

    x = torch.randn(64, 4)
    a, b = Leaky(0.01).eval(), Leaky(0.02).eval()
    with torch.no_grad():
        y = a(x).argmax(1)
        assert torch.equal(b(x).argmax(1), y)  # same weights, same predictions
    part = run_campaign(a, x, y, n_faults=40, seed=1, stop_after=20)
    refused = run_campaign(b, x, y, n_faults=40, seed=1,
                           checkpoint=MemoryCheckpoint.holding(part.state))
    assert refused.resumed_from == 0 and refused.complete


def test_corrupt_states_are_refused():
    good = {"fingerprint": "f", "n_total": 4, "n_done": 2, "outcomes": [0, 1], "changed": [0, 3]}
    assert CampaignState.from_dict(good).n_done == 2
    for bad in ({"outcomes": [0, 7]}, {"changed": [0, -1]}, {"n_total": 1},
                {"outcomes": [0, 1.5]}):
        with pytest.raises(FaultError, match="corrupt campaign state"):
            CampaignState.from_dict({**good, **bad})


def test_protection_intervals_follow_the_campaign_confidence():
    net, x, y = make_data()
    kw = dict(n_faults=60, seed=4, fault_params={"bit": 30})
    r95 = evaluate_protection(net, x, y, RangeRestriction(), confidence=0.95, **kw)
    r99 = evaluate_protection(net, x, y, RangeRestriction(), confidence=0.99, **kw)
    w = [r.accuracy_cost_ci[1] - r.accuracy_cost_ci[0] for r in (r95, r99)]
    assert w[1] > w[0]
    s = [r.sdc_reduction_ci[1] - r.sdc_reduction_ci[0] for r in (r95, r99)]
    assert s[1] > s[0]


def test_compare_precisions_names_an_unknown_setting() -> None:
    from torch import nn

    from trustbench.faults.precision import compare_precisions

    model = nn.Sequential(nn.Linear(4, 3)).eval()
    x, y = torch.rand(8, 4), torch.randint(0, 3, (8,))
    with pytest.raises(FaultError, match="unknown campaign setting.*n_fautls"):
        compare_precisions(model, x, y, ("fp32",), n_fautls=10)


def test_a_checkpoint_that_is_not_one_is_refused_before_any_fault_runs() -> None:
    from trustbench.checkpoints import JsonCheckpoints

    model, x, y = make_data()
    for bad, match in ((JsonCheckpoints(), "save\\(\\) does not take exactly one"),
                       (object(), "no load\\(\\) method")):
        with pytest.raises(FaultError, match=match):
            run_campaign(model, x, y, n_faults=10, checkpoint=bad)

    class DictLoad(MemoryCheckpoint):
        def load(self, fingerprint):
            return {"fingerprint": fingerprint}

    with pytest.raises(FaultError, match="not a CampaignState"):
        run_campaign(model, x, y, n_faults=10, checkpoint=DictLoad())


def test_engine_and_campaign_settings_are_refused_where_given() -> None:
    from trustbench.faults.activation_engine import ActivationEngineConfig
    from trustbench.faults.campaign import CampaignConfig
    from trustbench.faults.weight_engine import WeightEngineConfig

    for bad, match in ((dict(batch_size=0), "batch_size"), (dict(batch_size="64"), "batch_size"),
                       (dict(fault_batch=None), "fault_batch"), (dict(early_exit="no"),
                                                                  "early_exit")):
        with pytest.raises(FaultError, match=match):
            WeightEngineConfig(**bad)
    with pytest.raises(FaultError, match="lanes"):
        ActivationEngineConfig(lanes=0)
    model, x, y = make_data()
    for bad, match in ((dict(confidence=95), "confidence"), (dict(margin=0.0), "margin"),
                       (dict(strict_fp32="yes"), "strict_fp32")):
        with pytest.raises(FaultError, match=match):
            run_campaign(model, x, y, n_faults=10, **bad)
    with pytest.raises(FaultError, match="must be a CampaignConfig"):
        run_campaign(model, x, y, WeightEngineConfig())
    CampaignConfig().check()


def test_the_contract_catches_a_mask_that_does_not_keep_the_words_shape() -> None:
    from trustbench.faults import contract
    from trustbench.faults.bitflip import BitFlip

    class Flattening(BitFlip):
        """Flattens its mask (a bug that mixes up activation faults)."""

        def xor_mask(self, words, payload):
            return super().xor_mask(words, payload).reshape(-1)

    with pytest.raises(AssertionError, match="keep the words' shape"):
        contract.check_layout(Flattening, "fp32")
