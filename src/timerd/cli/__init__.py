"""The `timerd` command: the click group and its commands, the HTTP client behind `--addr`,
and the launchd/systemd unit files. Commands call the daemon or read the store; no logic here.
"""

from timerd.cli.group import main

__all__ = ["main"]
