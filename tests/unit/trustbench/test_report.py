"""Tests of trustbench.report: Markdown/HTML rendering by value shape, plots, escaping, errors."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any

import pytest

from trustbench.errors import ConfigError, ScorecardError
from trustbench.report import format_estimate, format_value, render_report
from trustbench.scorecard import Check, Gate, Metric, PillarResult, Scorecard

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_card(**over: Any) -> Scorecard:
    """A realistic scorecard: all four value shapes, a skipped pillar, a failed check, gates."""
    run = {
        "id": "a1b2c3d4e5f6", "started": "2026-11-20T10:00:00Z",
        "finished": "2026-11-20T10:01:05Z", "profile": "smoke", "division": "closed", "seed": 0,
        "trustbench_version": "0.1.0", "argv": ["pytest", "suites/", "--bench-profile", "smoke"],
        "status": "valid", "status_reason": None, "device": "cpu",
    }
    run.update(over.pop("run", {}))
    system = {
        "id": "cpu-amd-epyc-2c", "accelerator_model_name": "none", "accelerators_per_node": 0,
        "host_processor_model_name": "AMD EPYC 7B13", "host_processor_core_count": 2,
        "host_memory_capacity": "8 GB", "operating_system": "Linux 6.1", "jetson": None,
        "software": {"python": "3.11.2", "torch": "2.14.1"},
    }
    system.update(over.pop("system", {}))
    task = {
        "name": "digits-cnn",
        "model": {"name": over.pop("model_name", "digits-cnn"), "source": "builtin",
                  "parameters": 5418, "sha256": "ab" * 32},
        "dataset": {"name": "sklearn-digits", "source": "embedded", "split": "test", "n": 360,
                    "sha256": "cd" * 32},
    }
    metrics = [
        Metric("utility", "accuracy", 0.9531, "fraction", higher_is_better=True,
               ci=[0.9382, 0.9647], n=360, test="suites/test_utility.py::test_accuracy",
               score_weight=1.0),
        Metric("utility", "latency_ms", 1.2345, "ms", higher_is_better=False, n=200,
               hardware_dependent=True, params={"batch_size": 1}),
        Metric("utility", "parameters", 5418, "count"),
        Metric("robustness", "robust_accuracy", 0.41, "fraction", higher_is_better=True,
               ci=[0.36, 0.46], n=360, params={"attack": "pgd", "eps": 0.1}, score_weight=1.0),
        Metric("robustness", "robust_accuracy_vs_eps",
               {"x": [0.0, 0.05, 0.1, 0.2, 0.3], "y": [0.953, 0.71, 0.41, 0.12, 0.02],
                "x_label": "eps (L-inf)", "y_label": "robust accuracy",
                "ci": [[0.938, 0.965], [0.66, 0.75], [0.36, 0.46], [0.09, 0.16], [0.01, 0.04]],
                "series": {"fgsm": {"x": [0.0, 0.05, 0.1, 0.2, 0.3],
                                    "y": [0.953, 0.78, 0.55, 0.30, 0.15]}}},
               "fraction", higher_is_better=True, n=360),
        Metric("fairness", "accuracy_by_group",
               {"rows": [{"group": "female", "value": 0.88, "ci": [0.82, 0.92], "n": 140},
                         {"group": "male", "value": 0.93, "ci": [0.90, 0.96], "n": 200},
                         {"group": "other", "value": 0.70, "ci": None, "n": 20}]},
               "fraction", higher_is_better=True),
        Metric("faults", "sdc_rate", 0.012, "fraction", higher_is_better=False,
               ci=[0.008, 0.018], n=2401),
        Metric("faults", "sdc_rate_by_layer_bit",
               {"rows": ["conv1", "conv2", "fc"], "cols": ["31", "30", "23", "0"],
                "values": [[0.0, 0.61, 0.02, 0.0], [0.0, 0.55, None, 0.0],
                           [0.01, 0.72, 0.03, 0.0]],
                "row_label": "layer", "col_label": "bit"},
               "fraction", higher_is_better=False, n=2401),
    ]
    pillars = {
        "utility": PillarResult("measured", score=95.31),
        "robustness": PillarResult("measured", score=41.0),
        "fairness": PillarResult("measured"),
        "faults": PillarResult("measured", score=98.8),
        "privacy": PillarResult("skipped", reason="opacus is not installed"),
    }
    checks = [
        Check("gradient_masking.blackbox_beats_whitebox", True, "square 0.52 >= pgd 0.41",
              pillar="robustness"),
        Check("four_fifths_rule", False, "selection-rate ratio 0.71 < 0.8", pillar="fairness"),
    ]
    gates = [
        Gate("utility.accuracy >= 0.9", True, "0.953 >= 0.9"),
        Gate("fairness.demographic_parity_difference <= 0.1", False, "0.14 > 0.1"),
    ]
    card = Scorecard(run=run, system=system, task=task, metrics=metrics, pillars=pillars,
                     gates=gates, checks=checks)
    for k, v in over.items():
        setattr(card, k, v)
    return card


@pytest.fixture
def card_file(tmp_path: Path) -> Path:
    return make_card().write(tmp_path / "cards" / "20261120T100000Z-a1b2c3d4e5f6.json")


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC
    return struct.unpack(">II", data[16:24])


def test_render_writes_markdown_html_and_one_plot_per_non_scalar_metric(
        card_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    paths = render_report(card_file, out)
    stem = card_file.stem
    assert paths == {"md": out / f"{stem}.md", "html": out / f"{stem}.html",
                     "plots": out / f"{stem}-plots"}
    pngs = sorted(paths["plots"].glob("*.png"))
    assert len(pngs) == 3  # series, table, matrix; scalars go into tables
    md = paths["md"].read_text(encoding="utf-8")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(links) == 3
    for link in links:
        assert not link.startswith("/") and "://" not in link
        assert (out / link).is_file()
    for p in pngs:
        width, height = png_size(p.read_bytes())
        assert 400 <= width <= 1400 and 200 <= height <= 1200
    html = paths["html"].read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == 3
    assert 'src="http' not in html and "<link" not in html and "<script" not in html
    assert "@import" not in html and "url(" not in html


def test_markdown_has_summary_overview_metric_rows_checks_and_gates(
        card_file: Path, tmp_path: Path) -> None:
    md = render_report(card_file, tmp_path, formats=["md"])["md"].read_text(encoding="utf-8")
    assert md.startswith("# trustbench report: digits-cnn on cpu-amd-epyc-2c\n")
    assert "profile **smoke**" in md and "division **closed**" in md and "**VALID**" in md
    assert "- **Model:** digits-cnn (source builtin, 5,418 parameters)" in md
    assert "`abababababab`" in md and "ab" * 7 not in md  # sha256 shortened to 12 characters
    assert "n = 360" in md and "AMD EPYC 7B13 (2 cores)" in md and "torch 2.14.1" in md
    assert "| **utility** | **measured** | 95.3 |  |" in md
    assert "| **privacy** | **skipped** | — | opacus is not installed |" in md
    assert "| `accuracy` | 0.953 [0.938, 0.965] | fraction | 360 | ↑ higher | no |  |" in md
    assert "| `latency_ms` | 1.234 | ms | 200 | ↓ lower | yes (hw) | batch_size=1 |" in md
    assert "| `parameters` | 5418 | count | — |" in md
    assert "| female | 0.880 [0.820, 0.920] | 140 |" in md
    assert "| other | 0.700 | 20 |" in md
    assert "| **FAIL** | fairness | `four_fifths_rule` | selection-rate ratio 0.71 &lt; 0.8 |" in md
    assert "| **PASS** | robustness | `gradient_masking.blackbox_beats_whitebox` |" in md
    assert "| **FAIL** | `fairness.demographic_parity_difference <= 0.1` | 0.14 &gt; 0.1 |" in md
    assert "1 of 2 checks failed, 1 of 2 gates failed" in md
    # sections in order: overview before pillars, checks and gates at the end
    order = [md.index(s) for s in ("## Pillars", "## utility", "## robustness",
                                   "## privacy — skipped", "## Checks", "## Gates")]
    assert order == sorted(order)
    assert "## privacy — skipped\n\n**Reason:** opacus is not installed\n\nNo metrics" in md


def test_incomplete_run_status_is_prominent_with_its_reason(tmp_path: Path) -> None:
    card = make_card(run={"status": "incomplete", "status_reason": "interrupted (SIGINT)"})
    path = card.write(tmp_path / "run.json")
    paths = render_report(path, tmp_path / "r")
    md = paths["md"].read_text(encoding="utf-8")
    callout = next(line for line in md.splitlines() if line.startswith("> "))
    assert "INCOMPLETE" in callout and "interrupted (SIGINT)" in callout
    assert md.index(callout) < md.index("## Run, system and task")
    html = paths["html"].read_text(encoding="utf-8")
    assert re.search(r'<div class="callout bad"><strong>This run is INCOMPLETE: </strong>'
                     r"interrupted \(SIGINT\)", html)


def test_strings_from_the_file_are_escaped(tmp_path: Path) -> None:
    evil = "<script>alert('x')</script>"
    card = make_card(model_name=evil, system={"id": "<b>box</b>|x"})
    card.metrics.append(Metric("fairness", "rate_by_group",
                               {"rows": [{"group": "<img src=x onerror=1>", "value": 0.5,
                                          "ci": [0.4, 0.6], "n": 10}]}, "fraction"))
    card.checks.append(Check("<i>c</i>", False, "a | b & <c>", pillar="x"))
    paths = render_report(card.write(tmp_path / "evil.json"), tmp_path / "r")
    html = paths["html"].read_text(encoding="utf-8")
    md = paths["md"].read_text(encoding="utf-8")
    for raw in ("<script>", "<img src=x", "<b>box", "<i>c</i>"):
        assert raw not in html and raw not in md
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert "&lt;script&gt;" in md
    assert "a \\| b &amp; &lt;c&gt;" in md  # a pipe cannot break the table
    assert html.count("data:image/png;base64,") == 4


def test_none_values_null_intervals_and_malformed_values_render(tmp_path: Path) -> None:
    card = make_card()
    card.metrics += [
        Metric("extra", "not_measured", None, "fraction", ci=None),
        Metric("extra", "half_ci", 0.5, "fraction", ci=[0.4, 0.6]),
        Metric("extra", "gappy", {"x": [1, 2, 3], "y": [0.1, None, 0.3],
                                  "ci": [[0.0, 0.2], None, [None, 0.4]]}, "fraction"),
        Metric("extra", "empty_series", {"x": [], "y": []}, "s"),
        Metric("extra", "categorical", {"x": ["gauss", "shot", "blur"], "y": [0.8, 0.7, 0.75]},
               "fraction"),
        Metric("extra", "no_values", {"rows": [{"group": "a", "value": None, "ci": None,
                                                "n": None}]}, "fraction"),
        Metric("extra", "all_missing", {"rows": ["r"], "cols": ["c"], "values": [[None]]}, "s"),
        Metric("extra", "broken", {"x": [1, 2, 3], "y": [1]}, "s"),  # lengths differ
    ]
    card.metrics[-7].ci = [0.4, None]  # the schema allows a null bound; Metric() does not
    paths = render_report(card, tmp_path / "r")
    md = paths["md"].read_text(encoding="utf-8")
    assert "| `not_measured` | — | fraction | — |" in md
    assert "| `half_ci` | 0.500 [0.400, ?] |" in md
    assert "**Plot not drawn:** extra.broken: its 'x' and 'y' must be lists" in md
    assert len(list(paths["plots"].glob("*.png"))) == 3 + 5  # every drawable non-scalar
    assert paths["html"].read_text(encoding="utf-8").count("data:image/png;base64,") == 8


def test_rendering_is_deterministic(card_file: Path, tmp_path: Path) -> None:
    a = render_report(card_file, tmp_path / "a")
    b = render_report(card_file, tmp_path / "b")
    assert a["html"].read_bytes() == b["html"].read_bytes()
    assert a["md"].read_bytes() == b["md"].read_bytes()
    pa = sorted(a["plots"].glob("*.png"))
    assert [p.read_bytes() for p in pa] == [(b["plots"] / p.name).read_bytes() for p in pa]
    assert b"Software" not in pa[0].read_bytes() and b"matplotlib" not in pa[0].read_bytes()


def test_formats_are_selectable_and_checked(card_file: Path, tmp_path: Path) -> None:
    only_html = render_report(card_file, tmp_path / "h", formats="html")
    assert list(only_html) == ["html"]
    assert not list((tmp_path / "h").glob("*-plots"))  # HTML embeds its plots
    assert set(render_report(card_file, tmp_path / "m", formats="md")) == {"md", "plots"}
    assert set(render_report(card_file, tmp_path / "b", formats="md, html")) == {
        "md", "html", "plots"}
    with pytest.raises(ConfigError, match="accepted formats are md, html"):
        render_report(card_file, tmp_path / "x", formats=["pdf"])
    with pytest.raises(ConfigError):
        render_report(card_file, tmp_path / "x", formats="")


def test_rerendering_replaces_stale_plots(card_file: Path, tmp_path: Path) -> None:
    paths = render_report(card_file, tmp_path)
    stale = paths["plots"] / "99-old-plot.png"
    stale.write_bytes(PNG_MAGIC)
    render_report(card_file, tmp_path)
    assert not stale.exists() and len(list(paths["plots"].glob("*.png"))) == 3


def test_scorecard_object_renders_with_default_stem(tmp_path: Path) -> None:
    paths = render_report(make_card(), tmp_path, formats=("md",))
    assert paths["md"].name == "digits-cnn-a1b2c3d4e5f6.md"
    assert paths["plots"].name == "digits-cnn-a1b2c3d4e5f6-plots"


@pytest.mark.parametrize("content, match", [
    ("{not json", "is not valid JSON"),
    (json.dumps({"hello": "world"}), "not a trustbench scorecard"),
    (json.dumps({"schema": "trustbench.scorecard/1", "run": {}}), "not a valid trustbench"),
])
def test_corrupt_or_foreign_file_raises_scorecard_error(
        tmp_path: Path, content: str, match: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content, encoding="utf-8")
    with pytest.raises(ScorecardError, match=match):
        render_report(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ScorecardError, match="no such scorecard file"):
        render_report(tmp_path / "missing.json", tmp_path / "out")


@pytest.mark.parametrize("value, text", [
    (0.95312, "0.953"), (0.5, "0.500"), (12.3456, "12.35"), (1234.56, "1235"),
    (123456.7, "123457"), (0.0012345, "0.00123"), (2.5e-6, "2.50e-06"), (3.2e9, "3.20e+09"),
    (0.0, "0"), (21840, "21840"), (None, "—"), (float("nan"), "—"), (-0.25, "-0.250"),
])
def test_format_value(value: Any, text: str) -> None:
    assert format_value(value) == text


def test_format_estimate_keeps_distinct_numbers_distinct() -> None:
    assert format_estimate(0.9531, [0.9382, 0.9647]) == "0.953 [0.938, 0.965]"
    assert format_estimate(0.9995, [0.999, 0.9998]) == "0.9995 [0.9990, 0.9998]"
    assert format_estimate(0.5, None) == "0.500"
    assert format_estimate(0.5, [None, None]) == "0.500"
    assert format_estimate(12.0, [11.5, 12.5]) == "12.00 [11.50, 12.50]"
