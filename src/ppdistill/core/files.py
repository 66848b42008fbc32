"""Files written whole or not at all, and output folders checked before work starts."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ppdistill.core.errors import PPDistillError


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` is always either the old file or the new one.

    The bytes go to a uniquely named temporary file in the same folder (so two writers never
    share one), are flushed to disk, and the file is renamed over ``path``; the folder is
    created if missing. The file gets the usual mode (0666 less the umask), not mkstemp's 0600.

    :param path: destination
    :param data: contents
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


class StagedOutput:
    """Write into a temporary sibling folder; move the files into ``out`` on commit.

    :param out: the final output folder (created if missing; must not be a file)
    """

    def __init__(self, out: Path) -> None:
        out = Path(out)
        check_out_folder(out)
        self.out = out
        out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))

    def path(self, name: str) -> Path:
        return self.tmp / name

    def commit(self) -> None:
        if not self.out.exists():
            os.replace(self.tmp, self.out)
            return
        for item in self.tmp.iterdir():
            target = self.out / item.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(item, target)
        self.tmp.rmdir()

    def discard(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def check_out_folder(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise PPDistillError(f"--out {out} is a file; give a folder path")
