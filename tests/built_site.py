"""A stand-in for the dashboard as `make website` builds it: index.html and content-hashed assets."""

from __future__ import annotations

from pathlib import Path

INDEX_MARKER = "<title>Cohort test dashboard</title>"
SCRIPT = "assets/index-3f9c1a2b.js"
STYLESHEET = "assets/index-8d7e6f5a.css"


def write_built_site(folder: Path) -> Path:
    """Write index.html, one script, one stylesheet and an unhashed file into ``folder``; returns it."""
    (folder / "assets").mkdir(parents=True, exist_ok=True)
    (folder / "index.html").write_text(
        f'<!doctype html><html><head>{INDEX_MARKER}<link rel="stylesheet" href="/{STYLESHEET}">'
        f'<script type="module" src="/{SCRIPT}"></script></head><body><div id="root"></div></body></html>'
    )
    (folder / SCRIPT).write_text("fetch('/config.json');\n")
    (folder / STYLESHEET).write_text("body { margin: 0; }\n")
    (folder / "favicon.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    return folder
