"""The endings table and docs/protocol.md say the same thing."""

from __future__ import annotations

import re
from pathlib import Path

from realtime.kernel import endings

PROTOCOL = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()


def documented_errors() -> dict[str, str]:
    """code → "no" or the close code, from the error table's rows."""
    rows = re.findall(r"^\| `([a-z_]+)` \| (no|yes \((\d{4})\)) \|", PROTOCOL, re.M)
    return {code: (close or "no") for code, _, close in rows}


def test_every_fatal_ending_is_documented_with_its_close_code():
    documented = documented_errors()
    for code, ending in endings.FATAL.items():
        assert documented.get(code) == str(ending.close_code), f"{code} in docs/protocol.md"


def test_every_fatal_code_in_the_document_is_an_ending():
    fatal_in_docs = {code for code, close in documented_errors().items() if close != "no"}
    assert fatal_in_docs == set(endings.FATAL)


def test_every_close_code_is_in_the_close_code_table():
    table = PROTOCOL.split("## Close codes", 1)[1]
    listed = {int(code) for code in re.findall(r"^\| (\d{4}) \|", table, re.M)}
    assert {e.close_code for e in endings.FATAL.values()} | {1000} <= listed
    assert listed <= {int(c) for c in endings.Close}
