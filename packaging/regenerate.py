"""Regenerate the example service files from timerd.cli.unit_files: `python packaging/regenerate.py`.

tests/test_servicefiles.py fails when a file here differs from what this renders.
"""

from __future__ import annotations

from pathlib import Path

from timerd.cli import unit_files as sf

HERE = Path(__file__).resolve().parent
EXE = Path("/usr/local/bin/timerd")
MAC_HOME = Path("/Users/you")
LINUX_HOME = Path("/home/you")


def render_all() -> dict[str, str]:
    """Return each example file's name and text, rendered for the placeholder paths."""
    mac_db = MAC_HOME / "Library" / "Application Support" / "timerd" / "timerd.db"
    user_db = LINUX_HOME / ".local" / "share" / "timerd" / "timerd.db"
    return {
        "dev.timerd.plist": sf.render_launchd_plist(EXE, mac_db, home=MAC_HOME),
        "timerd.service": sf.render_systemd_system_unit(EXE),
        "timerd-user.service": sf.render_systemd_user_unit(EXE, user_db),
    }


def main() -> None:
    """Write every example file next to this script."""
    for name, text in render_all().items():
        (HERE / name).write_text(text, encoding="utf-8")
        print(f"wrote: {HERE / name}")


if __name__ == "__main__":
    main()
