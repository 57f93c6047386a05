"""Checkpoint files of long measurements (trustbench.checkpoints)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pytest

from trustbench.checkpoints import JsonCheckpoints
from trustbench.errors import ConfigError


@dataclass
class State:
    fingerprint: str
    n_total: int
    n_done: int = 0

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        if d.get("n_done", 0) > d.get("n_total", 0):
            raise ValueError("corrupt")
        return cls(**d)


def test_save_load_remove_and_names(tmp_path):
    store = JsonCheckpoints(tmp_path / "ck")
    assert store.load("a") is None
    store.save("a/b c", {"x": [1, 2]})
    assert store.path("a/b c").name == "a-b-c.json"
    assert store.load("a/b c") == {"x": [1, 2]}
    assert [p.name for p in (tmp_path / "ck").iterdir()] == ["a-b-c.json"]  # no temp left
    store.remove("a/b c")
    store.remove("a/b c")  # twice is fine
    assert store.load("a/b c") is None
    with pytest.raises(ConfigError, match="letters or digits"):
        store.path("///")


def test_unreadable_files_are_no_progress(tmp_path):
    store = JsonCheckpoints(tmp_path)
    store.path("cut").write_text('{"n_done": 3', encoding="utf-8")
    store.path("list").write_text("[1, 2]", encoding="utf-8")
    assert store.load("cut") is None and store.load("list") is None
    prog = store.progress("m", State.from_dict)
    store.save(prog.name("fp"), {"fingerprint": "fp", "n_total": 2, "n_done": 5})
    assert prog.load("fp") is None  # from_dict rejected it
    store.save(prog.name("fp"), {"fingerprint": "fp", "n_total": 2, "bogus": 1})
    assert prog.load("fp") is None


def test_progress_keeps_partial_states_and_forgets_complete_ones(tmp_path):
    prog = JsonCheckpoints(tmp_path).progress("faults-task-weights", State.from_dict)
    prog.save(State("abc", 10, 4))
    assert prog.load("abc") == State("abc", 10, 4)
    assert prog.load("other") is None
    prog.save(State("abc", 10, 10))
    assert prog.load("abc") is None and not list(tmp_path.iterdir())


def test_unwritable_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="TRUSTBENCH_CACHE"):
        JsonCheckpoints(blocker / "sub").save("a", {})


def test_default_folder_follows_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("TRUSTBENCH_CACHE", str(tmp_path))
    assert JsonCheckpoints().directory == tmp_path / "checkpoints"


def test_complete_states_can_be_kept_until_cleared(tmp_path):
    prog = JsonCheckpoints(tmp_path).progress("faults-t-w", State.from_dict, keep_complete=True)
    prog.save(State("abc", 10, 10))
    assert prog.load("abc") == State("abc", 10, 10)  # a later run takes it up
    prog.clear()
    assert prog.load("abc") is None and not list(tmp_path.iterdir())


def test_an_unwritable_folder_turns_saving_off_with_one_warning(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    prog = JsonCheckpoints(blocker / "sub").progress("m", State.from_dict)
    with pytest.warns(RuntimeWarning, match="checkpoints are off"):
        prog.save(State("abc", 10, 4))
    prog.save(State("abc", 10, 5))  # silently off now
    prog.save(State("abc", 10, 10))  # complete: removing what cannot exist is fine
    assert prog.disabled and prog.load("abc") is None


def test_a_failed_write_leaves_no_temporary_file(tmp_path):
    store = JsonCheckpoints(tmp_path)
    with pytest.raises(TypeError):
        store.save("a", {"x": {1, 2}})  # not JSON
    assert not list(tmp_path.iterdir())
