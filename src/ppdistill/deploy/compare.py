"""Teacher against student, for deployment: size, CPU latency and return, side by side.

- **actor params**: parameters on the acting path (normalization statistics excluded): for
  an actor-critic, the actor's features extractor, hidden layers and action head (the
  critic is not needed to act); for a DQN, its Q-network; for SAC, its actor.
- **file size**: the model's zip on disk.
- **latency**: one forward pass from a raw observation tensor to the action, in PyTorch on
  the CPU, under ``no_grad``, with ``threads`` threads; for actor-critics the module that
  :mod:`ppdistill.deploy.export` exports, otherwise the policy's distribution parameters. Warm-up
  calls first, then the median over ``repeats`` timed calls, divided by the batch size:
  microseconds per observation at batch 1 and at batch 256.
- **return**: :func:`~ppdistill.evaluate` on the same seeded episodes for both, with
  deterministic actions (or sampled ones, seeded alike, with ``deterministic=False``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from torch import nn

from ppdistill.core.scores import format_score, normalized_score, return_ratio
from ppdistill.deploy.export import DeterministicPolicy, RecurrentDeterministicPolicy, obs_dtype
from ppdistill.evaluation import EvalResult, evaluate, random_policy_score
from ppdistill.teachers.actor_critic import ActorCriticTeacher
from ppdistill.teachers.base import Teacher
from ppdistill.teachers.loading import load_agent
from ppdistill.teachers.offpolicy import SquashedGaussianTeacher
from ppdistill.teachers.q_values import QValueTeacher
from ppdistill.teachers.recurrent import RecurrentTeacher

LATENCY_BATCHES = (1, 256)


@dataclass
class AgentStats:
    """One row of the comparison.

    :param role: "teacher" or "student"
    :param path: the model's zip
    :param actor_params: parameters on the acting path
    :param file_bytes: size of the zip
    :param latency_us: microseconds per observation, keyed by batch size
    :param returns: the evaluation (deterministic, seeded)
    :param random_return: a random policy's mean return on the same episodes (to normalize by)
    """

    role: str
    path: str
    actor_params: int
    file_bytes: int
    latency_us: dict[int, float]
    returns: EvalResult
    random_return: float | None = None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["latency_us"] = {str(k): v for k, v in self.latency_us.items()}
        d["returns"] = self.returns.as_dict()
        return d


def acting_module(agent: Teacher) -> nn.Module:
    """The module that turns a raw observation batch into what the agent acts on.

    :param agent: from :func:`~ppdistill.teachers.loading.load_agent`
    """
    if isinstance(agent.observation_space, spaces.Dict):  # export takes one observation; time the Teacher's
        return agent
    if isinstance(agent, ActorCriticTeacher):
        return DeterministicPolicy(agent.policy, agent.obs_normalizer).eval()
    if isinstance(agent, RecurrentTeacher):  # one step, from the state an episode starts with
        return _FirstStep(RecurrentDeterministicPolicy(agent.policy, agent.obs_normalizer).eval())
    return agent  # a Teacher's forward: normalization + network → distribution parameters


class _FirstStep(nn.Module):
    """A recurrent policy's step from a zero state (an episode's first), as a function of the
    observations alone (for latency and parameter counts)."""

    def __init__(self, policy: RecurrentDeterministicPolicy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, obs: th.Tensor) -> Any:
        layers, _, hidden = self.policy.state_shape
        zeros = th.zeros(layers, obs.shape[0], hidden)
        return self.policy(obs, zeros, zeros.clone(), th.ones(obs.shape[0]))


def count_actor_params(agent: Teacher) -> int:
    """Parameters on the acting path of ``agent`` (each shared tensor counted once)."""
    if isinstance(agent, QValueTeacher):
        policy: Any = agent.module
        module: nn.Module = getattr(policy, "q_net", None) or getattr(policy, "quantile_net", None) or policy
    elif isinstance(agent, SquashedGaussianTeacher):
        module = agent.policy.actor
    else:
        module = acting_module(agent)
    return sum(p.numel() for p in {id(p): p for p in module.parameters()}.values())


def measure_latency(
    forward: Callable[[Any], Any],
    observations: th.Tensor | dict[str, th.Tensor],
    repeats: int = 200,
    warmup: int = 20,
) -> float:
    """Median wall time of one call, in microseconds per observation.

    :param forward: the function to time (called under ``no_grad``)
    :param observations: one batch, already a tensor (a Dict observation's: one per group)
    :param repeats: timed calls
    :param warmup: untimed calls first (allocations, lazy initialization)
    """
    times = np.empty(repeats)
    with th.no_grad():
        for _ in range(warmup):
            forward(observations)
        for i in range(repeats):
            t0 = time.perf_counter()
            forward(observations)
            times[i] = time.perf_counter() - t0
    first = next(iter(observations.values())) if isinstance(observations, dict) else observations
    return float(np.median(times)) * 1e6 / int(first.shape[0])


def observation_pool(space: spaces.Space, n: int, seed: int) -> Callable[[int], Any]:
    """``n`` observations sampled from ``space`` (seeded), as a function of a batch size giving
    the first ones as a tensor (a Dict observation's: a tensor per group)."""
    space.seed(seed)
    samples = [space.sample() for _ in range(n)]
    if isinstance(space, spaces.Dict):
        groups = {
            key: np.stack([np.asarray(s[key]) for s in samples]).astype(obs_dtype(sub))
            for key, sub in space.spaces.items()
        }
        return lambda b: {key: th.as_tensor(value[:b]) for key, value in groups.items()}
    pool = np.stack([np.asarray(s) for s in samples]).astype(obs_dtype(space))
    return lambda b: th.as_tensor(pool[:b])


def agent_stats(
    role: str,
    agent: Teacher,
    env_id: str,
    episodes: int,
    seed: int,
    repeats: int,
    deterministic: bool = True,
) -> AgentStats:
    """Size, latency and return of one agent (see the module's docstring); the return by the
    argmax policy, or with sampled actions where ``deterministic`` is False."""
    pool = observation_pool(agent.observation_space, max(LATENCY_BATCHES), seed)
    module = acting_module(agent)
    latency = {
        b: measure_latency(module, pool(b), repeats=repeats if b == 1 else max(5, repeats // 4))
        for b in LATENCY_BATCHES
    }
    path = Path(str(agent.info.get("path", "")))
    return AgentStats(
        role=role,
        path=str(path),
        actor_params=count_actor_params(agent),
        file_bytes=path.stat().st_size if path.is_file() else 0,
        latency_us=latency,
        returns=evaluate(agent, env_id, n_episodes=episodes, deterministic=deterministic, seed=seed),
    )


def compare(
    teacher: str | Path,
    student: str | Path,
    env_id: str,
    *,
    episodes: int = 20,
    seed: int = 0,
    repeats: int = 200,
    threads: int = 1,
    deterministic: bool = True,
) -> list[AgentStats]:
    """Compare a teacher and a student on ``env_id``.

    :param teacher: any model :func:`~ppdistill.teachers.loading.load_agent` reads (zip or rl-zoo folder)
    :param student: the student's zip (any model load_agent reads works too)
    :param env_id: environment both act in (their spaces are checked against it)
    :param episodes: evaluation episodes each (same seeds for both)
    :param seed: seed of the evaluation and of the latency observations
    :param repeats: timed calls at batch 1 (a quarter of them at batch 256)
    :param threads: torch threads while timing (1: the usual deployment on a small CPU)
    :param deterministic: play both by their argmax policy (False: with sampled actions; a
        student taught a stochastic teacher can differ a lot between the two, and so can the
        teacher)
    :return: the teacher's row, then the student's
    """
    if episodes < 1 or repeats < 1 or threads < 1:
        raise ValueError("episodes, repeats and threads must be at least 1")
    agents = [
        (role, load_agent(path, env_id=env_id, role=role))
        for role, path in (("teacher", teacher), ("student", student))
    ]
    previous = th.get_num_threads()
    th.set_num_threads(threads)
    try:
        stats = [
            agent_stats(role, agent, env_id, episodes, seed, repeats, deterministic) for role, agent in agents
        ]
    finally:
        th.set_num_threads(previous)
    random = random_policy_score(env_id, episodes, seed=seed)  # the same episodes
    for s in stats:
        s.random_return = random
    return stats


def _size(n_bytes: float) -> str:
    for unit in ("B", "KB", "MB"):
        if n_bytes < 1024 or unit == "MB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    raise AssertionError("unreachable")


COLUMNS = ["agent", "actor params", "file size", "µs/obs (batch 1)", "µs/obs (batch 256)", "return"]


def table_rows(stats: list[AgentStats]) -> list[list[str]]:
    """The comparison as table rows, with a last row of student / teacher ratios."""
    rows = [
        [
            s.role,
            f"{s.actor_params:,}",
            _size(s.file_bytes),
            f"{s.latency_us[1]:.1f}",
            f"{s.latency_us[256]:.2f}",
            f"{s.returns.mean:.1f} ± {s.returns.std:.1f}",
        ]
        for s in stats
    ]
    if len(stats) == 2:
        t, s = stats

        def ratio(a: float, b: float, digits: int = 2) -> str:
            return f"{a / b:.{digits}f}x" if b else "-"

        rows.append(
            [
                "student/teacher",
                ratio(s.actor_params, t.actor_params),
                ratio(s.file_bytes, t.file_bytes),
                ratio(s.latency_us[1], t.latency_us[1]),
                ratio(s.latency_us[256], t.latency_us[256]),
                _return_comparison(s, t),
            ]
        )
    return rows


def _return_comparison(student: AgentStats, teacher: AgentStats) -> str:
    """The student's return against the teacher's: normalized (0 a random policy, 1 the
    teacher), and the ratio where it is one (:mod:`ppdistill.core.scores`)."""
    s, t = student.returns.mean, teacher.returns.mean
    parts = []
    if student.random_return is not None:
        parts.append(f"{format_score(normalized_score(s, t, student.random_return))} normalized")
    ratio = return_ratio(s, t)
    if ratio is not None:
        parts.append(f"{ratio:.2f}x")
    return ", ".join(parts) or "-"


def environment_note(threads: int) -> str:
    """Where the latencies were measured (they mean little without it)."""
    return f"torch {th.__version__}, {threads} thread(s), {os.cpu_count()} CPU core(s)"
