"""The Python examples in the README and docs/ run as written (from the repository's root)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
EXAMPLES = [
    pytest.param(block, id=f"{doc.name}[{i}]")
    for doc in DOCS
    for i, block in enumerate(PYTHON_BLOCK.findall(doc.read_text("utf-8")))
]


def test_the_readme_has_a_python_example() -> None:
    assert any("README.md" in str(p.id) for p in EXAMPLES)


@pytest.mark.parametrize("code", EXAMPLES)
def test_python_example_runs(code: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    # as a script run as such: `if __name__ == "__main__":` blocks run
    exec(compile(code, "<doc example>", "exec"), {"__name__": "__main__"})
