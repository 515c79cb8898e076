"""The loop as a Ray job: ``ray job submit -- python -m train_jobs.flywheel --turns 1``.

The same as ``wow-ray flywheel run`` (every option of it is accepted here)."""

from __future__ import annotations

import sys

from wow_ray.cli import app


def main(argv: list[str] | None = None) -> None:
    app(["flywheel", "run", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    main()
