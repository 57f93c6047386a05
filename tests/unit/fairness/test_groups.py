"""Group labels from sensitive columns: features alone and crossed, missing, bad columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trustbench.errors import BenchError
from trustbench.fairness.errors import SensitiveColumnError
from trustbench.fairness.groups import MISSING_GROUP, build_groups, metric_key


def test_each_feature_and_full_intersection():
    df = pd.DataFrame({"colour": ["A", "B", "A", "B"], "sex": ["F", "F", "M", "M"]})
    sg = build_groups(df, min_group_size=1)
    assert [g.key for g in sg.groupings] == ["colour", "sex", "colour-sex"]
    cross = sg.grouping("colour-sex")
    assert cross.groups == ("A & F", "A & M", "B & F", "B & M")
    assert list(cross.labels) == ["A & F", "B & F", "A & M", "B & M"]
    assert sum(cross.sizes.values()) == 4
    assert [g.key for g in sg.single] == ["colour", "sex"]


@pytest.mark.parametrize(("mode", "keys"), [
    ("none", ["a", "b", "c"]),
    ("full", ["a", "b", "c", "a-b-c"]),
    ("all", ["a", "b", "c", "a-b", "a-c", "b-c", "a-b-c"]),
])
def test_intersection_modes(mode, keys):
    df = pd.DataFrame({k: ["x", "y"] * 3 for k in "abc"})
    assert [g.key for g in build_groups(df, intersections=mode).groupings] == keys


def test_missing_values_are_their_own_group_and_reported():
    df = pd.DataFrame({"sex": ["F", None, "M", np.nan, "M"]})
    sg = build_groups(df, min_group_size=1)
    g = sg.grouping("sex")
    assert g.groups == ("F", "M", MISSING_GROUP)
    assert g.sizes[MISSING_GROUP] == 2
    assert sg.missing == {"sex": 2}
    assert any("missing" in note for note in sg.notes)


def test_small_groups_flagged_not_dropped():
    df = pd.DataFrame({"g": ["a"] * 40 + ["b"] * 5})
    sg = build_groups(df, min_group_size=30)
    assert sg.grouping("g").groups == ("a", "b")
    assert sg.small_groups() == [("g", "b", 5)]


def test_categorical_order_kept():
    cat = pd.Categorical(["45+", "<25", "25-44", "<25"], categories=["<25", "25-44", "45+"])
    sg = build_groups(pd.DataFrame({"age": cat}))
    assert sg.grouping("age").groups == ("<25", "25-44", "45+")


def test_unknown_column_lists_the_columns():
    df = pd.DataFrame({"colour": ["A", "B"], "sex": ["F", "M"]})
    with pytest.raises(SensitiveColumnError, match=r"'race'.*colour, sex") as exc:
        build_groups(df, ["race"])
    assert isinstance(exc.value, BenchError)


def test_single_group_column_is_an_error():
    df = pd.DataFrame({"sex": ["F", "F", None]})
    with pytest.raises(SensitiveColumnError, match=r"only the group 'F' \(plus 1 missing"):
        build_groups(df)


def test_continuous_column_is_an_error():
    with pytest.raises(SensitiveColumnError, match="continuous"):
        build_groups(pd.DataFrame({"age": np.arange(500)}))


@pytest.mark.parametrize("bad", [[1, 2, 3], pd.DataFrame(), "colour"])
def test_bad_tables(bad):
    with pytest.raises(SensitiveColumnError):
        build_groups(bad)


def test_series_and_dict_inputs():
    s = pd.Series(["a", "b", "a"], name="grp")
    assert build_groups(s).features == ("grp",)
    assert build_groups({"k": [1, 2, 1]}).grouping("k").groups == ("1", "2")


def test_bad_mode_and_size():
    df = pd.DataFrame({"a": ["x", "y"]})
    with pytest.raises(SensitiveColumnError, match="intersections"):
        build_groups(df, intersections="pairs")
    with pytest.raises(SensitiveColumnError, match="min_group_size"):
        build_groups(df, min_group_size=0)


def test_metric_key_is_gate_safe():
    assert metric_key(["age group", "sex/gender"]) == "age_group-sex_gender"
