"""CSV cells made inert for spreadsheets: one helper for every export (issue 25, finding 8).

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read as a
formula by Excel, LibreOffice and Google Sheets (CSV/formula injection, OWASP). Every CSV the
relay writes (conversation records, the usage rollup) passes each cell through ``safe_cell``,
which puts a ``'`` in front of such a cell: the spreadsheet shows the text, runs nothing.
"""

from __future__ import annotations

from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> str:
    """What people typed, said or chose as a name, made inert for spreadsheets."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def safe_row(values: Any) -> list[str]:
    return [safe_cell(value) for value in values]
