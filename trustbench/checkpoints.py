"""Progress of long measurements kept between runs, so an interrupted benchmark resumes.

A :class:`JsonCheckpoints` folder holds one JSON file per named measurement (a fault campaign, a
training run), in the user cache directory by default (``$TRUSTBENCH_CACHE/checkpoints``; see
:func:`trustbench.training.cache_dir`). Writes are atomic (a temporary file renamed into place),
so an interruption leaves the previous state; a file that cannot be read back (cut short by a
crash, edited by hand) is treated as absent, never as progress. Suites own the files: a pillar
package hands its state out and takes it back through the suite, e.g. through
:meth:`JsonCheckpoints.progress`, the ``load(fingerprint)`` / ``save(state)`` pair a fault
campaign (:class:`faults.campaign.Checkpoint`) calls.

>>> import tempfile
>>> store = JsonCheckpoints(tempfile.mkdtemp())
>>> store.save("campaign-1", {"n_done": 32})
>>> store.load("campaign-1")
{'n_done': 32}
>>> store.remove("campaign-1"); store.load("campaign-1") is None
True
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trustbench.errors import BenchError, ConfigError


def default_dir() -> Path:
    """``<cache>/checkpoints`` (the reference-model cache's folder)."""
    from trustbench.training import cache_dir

    return cache_dir() / "checkpoints"


class JsonCheckpoints:
    """Named JSON states in one folder (created on the first save)."""

    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_dir()

    def path(self, name: str) -> Path:
        """The file of ``name`` (characters other than letters, digits, ``._-`` become ``-``)."""
        safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
        if not safe:
            raise ConfigError(f"checkpoint name {name!r} has no letters or digits; use one that "
                              "does (e.g. '<task>-<measurement>-<fingerprint>').")
        return self.directory / f"{safe}.json"

    def load(self, name: str) -> dict[str, Any] | None:
        """The saved state of ``name``, or None (none saved, or unreadable)."""
        try:
            with open(self.path(name), encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def save(self, name: str, data: dict[str, Any]) -> None:
        """Replace the state of ``name`` atomically.

        Raises
        ------
        ConfigError
            If the folder cannot be written (set ``TRUSTBENCH_CACHE`` to a writable one).
        """
        path = self.path(name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, separators=(",", ":"), allow_nan=False)
            os.replace(tmp, path)
        except OSError as exc:
            raise ConfigError(
                f"cannot write the checkpoint {path}: {exc.strerror or exc}. Checkpoints live "
                "in the cache folder: set TRUSTBENCH_CACHE to a writable folder."
            ) from exc

    def remove(self, name: str) -> None:
        """Forget ``name`` (nothing happens if it was never saved)."""
        self.path(name).unlink(missing_ok=True)

    def progress(self, prefix: str, from_dict: Callable[[dict[str, Any]], Any]) -> Progress:
        """A ``load(fingerprint)`` / ``save(state)`` pair over this folder for measurements
        whose states have ``fingerprint``, ``n_done``, ``n_total`` and ``to_dict()``; see
        :class:`Progress`."""
        return Progress(self, prefix, from_dict)


class Progress:
    """The saved progress of one kind of measurement, one file per fingerprint.

    ``load(fingerprint)`` returns the saved state (``from_dict`` of the file) or None, also when
    ``from_dict`` rejects the file; ``save(state)`` writes it, and removes the file once
    ``state.n_done >= state.n_total`` (complete: a later run measures afresh).
    """

    def __init__(self, store: JsonCheckpoints, prefix: str,
                 from_dict: Callable[[dict[str, Any]], Any]) -> None:
        self.store, self.prefix, self.from_dict = store, prefix, from_dict

    def name(self, fingerprint: str) -> str:
        """The checkpoint name of ``fingerprint``."""
        return f"{self.prefix}-{fingerprint}"

    def load(self, fingerprint: str) -> Any:
        """The saved state of ``fingerprint``, or None."""
        data = self.store.load(self.name(fingerprint))
        if data is None:
            return None
        try:
            return self.from_dict(data)
        except (BenchError, ValueError, TypeError, KeyError):  # unreadable: measure again
            return None

    def save(self, state: Any) -> None:
        """Keep ``state``; forget it once complete."""
        name = self.name(state.fingerprint)
        if state.n_done >= state.n_total:
            self.store.remove(name)
        else:
            self.store.save(name, state.to_dict())
