"""docs/extending.md's fault-model and protection examples run, and what they register keeps
its contract: the docs' code is tested like any plugin."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

from trustbench import registry
from trustbench.faults import contract

DOC = Path(__file__).resolve().parents[3] / "docs" / "extending.md"

#: Section heading -> the plugin kinds its examples register.
SECTIONS = {"A new fault model": "fault", "A new protection": "protection"}


def _section(text: str, title: str) -> str:
    """The text of ``## title`` up to the next ``## `` heading."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"docs/extending.md has no section '## {title}'"
    return match.group(1)


def python_blocks(title: str) -> list[str]:
    """The fenced ```python blocks of one section of docs/extending.md, in order."""
    return re.findall(r"^```python\n(.*?)^```", _section(DOC.read_text(), title), re.S | re.M)


@pytest.mark.parametrize(("title", "kind"), SECTIONS.items())
def test_section_examples_run_and_keep_the_contract(title: str, kind: str) -> None:
    blocks = python_blocks(title)
    assert blocks, f"no python example under '## {title}'"
    name = f"docs_example_{kind}"
    module = types.ModuleType(name)
    module.__file__ = str(DOC)
    before = set(registry.names(kind))
    sys.modules[name] = module
    new: list[str] = []
    try:
        for i, block in enumerate(blocks):
            code = compile(block, f"{DOC}:{title} (python block {i + 1})", "exec")
            exec(code, module.__dict__)
            if i == 0:
                new = sorted(set(registry.names(kind)) - before)
                assert new, f"the first example under '## {title}' registers no {kind} plugin"
        for plugin in new:
            cls = registry.get(kind, plugin)
            assert cls.__module__ == name
            outcome = contract.check_plugin(cls)
            assert all(reason for reason in outcome.values() if reason is not None)
    finally:
        for plugin in new:
            registry.unregister(kind, plugin)
        sys.modules.pop(name, None)


def test_the_fault_model_example_opts_out_of_int8_with_its_reason() -> None:
    """Without its opt-out, the example would fail the int8 check (it flips exponent bits)."""
    first = python_blocks("A new fault model")[0]
    assert 'contract_opt_out = {"int8": "flips exponent bits; int8 words have none"}' in first
    assert "profiles = (" in first
    namespace = {"__name__": "docs_example_no_opt_out"}
    try:
        exec(compile(first.replace("    contract_opt_out", "    _ignored"), "doc", "exec"),
             namespace)
        with pytest.raises(AssertionError, match="opt out with contract_opt_out"):
            contract.run_check(namespace["ExponentPairFlip"], "int8")
    finally:
        registry.unregister("fault", "exponent_pair_flip")
