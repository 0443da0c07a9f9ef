"""``python -m soi``: the same as the ``soi`` command."""

from soi.cli.main import main

main()
