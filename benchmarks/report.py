"""Writing a benchmark's section into benchmarks/README.md, replacing its previous numbers.

Each benchmark owns one ``## `` section, found by its heading; the other sections stay as
they are, so benchmarks can be re-run one at a time.
"""

from __future__ import annotations

import sys
from pathlib import Path

README = Path(__file__).resolve().parent / "README.md"
_PREAMBLE = "# Benchmarks\n\nEach section: what is measured, the command, the numbers.\n"


def command_line(script: str) -> str:
    """The command that reproduces this run, for the section's code block."""
    return " ".join([f"PYTHONPATH=. python benchmarks/{script}", *sys.argv[1:]])


def write_section(heading: str, lines: list[str], path: Path = README) -> None:
    """Replace (or append) the section that starts with ``heading``."""
    text = path.read_text() if path.exists() else _PREAMBLE
    section = "\n".join([heading, "", *lines, ""])
    if heading in text:
        start = text.index(heading)
        nxt = text.find("\n## ", start + len(heading))
        text = text[:start] + section + (text[nxt + 1 :] if nxt != -1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n")
