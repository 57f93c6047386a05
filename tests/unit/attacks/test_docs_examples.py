"""docs/extending.md's attack examples run as written, and the attack they define keeps its
contract and is measured like a built-in: the docs' code is tested like any plugin."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

from trustbench import registry
from trustbench.attacks.contract import check_attack

DOC = Path(__file__).resolve().parents[3] / "docs" / "extending.md"


def python_blocks(title: str) -> list[str]:
    """The fenced ```python blocks of ``## title`` in docs/extending.md, in order."""
    text = DOC.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"docs/extending.md has no section '## {title}'"
    return re.findall(r"^```python\n(.*?)^```", match.group(1), re.S | re.M)


def test_attack_section_examples_run_and_keep_the_contract(digits_model) -> None:
    blocks = python_blocks("A new adversarial attack")
    assert len(blocks) >= 3
    model, x, y = digits_model
    name = "docs_example_attack"
    module = types.ModuleType(name)
    module.__dict__["task"] = types.SimpleNamespace(model=model, x_test=x, y_test=y)
    sys.modules[name] = module
    try:
        for i, block in enumerate(blocks):
            exec(compile(block, f"{DOC} (attack example {i + 1})", "exec"), module.__dict__)
        cls = registry.get("attack", "mi-fgsm")
        assert cls.__module__ == name
        assert module.result.robust_accuracy <= module.result.clean_accuracy
        for norm in cls.norms:
            assert check_attack(cls, norm) == {}
        # the opt-out example is a valid declaration for the checks it names
        assert set(module.contract_opt_out) <= set(
            __import__("trustbench.attacks.contract", fromlist=["CHECKS"]).CHECKS)
    finally:
        registry.unregister("attack", "mi-fgsm")
        sys.modules.pop(name, None)
