"""Models in the Hugging Face Hub's SB3 layout, read offline from the local Hub cache.

A source ``hf://ORG/NAME`` (optionally ``hf://ORG/NAME@REVISION``) names a model repository
as ``huggingface_sb3`` and the RL Baselines3 Zoo publish them: ``sb3/ppo-CartPole-v1`` holds
``ppo-CartPole-v1.zip`` (the model, ``<algo>-<EnvId>.zip`` with ``/`` in the id written
``-``), ``args.yml`` and ``config.yml`` (the zoo run's), and ``vec_normalize.pkl`` when the
agent normalizes its observations.

Nothing is downloaded, ever: the source resolves to the snapshot that huggingface_hub has
already put in its cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
``~/.cache/huggingface/hub``)::

    models--sb3--ppo-CartPole-v1/refs/main                    the commit hash of "main"
    models--sb3--ppo-CartPole-v1/snapshots/<hash>/ppo-CartPole-v1.zip
    models--sb3--ppo-CartPole-v1/snapshots/<hash>/vec_normalize.pkl

This module is plain path logic: it imports neither huggingface_hub nor anything that
opens a connection. The zip it finds is then read like any SB3 zip (the allow-list reader
of :mod:`ppdistill.teachers.sb3_zip`), with the snapshot's ``vec_normalize.pkl``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym

from ppdistill.core.errors import ModelLoadError
from ppdistill.envs.ids import canonical_env_id
from ppdistill.teachers.sb3_zip import check_regular_file, read_regular_file

HUB_PREFIX = "hf://"
"""How a source names a model of the Hugging Face Hub: ``hf://sb3/ppo-CartPole-v1``."""

HUB_VECNORMALIZE = "vec_normalize.pkl"
"""The name the Hub's SB3 repositories give the VecNormalize statistics (the zoo's run
folders call them ``vecnormalize.pkl``)."""

# huggingface_sb3's ModelName: "<algo>-<env>"; the algorithms the RL Zoo publishes
_ZOO_ALGOS = ("a2c", "ars", "crossq", "ddpg", "dqn", "ppo", "ppo_lstm", "qrdqn", "sac", "td3", "tqc", "trpo")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")
_COMMIT = re.compile(r"[0-9a-f]{40}")
_MAX_REF_BYTES = 1024


@dataclass(frozen=True)
class HubSource:
    """A parsed ``hf://ORG/NAME[@REVISION]``."""

    org: str
    name: str
    revision: str = "main"

    @property
    def repo_id(self) -> str:
        return f"{self.org}/{self.name}"

    def __str__(self) -> str:
        at = "" if self.revision == "main" else f"@{self.revision}"
        return f"{HUB_PREFIX}{self.repo_id}{at}"


@dataclass(frozen=True)
class CachedModel:
    """What a Hub source resolves to in the local cache.

    :param zip_path: the model's zip in the snapshot
    :param vecnormalize: its ``vec_normalize.pkl``, or None
    :param env_id: the environment, from the repository's name (``ppo-CartPole-v1``), when the
        snapshot has no ``args.yml`` to name it (the zip's reader reads that one)
    :param snapshot: the snapshot folder
    :param commit: the snapshot's commit hash
    """

    zip_path: Path
    vecnormalize: Path | None
    env_id: str | None
    snapshot: Path
    commit: str


def is_hub_source(source: object) -> bool:
    """Whether ``source`` names a model of the Hub (``hf://...``) rather than a file.

    A ``Path`` made from the string (the command line's) collapses ``//`` into ``hf:/sb3/...``:
    that counts too, unless a file of that name exists.
    """
    if not isinstance(source, str | Path):
        return False
    text = source.as_posix() if isinstance(source, Path) else source
    if text.startswith(HUB_PREFIX) and isinstance(source, str):
        return True
    return text.startswith("hf:/") and not Path(text).exists()


def parse_hub_source(source: str | Path) -> HubSource:
    """``hf://ORG/NAME[@REVISION]`` → its parts, or a one-line error.

    :param source: the source string
    """
    text = source.as_posix() if isinstance(source, Path) else str(source)
    rest = re.sub(r"^hf:/+", "", text)
    repo, _, revision = rest.partition("@")
    parts = repo.split("/")
    ok = len(parts) == 2 and all(_NAME.fullmatch(p) and ".." not in p for p in parts)
    if revision:
        ok = ok and bool(_REVISION.fullmatch(revision)) and ".." not in revision
    if not ok:
        raise ModelLoadError(
            f"{text} is not a Hugging Face Hub model source; write hf://ORG/NAME (e.g. "
            "hf://sb3/ppo-CartPole-v1), optionally with @REVISION"
        )
    return HubSource(parts[0], parts[1], revision or "main")


def hub_cache_dir() -> Path:
    """The local Hugging Face Hub cache, as huggingface_hub finds it.

    ``$HF_HUB_CACHE`` (or its old name ``$HUGGINGFACE_HUB_CACHE``), else ``$HF_HOME/hub``,
    else ``$XDG_CACHE_HOME/huggingface/hub``, else ``~/.cache/huggingface/hub``.
    """
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(cache).expanduser() / "huggingface" / "hub"


def _fetch_hint(hub: HubSource, files: str = "") -> str:
    revision = "" if hub.revision == "main" else f" --revision {hub.revision}"
    return (
        f"ppdistill never downloads: fetch it once with `hf download {hub.repo_id}{files}{revision}` "
        f"(older huggingface_hub: `huggingface-cli download ...`), or point HF_HUB_CACHE at the cache "
        "that holds it, then run again"
    )


def _snapshot(hub: HubSource, repo_dir: Path, cache: Path) -> tuple[Path, str]:
    """The snapshot folder of ``hub.revision`` and its commit hash."""
    ref = repo_dir / "refs" / hub.revision
    if ref.is_file():
        commit = read_regular_file(ref, _MAX_REF_BYTES, "a Hugging Face cache ref").decode(errors="replace")
        commit = commit.strip()
        if not _COMMIT.fullmatch(commit):
            raise ModelLoadError(
                f"{ref} does not hold a commit hash: the Hugging Face cache in {cache} is damaged; "
                f"{_fetch_hint(hub)}"
            )
    elif _COMMIT.fullmatch(hub.revision):
        commit = hub.revision
    else:
        commit = ""
    snapshot = repo_dir / "snapshots" / commit if commit else None
    if snapshot is None or not snapshot.is_dir():
        held = sorted(p.name for p in (repo_dir / "refs").glob("*") if p.is_file())
        held_text = f" (it holds {', '.join(held)})" if held else ""
        raise ModelLoadError(
            f"{hub} is not in the local Hugging Face cache ({cache}): revision {hub.revision!r} "
            f"of {hub.repo_id} was never fetched{held_text}; {_fetch_hint(hub)}"
        )
    return snapshot, commit


def _env_from_name(name: str) -> str | None:
    """The environment that ``huggingface_sb3``'s ``<algo>-<EnvId>`` names, when it is registered."""
    algo, sep, env = name.partition("-")
    if not sep or algo.lower() not in _ZOO_ALGOS:
        return None
    try:
        env_id = canonical_env_id(env)
    except Exception:  # a module:Id that cannot be imported: not a name we can read
        return None
    return env_id if env_id in gym.registry else None


def locate_in_cache(source: str | Path, role: str = "model") -> CachedModel:
    """Resolve ``hf://ORG/NAME[@REVISION]`` to the model zip in the local Hub cache, offline.

    :param source: the Hub source
    :param role: what the model is for, in messages ("teacher", "student", "model")
    :raises ModelLoadError: in one line, when the model is not cached (what to run to fetch
        it), or the snapshot holds no model zip
    """
    hub = parse_hub_source(source)
    cache = hub_cache_dir()
    repo_dir = cache / f"models--{hub.org}--{hub.name}"
    if not repo_dir.is_dir():
        raise ModelLoadError(f"{hub} is not in the local Hugging Face cache ({cache}); {_fetch_hint(hub)}")
    snapshot, commit = _snapshot(hub, repo_dir, cache)
    model_zip = snapshot / f"{hub.name}.zip"
    if model_zip.exists() or model_zip.is_symlink():
        zip_path = model_zip
    else:
        # a repository named otherwise than its model: its one zip besides the zoo's metrics
        zips = sorted(p for p in snapshot.glob("*.zip") if p.name != "train_eval_metrics.zip")
        if len(zips) != 1:
            found = f"it holds {', '.join(p.name for p in zips)}" if zips else "it holds no model zip"
            raise ModelLoadError(
                f"{hub}: the cached snapshot {snapshot} has no {model_zip.name} ({found}); "
                f"{_fetch_hint(hub, f' {model_zip.name}')}"
            )
        zip_path = zips[0]
    # a link into the cache's blobs whose blob is gone (an interrupted fetch) reads as missing
    if not zip_path.exists():
        raise ModelLoadError(
            f"{hub}: {zip_path} is a link to a file missing from the cache (an interrupted fetch); "
            f"{_fetch_hint(hub, f' {zip_path.name}')}"
        )
    check_regular_file(zip_path, f"the {role} zip of {hub}")
    vecnormalize = snapshot / HUB_VECNORMALIZE
    vec_path = vecnormalize if (vecnormalize.exists() or vecnormalize.is_symlink()) else None
    if vec_path is not None:
        check_regular_file(vec_path, f"the {HUB_VECNORMALIZE} of {hub}")
    env_id = None if (snapshot / "args.yml").exists() else _env_from_name(hub.name)
    return CachedModel(zip_path, vec_path, env_id, snapshot, commit)
