"""User-facing errors: one line naming the file, the field and what was expected."""

from __future__ import annotations


class CaseError(Exception):
    """A mistake in the user's input. The CLI prints `str(error)` and exits with status 2."""

    def __init__(self, source: str, field: str, expected: str) -> None:
        self.source = source
        self.field = field
        self.expected = expected
        where = f"{source}: {field}" if field else source
        super().__init__(f"{where}: {expected}")
