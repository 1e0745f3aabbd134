"""Allow `python -m timerd`."""

from timerd.cli.group import main

main()
