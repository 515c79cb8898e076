"""``python -m wow_ray.cli``: the same as the ``wow-ray`` command."""

from wow_ray.cli import main

main()
