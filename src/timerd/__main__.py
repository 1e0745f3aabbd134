"""Allow `python -m timerd`."""

from timerd.cli import main

main()
