"""Private folders: every folder timerd creates is 0700, whatever the process umask says."""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_DIR_MODE = 0o700


def make_private_dirs(path: Path) -> None:
    """Create `path` and each missing parent with mode 0700; leave existing folders as they are.

    `Path.mkdir(parents=True)` gives the parents it creates the umask's mode (0777 under
    umask 000), and `mode=` itself is filtered by the umask, so each new folder is made
    then set to 0700 explicitly. Raises OSError like `mkdir` (FileExistsError: not a folder).
    """
    missing: list[Path] = []
    folder = path
    while not folder.is_dir():
        missing.append(folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, PRIVATE_DIR_MODE)
        except FileExistsError:
            if folder.is_dir():  # made by someone else meanwhile: theirs, keep its mode
                continue
            raise
        os.chmod(folder, PRIVATE_DIR_MODE)
