"""RL Baselines3 Zoo run folders: the model zip, its config.yml / args.yml and vecnormalize.pkl."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ppdistill.core.errors import ModelLoadError


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


@dataclass
class Located:
    zip_path: Path
    vecnormalize: Path | None
    env_id: str | None


def locate(path: Path) -> Located:
    """Find the model zip, its VecNormalize statistics and the env id of a zoo-style folder."""
    if not path.exists():
        raise ModelLoadError(f"teacher file {path} does not exist; check the path")
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
    # rl-zoo layouts: <run>/<Env>.zip + <run>/<Env>/{config.yml,args.yml,vecnormalize.pkl},
    # or everything side by side
    side = folder / zip_path.stem
    candidates = [
        folder / f"{zip_path.stem}.vecnormalize.pkl",  # what `ppdistill teacher train` writes
        side / "vecnormalize.pkl",
        folder / "vecnormalize.pkl",
    ]
    vecnormalize = next((c for c in candidates if c.is_file()), None)
    env_id = None
    for args in (folder / f"{zip_path.stem}.args.yml", side / "args.yml", folder / "args.yml"):
        if args.is_file():
            try:
                loaded = yaml.load(args.read_text(), Loader=_ZooArgsLoader)
                env_id = dict(loaded).get("env")
                env_id = env_id if isinstance(env_id, str) else None
            except Exception:
                env_id = None
            break
    return Located(zip_path, vecnormalize, env_id)
