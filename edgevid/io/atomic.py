"""Helpers for write-to-temp-then-rename, shared by every writer of files in edgevid."""
from __future__ import annotations

import os


def give_default_mode(path: str | os.PathLike) -> None:
    """Give a temp file the mode a plainly created file would get (0666 minus the umask).

    `tempfile.mkstemp` creates files readable by their owner only, and the final rename keeps
    that mode; shipped weights and written videos must be readable like any other file.
    """
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)
