"""The strict YAML reader: YAML 1.2 booleans and numbers, no duplicate keys, bounded depth."""

from __future__ import annotations

import pytest

from cryoplan.yamlio import MAX_DEPTH, YamlError, load_yaml


def test_numbers_and_booleans_are_read_the_yaml_1_2_way() -> None:
    data = load_yaml("a: 3.6e6\nb: 1e-3\nc: .5\nd: yes\ne: on\nf: true\ng: False\nh: 7\n")
    assert data == {
        "a": 3.6e6, "b": 1e-3, "c": 0.5, "d": "yes", "e": "on", "f": True, "g": False, "h": 7
    }  # fmt: skip


def test_a_key_given_twice_is_refused_with_both_places() -> None:
    with pytest.raises(YamlError) as error:
        load_yaml("grid:\n  spacing_mm: 1\n  spacing_mm: 2\n")
    assert error.value.where == "line 3, column 3"
    assert "duplicate key 'spacing_mm'" in error.value.problem
    assert "line 2, column 3" in error.value.problem


def test_merge_keys_may_be_overridden() -> None:
    data = load_yaml("base: &b {k: 1, c: 2}\nthing:\n  <<: *b\n  k: 3\n")
    assert data["thing"] == {"k": 3, "c": 2}


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 20_000])
def test_deep_nesting_is_refused_not_recursed(depth: int) -> None:
    with pytest.raises(YamlError, match="nested deeper"):
        load_yaml("[" * depth + "]" * depth)
    assert load_yaml("[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)) is not None
