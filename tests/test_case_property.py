"""Property: any text given as a case file gives a Case or one line of error, nothing else.

Hypothesis writes YAML documents of every shape (mappings, lists, numbers including NaN and
infinities, booleans, text, nulls), some grafted into a valid case at random places, and raw
text; the loader must answer each with a `Case` or a single-line `CaseError` naming the
file, never another exception.
"""

from __future__ import annotations

import copy

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cryoplan.case import Case, load_case
from cryoplan.errors import CaseError

VALID = {
    "name": "property",
    "domain": {"box": {"size_mm": [30, 30, 40], "tissue": "gel"}},
    "grid": {"spacing_mm": 2.0},
    "probes": [{"model": "generic-17g", "tip_mm": [0, 0, -10], "entry_mm": [0, 0, 50]}],
    "protocol": [{"phase": "freeze", "duration_min": 1}],
    "sensors": [{"name": "s", "at_mm": [5, 0, 0]}],
}
KEYS = st.sampled_from(
    ["name", "domain", "box", "size_mm", "tissue", "grid", "spacing_mm", "probes", "model",
     "tip_mm", "entry_mm", "protocol", "phase", "duration_min", "sensors", "at_mm", "tissues",
     "gel", "latent_heat_j_m3", "conductivity_w_mk", "frozen", "unfrozen", "image", "file",
     "labels", "target", "planning", "x", ""]
)  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=12,
)
PLACES = ["domain", "box", "grid", "probes", 0, "protocol", "tip_mm", "size_mm", "sensors",
          "at_mm", "tissue"]  # fmt: skip
PATHS = st.lists(st.sampled_from(PLACES), max_size=3)


def graft(value: object, path: list) -> object:
    """VALID with `value` put at `path` (as far as the path exists)."""
    data = copy.deepcopy(VALID)
    node: object = data
    for i, key in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, dict) and isinstance(key, str):
            if last or key not in node:
                node[key] = value
                return data
            node = node[key]
        elif isinstance(node, list) and isinstance(key, int) and key < len(node):
            if last:
                node[key] = value
                return data
            node = node[key]
        else:
            return data
    return value if not path else data


def answer(tmp_path_factory, text: str) -> None:
    path = tmp_path_factory.mktemp("case") / "case.yaml"
    path.write_text(text, "utf-8", errors="surrogatepass")
    try:
        case = load_case(path)
    except CaseError as error:
        message = str(error)
        assert "\n" not in message
        assert message.startswith(str(path))
        return
    assert isinstance(case, Case)


def dump(data: object) -> str:
    try:
        return yaml.safe_dump(data, allow_unicode=True)
    except (yaml.YAMLError, ValueError, OverflowError):
        return repr(data)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=VALUES, path=PATHS)
def test_a_grafted_value_gives_a_case_or_one_line(tmp_path_factory, value, path) -> None:
    answer(tmp_path_factory, dump(graft(value, path)))


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(max_size=200))
def test_any_text_gives_a_case_or_one_line(tmp_path_factory, text) -> None:
    answer(tmp_path_factory, text)


def test_the_valid_case_is_valid(tmp_path_factory) -> None:
    """The graft's base is a Case (else every grafted example would pass as an error)."""
    path = tmp_path_factory.mktemp("case") / "case.yaml"
    path.write_text(dump(VALID), "utf-8")
    assert isinstance(load_case(path), Case)
