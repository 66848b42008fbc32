"""Files written whole or not at all, and output folders checked before work starts."""

from __future__ import annotations

import fcntl
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
        if out.exists() and not out.is_dir():
            raise PPDistillError(f"--out {out} is a file; give a folder path")
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


FINISHED_MARKER = "results.json"
"""The file whose presence means a folder holds a finished run (``distill``, ``quickstart``)."""

LOCK_NAME = ".ppdistill.lock"


def _existing_ancestor(path: Path) -> Path:
    for folder in (path, *path.parents):
        if folder.exists():
            return folder
    return Path.cwd()


def check_writable(path: Path, what: str) -> None:
    """Raise unless a file can be created in ``path`` (a folder) or, if it does not exist yet, in
    its nearest existing parent: checked by creating one, before any work.

    :param path: the folder that will be written into
    :param what: the option it came from, for the message (``"--out runs/x"``)
    """
    folder = _existing_ancestor(Path(path))
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise PPDistillError(
            f"{what}: cannot write into {folder} ({exc.strerror}); choose another place"
        ) from exc


def check_out_folder(out: Path, force: bool = False, what: str = "--out") -> None:
    """Check an output folder before any work: a folder (or creatable as one), writable, and not
    holding a finished run unless ``force``.

    :param out: the output folder
    :param force: a finished run in it may be replaced
    :param what: the option, for messages
    """
    out = Path(out)
    if out.is_symlink() and not out.exists():
        raise PPDistillError(
            f"{what} {out} is a link to {os.readlink(out)}, which does not exist; give a folder"
        )
    if out.exists() and not out.is_dir():
        raise PPDistillError(f"{what} {out} is a file; give a folder path")
    if (out / FINISHED_MARKER).exists() and not force:
        raise PPDistillError(
            f"{what} {out} holds a finished run ({FINISHED_MARKER}); choose another folder, "
            "or pass --force to replace it"
        )
    check_writable(out, f"{what} {out}")


def check_out_file(path: Path, force: bool = False, what: str = "--out") -> None:
    """Check a file that will be written, before any work: not a folder, its folder writable,
    and not already there unless ``force``.

    :param path: the file
    :param force: an existing file may be replaced
    :param what: the option, for messages
    """
    path = Path(path)
    if path.is_dir():
        raise PPDistillError(f"{what} {path} is a folder; give the path of the file to write")
    if path.is_symlink() and not path.exists():
        raise PPDistillError(f"{what} {path} is a link to {os.readlink(path)}, which does not exist")
    if path.exists() and not force:
        raise PPDistillError(f"{what} {path} exists; choose another path, or pass --force to replace it")
    check_writable(path.parent, f"{what} {path}")


class FolderLock:
    """An exclusive lock on an output folder while a run writes into it (``fcntl.flock`` on a
    lock file inside it, released when the process ends, even killed).

    :param folder: the output folder (created if missing)
    :param what: the option, for messages
    """

    def __init__(self, folder: Path, what: str = "--out") -> None:
        self.folder, self.what = Path(folder), what
        self._fd: int | None = None

    def __enter__(self) -> FolderLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise PPDistillError(
                f"{self.what} {self.folder} is in use by another run (process {holder}); "
                "wait for it to finish, or choose another folder"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            (self.folder / LOCK_NAME).unlink(missing_ok=True)
            os.close(self._fd)  # closing releases the lock
            self._fd = None
