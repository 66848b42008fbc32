"""Output locations are checked before any work; a folder in use is locked."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ppdistill.core.errors import PPDistillError
from ppdistill.core.files import (
    LOCK_NAME,
    FolderLock,
    check_out_file,
    check_out_folder,
    check_writable,
)

UNWRITABLE = "/sys/ppdistill-test"  # not writable, even for root


def test_a_finished_run_is_kept_unless_forced(tmp_path):
    (tmp_path / "results.json").write_text("{}")
    with pytest.raises(PPDistillError, match=r"holds a finished run .*--force"):
        check_out_folder(tmp_path)
    check_out_folder(tmp_path, force=True)
    check_out_folder(tmp_path / "new")  # a folder to be made


def test_a_file_a_dangling_link_and_an_unwritable_place_are_refused(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(PPDistillError, match="is a file"):
        check_out_folder(tmp_path / "f")
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    with pytest.raises(PPDistillError, match=r"is a link to .*nowhere, which does not exist"):
        check_out_folder(tmp_path / "link")
    with pytest.raises(PPDistillError, match="cannot write into /sys"):
        check_out_folder(UNWRITABLE)
    with pytest.raises(PPDistillError, match="cannot write into /sys"):
        check_writable(UNWRITABLE, "--tensorboard")


def test_a_file_to_write_must_not_be_a_folder_nor_exist_unless_forced(tmp_path):
    with pytest.raises(PPDistillError, match="is a folder"):
        check_out_file(tmp_path)
    target = tmp_path / "t.zip"
    check_out_file(target)
    target.write_bytes(b"")
    with pytest.raises(PPDistillError, match=r"exists; .*--force"):
        check_out_file(target)
    check_out_file(target, force=True)
    with pytest.raises(PPDistillError, match="cannot write into /sys"):
        check_out_file(f"{UNWRITABLE}/x.json")


def test_a_locked_folder_refuses_a_second_run_and_is_free_again_after(tmp_path):
    with FolderLock(tmp_path / "run"):
        assert (tmp_path / "run" / LOCK_NAME).read_text() == str(os.getpid())
        # another process, as a second `ppdistill distill` into the same --out would be
        code = (
            "import sys; from ppdistill.core.files import FolderLock\n"
            "try:\n    FolderLock(sys.argv[1]).__enter__()\n"
            "except Exception as exc:\n    print(exc); sys.exit(3)\n"
        )
        proc = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path / "run")], capture_output=True, text=True
        )
        assert proc.returncode == 3 and f"in use by another run (process {os.getpid()})" in proc.stdout
    assert not (tmp_path / "run" / LOCK_NAME).exists()
    with FolderLock(tmp_path / "run"):  # free again
        pass


def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path):
    folder = tmp_path / "run"
    code = (
        "import os, sys; from ppdistill.core.files import FolderLock\n"
        "FolderLock(sys.argv[1]).__enter__(); os._exit(9)"
    )
    subprocess.run([sys.executable, "-c", code, str(folder)], check=False)
    assert (folder / LOCK_NAME).exists()  # the file stays; its lock went with the process
    with FolderLock(folder):
        pass
