"""RL Baselines3 Zoo run folders: the model zip, its config.yml / args.yml and vecnormalize.pkl.

Only regular files are read: a device, FIFO or socket where a model, ``args.yml`` or
``vecnormalize.pkl`` is expected is refused in one line, never opened (``/dev/zero``
reads without end, a FIFO blocks).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from ppdistill.core.errors import ModelLoadError
from ppdistill.teachers.sb3_zip import MODEL_ZIP, check_regular_file, read_regular_file

# An rl-zoo args.yml is a few KB.
MAX_ARGS_BYTES = 1 << 20


class _ZooArgsLoader(yaml.SafeLoader):
    """YAML's safe loader plus the one Python tag rl-zoo writes (an OrderedDict of pairs).

    Any other Python tag is an error: an ``args.yml`` never runs code.
    """


def _ordered_dict_pairs(loader: yaml.SafeLoader, node: yaml.Node) -> dict[Any, Any]:
    assert isinstance(node, yaml.SequenceNode)
    (pairs,) = loader.construct_sequence(node, deep=True)
    return dict(pairs)


_ZooArgsLoader.add_constructor(
    "tag:yaml.org,2002:python/object/apply:collections.OrderedDict", _ordered_dict_pairs
)


VecNormalizePlace = Literal["named", "run-folder", "beside"]


@dataclass
class Located:
    """What a model path points to.

    ``vecnormalize_place`` says where the statistics were found: ``"named"``, beside the zip
    and named after it (``<stem>.vecnormalize.pkl``, what ``ppdistill teacher train`` writes);
    ``"run-folder"``, in the rl-zoo folder named after the zip (``<stem>/vecnormalize.pkl``);
    ``"beside"``, a plain ``vecnormalize.pkl`` in the zip's folder, which may be anyone's.
    """

    zip_path: Path
    vecnormalize: Path | None
    env_id: str | None
    vecnormalize_place: VecNormalizePlace | None = None


def _present(path: Path, what: str) -> bool:
    """Whether a file that a layout names is there: a regular file is; a missing one is not;
    anything else of that name (a FIFO, a device, a folder) is refused rather than read or skipped."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        pass  # check_regular_file says why it cannot be examined
    check_regular_file(path, what)
    return True


def locate(path: Path, role: str = "teacher") -> Located:
    """Find the model zip, its VecNormalize statistics and the env id of a zoo-style folder.

    :param path: a model zip, or a folder holding one (an rl-zoo run folder)
    :param role: what the file is for, in messages ("teacher", "student", "model")
    :raises ModelLoadError: when there is no model, or a file it names is not a regular file
    """
    if not path.exists():
        raise ModelLoadError(f"{role} file {path} does not exist; check the path")
    folder = path if path.is_dir() else path.parent
    if path.is_dir():
        zips = sorted(p for p in path.glob("*.zip"))
        preferred = [p for p in zips if p.stem == "best_model"] or zips
        if not preferred:
            raise ModelLoadError(
                f"{path} is a folder without a model .zip; pass the .zip or an rl-zoo run folder"
            )
        if len(preferred) > 1:
            raise ModelLoadError(
                f"{path} holds several zips ({', '.join(p.name for p in preferred)}); pass one of them"
            )
        zip_path = preferred[0]
    else:
        zip_path = path
    check_regular_file(zip_path, MODEL_ZIP)
    # rl-zoo layouts: <run>/<Env>.zip + <run>/<Env>/{config.yml,args.yml,vecnormalize.pkl},
    # or everything side by side
    side = folder / zip_path.stem
    candidates: list[tuple[Path, VecNormalizePlace]] = [
        (folder / f"{zip_path.stem}.vecnormalize.pkl", "named"),  # what `ppdistill teacher train` writes
        (side / "vecnormalize.pkl", "run-folder"),
        (folder / "vecnormalize.pkl", "beside"),
    ]
    vecnormalize, place = next(
        ((c, where) for c, where in candidates if _present(c, "a vecnormalize.pkl")), (None, None)
    )
    env_id = None
    for args in (folder / f"{zip_path.stem}.args.yml", side / "args.yml", folder / "args.yml"):
        if _present(args, "an rl-zoo args.yml"):
            text = read_regular_file(args, MAX_ARGS_BYTES, "an rl-zoo args.yml")
            try:
                loaded = yaml.load(text.decode(), Loader=_ZooArgsLoader)
                env_id = dict(loaded).get("env")
                env_id = env_id if isinstance(env_id, str) else None
            except Exception:
                env_id = None
            break
    return Located(zip_path, vecnormalize, env_id, place)
