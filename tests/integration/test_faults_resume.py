"""An interrupted fault campaign resumes from its checkpoint file (faults + trustbench.checkpoints,
as the faults suite wires them)."""

from __future__ import annotations

import pytest

from tests.unit.faults.conftest import interrupted_after, make_data, state_bytes
from trustbench.checkpoints import JsonCheckpoints
from trustbench.faults.campaign import CampaignConfig, CampaignState, run_campaign


def test_interrupted_campaign_resumes_from_its_file(tmp_path):
    net, x, y = make_data()
    cfg = CampaignConfig(n_faults=150, seed=3, chunk_size=25)
    store = JsonCheckpoints(tmp_path)
    progress = store.progress("faults-tiny-weights", CampaignState.from_dict)
    before = state_bytes(net)
    with pytest.raises(KeyboardInterrupt), interrupted_after(chunks=3):  # at 75 faults
        run_campaign(net, x, y, cfg, checkpoint=progress)
    assert state_bytes(net) == before
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].name.startswith("faults-tiny-weights-")
    resumed = run_campaign(net, x, y, cfg, checkpoint=progress)
    assert resumed.resumed_from == 75 and resumed.complete
    assert not list(tmp_path.iterdir())  # complete: the file is gone
    whole = run_campaign(net, x, y, cfg)
    assert whole.resumed_from == 0
    assert (resumed.outcomes == whole.outcomes).all()
    assert resumed.state.changed == whole.state.changed
    # a truncated file is no progress: the campaign starts again
    with pytest.raises(KeyboardInterrupt), interrupted_after(chunks=3):
        run_campaign(net, x, y, cfg, checkpoint=progress)
    (path,) = tmp_path.iterdir()
    path.write_text(path.read_text()[:40])
    again = run_campaign(net, x, y, cfg, checkpoint=progress)
    assert again.resumed_from == 0 and (again.outcomes == whole.outcomes).all()
