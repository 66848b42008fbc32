"""Student sizes relative to the teacher (the paper's smaller / same / larger), MLP and image."""

from __future__ import annotations

import itertools
from typing import Any

from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

from ppdistill.networks.cnn import ImpalaCNNExtractor, NatureCNNExtractor

STUDENT_SIZES = ("smaller", "same", "larger")
"""The paper's three sizes, for MLP and image students."""
MLP_SIZES = ("tiny", *STUDENT_SIZES)
"""MLP students also come ``tiny``: one hidden layer a sixteenth of the teacher's width, small
enough that capacity binds (at about 1% of a (64, 64) teacher's actor)."""


def teacher_mlp_width(net_arch: Any) -> list[int]:
    """The actor's hidden layers of an SB3 ``net_arch`` (list, dict(pi=...), or [dict(...)])."""
    if isinstance(net_arch, list) and len(net_arch) == 1 and isinstance(net_arch[0], dict):
        net_arch = net_arch[0]
    if isinstance(net_arch, dict):
        return [int(x) for x in net_arch.get("pi", [])]
    if isinstance(net_arch, list | tuple):
        return [int(x) for x in net_arch]
    return [64, 64]


def mlp_student_arch(size: str, teacher_arch: list[int]) -> list[int]:
    """Hidden layers of an MLP student relative to the teacher's actor.

    Around the paper's (256, 256) teacher: smaller (128, 64), same (256, 256), larger (512, 512),
    i.e. 0.15×, 1× and 3.8× the actor's parameters on HalfCheetah; other widths keep those ratios
    (a (64, 64) teacher gives (32, 16), (64, 64), (128, 128)). ``tiny`` is one layer a sixteenth
    of the teacher's width ((4,) and (16,) for (64, 64) and (256, 256) teachers), for tasks where
    the paper's sizes all reach the teacher. A custom size is a comma list.

    :param size: "tiny", "smaller", "same", "larger", or e.g. "64,64"
    :param teacher_arch: the teacher actor's hidden layers
    :return: the student's hidden layers (used for both actor and critic, kept separate)
    """
    width = teacher_arch[0] if teacher_arch else 64
    if size == "tiny":
        return [max(2, width // 16)]
    if size == "smaller":
        return [max(1, width // 2), max(1, width // 4)]
    if size == "same":
        return list(teacher_arch) or [64, 64]
    if size == "larger":
        return [2 * width, 2 * width]
    try:
        layers = [int(x) for x in size.split(",") if x.strip()]
    except ValueError:
        layers = []
    if not layers or any(n < 1 for n in layers):
        raise ValueError(
            f"student size must be tiny, smaller, same, larger or a comma list like 64,64; got {size!r}"
        )
    return layers


def mlp_param_count(obs_dim: int, hidden: list[int], out_dim: int) -> int:
    """Parameters of a fully connected net with biases."""
    dims = [obs_dim, *hidden, out_dim]
    return sum(a * b + b for a, b in itertools.pairwise(dims))


def image_student_kwargs(size: str) -> dict[str, Any]:
    """Policy kwargs of an image student ("smaller", "same" or "larger").

    Around an IMPALA {16, 32, 32} teacher, as in the paper: Nature-CNN {32, 32, 32} + FC 128,
    IMPALA {16, 32, 32} + FC 256, IMPALA {32, 64, 64} + FC 1024. The actor and critic heads
    sit directly on the shared features (SB3's CnnPolicy convention, ``net_arch=[]``).

    :param size: preset name
    """
    presets: dict[str, tuple[type[BaseFeaturesExtractor], dict[str, Any]]] = {
        "smaller": (NatureCNNExtractor, {"channels": (32, 32, 32), "features_dim": 128}),
        "same": (ImpalaCNNExtractor, {"channels": (16, 32, 32), "features_dim": 256}),
        "larger": (ImpalaCNNExtractor, {"channels": (32, 64, 64), "features_dim": 1024}),
    }
    if size not in presets:
        raise ValueError(f"image students come in sizes smaller, same, larger; got {size!r}")
    cls, kwargs = presets[size]
    return {"features_extractor_class": cls, "features_extractor_kwargs": kwargs, "net_arch": []}
