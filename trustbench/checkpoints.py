"""Progress of long measurements kept between runs, so an interrupted benchmark resumes.

A :class:`JsonCheckpoints` folder holds one JSON file per named measurement (a fault campaign, a
training run), in the user cache directory by default (``$TRUSTBENCH_CACHE/checkpoints``; see
:func:`trustbench.training.cache_dir`). Writes are atomic (a temporary file renamed into place),
so an interruption leaves the previous state; a file that cannot be read back (cut short by a
crash, edited by hand) is treated as absent, never as progress. Suites own the files: a pillar
package hands its state out and takes it back through the suite, e.g. through
:meth:`JsonCheckpoints.progress`, the ``load(fingerprint)`` / ``save(state)`` pair a fault
campaign (:class:`trustbench.faults.campaign.Checkpoint`) calls.

>>> import tempfile
import warnings
>>> store = JsonCheckpoints(tempfile.mkdtemp())
>>> store.save("campaign-1", {"n_done": 32})
>>> store.load("campaign-1")
{'n_done': 32}
>>> store.remove("campaign-1"); store.load("campaign-1") is None
True
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import warnings
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
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, separators=(",", ":"), allow_nan=False)
            os.replace(tmp, path)
            tmp = None
        except OSError as exc:
            raise ConfigError(
                f"cannot write the checkpoint {path}: {exc.strerror or exc}. Checkpoints live "
                "in the cache folder: set TRUSTBENCH_CACHE to a writable folder."
            ) from exc
        finally:
            if tmp is not None:  # interrupted or failed between creating and renaming
                with contextlib.suppress(OSError):
                    os.unlink(tmp)

    def remove(self, name: str) -> None:
        """Forget ``name`` (nothing happens if it was never saved or cannot be removed)."""
        with contextlib.suppress(OSError):
            self.path(name).unlink(missing_ok=True)

    def progress(self, prefix: str, from_dict: Callable[[dict[str, Any]], Any], *,
                 keep_complete: bool = False) -> Progress:
        """A ``load(fingerprint)`` / ``save(state)`` pair over this folder for measurements
        whose states have ``fingerprint``, ``n_done``, ``n_total`` and ``to_dict()``; see
        :class:`Progress`."""
        return Progress(self, prefix, from_dict, keep_complete=keep_complete)


class Progress:
    """The saved progress of one kind of measurement, one file per fingerprint.

    ``load(fingerprint)`` returns the saved state (``from_dict`` of the file) or None, also when
    ``from_dict`` rejects the file; ``save(state)`` writes it. A complete state
    (``n_done >= n_total``) is forgotten, unless ``keep_complete``: then it stays until
    :meth:`clear`, so a run interrupted later on takes it up again instead of measuring anew
    (the caller clears once its whole run is through). A folder that cannot be written turns
    saving off with one warning: the measurement goes on, only resuming is lost.
    """

    def __init__(self, store: JsonCheckpoints, prefix: str,
                 from_dict: Callable[[dict[str, Any]], Any], *,
                 keep_complete: bool = False) -> None:
        self.store, self.prefix, self.from_dict = store, prefix, from_dict
        self.keep_complete = keep_complete
        self.saved: set[str] = set()
        self.disabled = ""

    def name(self, fingerprint: str) -> str:
        """The checkpoint name of ``fingerprint``."""
        return f"{self.prefix}-{fingerprint}"

    def load(self, fingerprint: str) -> Any:
        """The saved state of ``fingerprint``, or None."""
        data = self.store.load(self.name(fingerprint))
        if data is None:
            return None
        try:
            state = self.from_dict(data)
        except (BenchError, ValueError, TypeError, KeyError):  # unreadable: measure again
            return None
        self.saved.add(self.name(fingerprint))
        return state

    def save(self, state: Any) -> None:
        """Keep ``state`` (a complete one only with ``keep_complete``)."""
        if self.disabled:
            return
        name = self.name(state.fingerprint)
        if state.n_done >= state.n_total and not self.keep_complete:
            self.store.remove(name)
            self.saved.discard(name)
            return
        try:
            self.store.save(name, state.to_dict())
        except ConfigError as exc:
            self.disabled = str(exc)
            warnings.warn(f"checkpoints are off for this run: {exc}", RuntimeWarning,
                          stacklevel=2)
            return
        self.saved.add(name)

    def clear(self) -> None:
        """Forget every state this object saved or loaded."""
        for name in sorted(self.saved):
            self.store.remove(name)
        self.saved.clear()
