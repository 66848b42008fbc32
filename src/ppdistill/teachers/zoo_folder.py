"""RL Baselines3 Zoo run folders: the model zip, its config.yml / args.yml and vecnormalize.pkl.

Only regular files are read: a device, FIFO or socket where a model, ``args.yml`` or
``vecnormalize.pkl`` is expected is refused in one line, never opened (``/dev/zero``
reads without end, a FIFO blocks).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from ppdistill.core.errors import ModelLoadError
from ppdistill.envs.ids import env_family
from ppdistill.envs.recipe import EnvRecipe, RecipeError, zoo_wrappers
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
    env_settings: dict[str, Any] = field(default_factory=dict)
    """What the run's ``config.yml`` / ``args.yml`` say about its environment (``env_wrapper``,
    ``frame_stack``, ``env_kwargs``): see :func:`env_recipe`."""
    config: dict[str, Any] = field(default_factory=dict)
    """The run's whole ``config.yml`` (the hyperparameters the zoo trained it with), if it has one."""


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
    settings: dict[str, Any] = {}
    config_data: dict[str, Any] = {}
    for args in (folder / f"{zip_path.stem}.args.yml", side / "args.yml", folder / "args.yml"):
        if _present(args, "an rl-zoo args.yml"):
            loaded = _read_zoo_yaml(args, "an rl-zoo args.yml")
            env_id = loaded.get("env") if isinstance(loaded.get("env"), str) else None
            # the zoo's args.yml has env_kwargs; `ppdistill teacher train`'s also env_wrapper
            settings.update({k: loaded[k] for k in ENV_SETTINGS if loaded.get(k)})
            break
    for config in (side / "config.yml", folder / "config.yml"):
        if _present(config, "an rl-zoo config.yml"):
            loaded = _read_zoo_yaml(config, "an rl-zoo config.yml")
            settings.update({k: loaded[k] for k in ENV_SETTINGS if loaded.get(k)})
            config_data = loaded
            break
    return Located(zip_path, vecnormalize, env_id, place, settings, config_data)


ENV_SETTINGS = ("env_wrapper", "frame_stack", "env_kwargs")
ATARI_WRAPPER = "stable_baselines3.common.atari_wrappers.AtariWrapper"
"""The keys of an rl-zoo ``config.yml`` that shape the observations a model was trained on."""


def _read_zoo_yaml(path: Path, what: str) -> dict[str, Any]:
    """An rl-zoo YAML file (args.yml, config.yml) as a dict; an unreadable one as empty."""
    text = read_regular_file(path, MAX_ARGS_BYTES, what)
    try:
        loaded = yaml.load(text.decode(), Loader=_ZooArgsLoader)
        return dict(loaded) if loaded else {}
    except Exception:
        return {}


def env_recipe(located: Located, env_id: str) -> EnvRecipe:
    """The environment a zoo run's model was trained in: ``env_id`` with the run's
    ``env_wrapper``, ``frame_stack`` and ``env_kwargs``.

    :param located: what :func:`locate` found
    :param env_id: the environment (given, or the run's own)
    """
    settings = located.env_settings
    try:
        wrappers = zoo_wrappers(settings.get("env_wrapper"))
    except RecipeError as exc:
        raise ModelLoadError(f"{located.zip_path}: {exc}") from exc
    if env_family(env_id) == "atari":  # ppdistill's Atari pipeline is the zoo's: AtariWrapper + 4 frames
        wrappers = tuple(w for w in wrappers if w.path != ATARI_WRAPPER)
    env_kwargs = settings.get("env_kwargs") or {}
    if not isinstance(env_kwargs, dict):
        raise ModelLoadError(f"{located.zip_path}: env_kwargs {env_kwargs!r} is not a mapping")
    frame_stack = settings.get("frame_stack") or 0
    if isinstance(frame_stack, bool) or not isinstance(frame_stack, int) or frame_stack < 0:
        raise ModelLoadError(f"{located.zip_path}: frame_stack {frame_stack!r} is not a whole number")
    return EnvRecipe(env_id, dict(env_kwargs), wrappers, frame_stack)
