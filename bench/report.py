"""Where every benchmark writes its figures: its own marked section of docs/benchmarks.md."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
_TITLE = "# Benchmarks\n\nFigures measured by the scripts in `bench/`; each rewrites only its own section.\n"


def write_section(name: str, section: str) -> Path:
    """Replace the section between ``<!-- name:start -->`` and ``<!-- name:end -->``, or append it."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = DOC.read_text() if DOC.exists() else _TITLE
    block = f"{start}\n{section}{end}"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.DOTALL)
    text = (
        pattern.sub(lambda _: block, text, count=1)
        if pattern.search(text)
        else f"{text.rstrip()}\n\n{block}\n"
    )
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(text)
    return DOC
