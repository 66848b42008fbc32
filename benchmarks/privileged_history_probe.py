"""A probe for issue 18's masked LunarLander, where no student reached the teacher: is it the
information (velocities from positions over time) or its scale?

The student sees LunarLander's positions (x, y, angle, leg contacts) through one of these views,
the teacher (the RL Zoo's PPO agent) the full state; PPD with the suite's LunarLander settings
(8 x 64-step rollouts, minibatch 64, 4 epochs, lr 1e-3, γ 0.999, GAE 0.9, λ 3), 200k env steps:

- ``frames2``: the positions at this step and the one before (an MLP student);
- ``delta``: the positions and their change since the step before (zero at an episode's
  start), an MLP student: the same information, the change no longer a few percent of the inputs' size;
- ``lstm``: the positions, an LSTM student (32 units, then 16), as in the privileged suites;
- ``lstmdelta``: the positions and their change, that LSTM student;
- ``--skip``: the LSTM students' layers after the LSTM also read the step's inputs;
- ``-running`` after any of them: the student normalizes its inputs with running statistics
  (``student_obs_norm="running"``).

For the LSTM students, ``--lstm-hidden``, ``--head``, ``--learning-rate`` (a number, or
``lin_X`` for a rate falling linearly from X to 0), ``--privileged-prediction``,
``--batch-size`` and ``--epochs`` change the settings above; a row records the ones it ran with
(sb3-contrib's recurrent minibatches are runs of consecutive steps of one or two envs, where
an MLP's are steps drawn from all of them: a larger batch mixes more envs).

Teacher, student and a random policy play the same seeded episodes; a line of JSON per run is
appended to ``--out``. A probe (one seed per variant unless asked), not a suite: a lead for the
next step, not a result. Usage::

    python benchmarks/privileged_history_probe.py --variants delta-running frames2 --seeds 0 \
        --out benchmarks/results/privileged-history-probe/runs.jsonl
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.torch_layers import MlpExtractor

from ppdistill import load_teacher
from ppdistill.algorithms import PPD, RecurrentPPD
from ppdistill.bench.suite import zoo_dir
from ppdistill.envs.views import split_observations

ENV = "LunarLander-v3"
POSITIONS = [0, 1, 4, 6, 7]  # x, y, angle, left and right leg contact (ppdistill.envs.masked)
SETTINGS = dict(n_steps=64, batch_size=64, n_epochs=4, learning_rate=1e-3, gamma=0.999, gae_lambda=0.9,
                ent_coef=0.0, distill_lambda=3.0, device="cpu")  # fmt: skip
VARIANTS = ["frames2", "delta", "lstm", "lstmdelta"]


class MlpSkipLstmPolicy(RecurrentActorCriticPolicy):
    """``--skip``: sb3-contrib's LSTM policy whose layers after the LSTM read ``[LSTM output,
    the step's features]`` (its critic keeps its own LSTM, the default)."""

    def _build_mlp_extractor(self) -> None:
        width = self.lstm_output_dim + self.features_dim
        self.mlp_extractor = MlpExtractor(width, self.net_arch, self.activation_fn, self.device)

    @staticmethod
    def _process_sequence(features: Any, lstm_states: Any, episode_starts: Any, lstm: Any) -> Any:
        output, states = RecurrentActorCriticPolicy._process_sequence(
            features, lstm_states, episode_starts, lstm
        )
        return th.cat([output, features], dim=1), states  # sb3-contrib keeps the rows' order


class History(gym.Wrapper):
    """A Dict observation: ``policy``, the student's view of the positions; ``privileged``, the
    full state (the teacher's)."""

    def __init__(self, env: gym.Env, view: str) -> None:
        super().__init__(env)
        width = len(POSITIONS) * (1 if view == "lstm" else 2)
        self.view = view
        self.before = np.zeros(len(POSITIONS), np.float32)
        self.observation_space = spaces.Dict(
            {"policy": spaces.Box(-np.inf, np.inf, (width,), np.float32), "privileged": env.observation_space}
        )

    def _obs(self, full: np.ndarray) -> dict[str, np.ndarray]:
        now = full[POSITIONS]
        if self.view == "lstm":
            policy = now
        elif self.view == "frames2":  # the step before, as it was
            policy = np.concatenate([now, self.before])
        else:
            policy = np.concatenate([now, now - self.before])
        self.before = now
        return {"policy": policy.astype(np.float32), "privileged": full}

    def reset(self, **kwargs: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        full, info = self.env.reset(**kwargs)
        self.before = full[POSITIONS]
        return self._obs(full), info

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        full, reward, terminated, truncated, info = self.env.step(action)
        return self._obs(full), float(reward), terminated, truncated, info


def play(agent: Any, view: str, episodes: int, seed: int) -> dict[str, list[float]]:
    """Teacher, student and random policy on the same seeded episodes (argmax actions)."""
    out: dict[str, list[float]] = {"teacher": [], "student": [], "random": []}
    for role in out:
        for k in range(episodes):
            env = History(gym.make(ENV), view)
            obs, _ = env.reset(seed=seed + k)
            env.action_space.seed(seed + k)
            state, start, total, done = None, np.ones((1,), bool), 0.0, False
            while not done:
                if role == "teacher":
                    action = agent["teacher"].predict(obs["privileged"][None], deterministic=True)[0][0]
                elif role == "random":
                    action = env.action_space.sample()
                else:
                    action, state = agent["student"].predict(
                        obs["policy"][None], state=state, episode_start=start, deterministic=True
                    )
                    action, start = action[0], np.zeros((1,), bool)
                obs, reward, terminated, truncated, _ = env.step(action)
                total += reward
                done = terminated or truncated
            out[role].append(total)
    return out


def learning_rate(text: str) -> float | Any:
    """A number, or ``lin_X``: X falling linearly to 0 over the run."""
    if text.startswith("lin_"):
        start = float(text[4:])
        return lambda progress_remaining: start * progress_remaining
    return float(text)


def run(variant: str, seed: int, steps: int, episodes: int, lstm: dict[str, Any]) -> dict[str, Any]:
    view, _, norm = variant.partition("-")
    teacher = load_teacher(zoo_dir() / "ppo" / "LunarLander-v2_1", env_id=ENV)
    env = make_vec_env(ENV, n_envs=8, seed=seed, wrapper_class=lambda e: History(e, view))
    env = split_observations(env, student_keys=["policy"], teacher_keys=["privileged"])
    kwargs: dict[str, Any] = {**SETTINGS, "seed": seed, "student_obs_norm": norm or "teacher"}
    settings: dict[str, Any] = {}
    if view.startswith("lstm"):
        settings = lstm
        kwargs["learning_rate"] = learning_rate(lstm["learning_rate"])
        kwargs["batch_size"], kwargs["n_epochs"] = lstm.get("batch_size", 64), lstm.get("epochs", 4)
        student: Any = RecurrentPPD(
            MlpSkipLstmPolicy if lstm.get("skip") else "MlpLstmPolicy", env, teacher=teacher, **kwargs,
            privileged_prediction=lstm["privileged_prediction"],
            policy_kwargs={"lstm_hidden_size": lstm["lstm_hidden"], "net_arch": lstm["head"]},
        )  # fmt: skip
    else:
        student = PPD("MlpPolicy", env, teacher=teacher, **kwargs, policy_kwargs={"net_arch": [32, 16]})
    t0 = time.perf_counter()
    student.learn(steps)
    train_s = time.perf_counter() - t0
    returns = play({"teacher": teacher, "student": student}, view, episodes, seed=10_000 + seed)
    means = {k: float(np.mean(v)) for k, v in returns.items()}
    return {
        "variant": variant, "seed": seed, **({"lstm": settings} if settings else {}),
        "env_steps": student.num_timesteps, "train_s": round(train_s, 1),
        **{f"{k}_mean": round(v, 2) for k, v in means.items()},
        "normalized": round((means["student"] - means["random"]) / (means["teacher"] - means["random"]), 3),
        "returns": returns, "machine": f"{platform.processor() or platform.machine()}, {platform.system()}",
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", required=True,
                        help=f"{', '.join(VARIANTS)}, each optionally with -running")  # fmt: skip
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--episodes", type=int, default=30)
    parser.add_argument("--out", type=Path, required=True, help="JSON lines, appended")
    parser.add_argument("--lstm-hidden", type=int, default=32, help="LSTM students' units")
    parser.add_argument("--head", type=int, nargs="*", default=[16], help="LSTM students' layers after it")
    parser.add_argument("--learning-rate", default="1e-3", help="LSTM students': a number or lin_X")
    parser.add_argument("--privileged-prediction", type=float, default=0.0, help="LSTM students' c")
    parser.add_argument("--batch-size", type=int, default=64, help="LSTM students' minibatch")
    parser.add_argument("--epochs", type=int, default=4, help="LSTM students' epochs per rollout")
    parser.add_argument("--skip", action="store_true",
                        help="LSTM students' layers after it also read the step's inputs")  # fmt: skip
    args = parser.parse_args()
    lstm = {"lstm_hidden": args.lstm_hidden, "head": args.head, "learning_rate": args.learning_rate,
            "privileged_prediction": args.privileged_prediction}  # fmt: skip
    if (args.batch_size, args.epochs) != (64, 4):  # rows before these options ran with 64 and 4
        lstm.update(batch_size=args.batch_size, epochs=args.epochs)
    if args.skip:
        lstm["skip"] = True
    try:
        learning_rate(args.learning_rate)
    except ValueError:
        parser.error(f"--learning-rate {args.learning_rate!r}: give a number or lin_X")
    for v in args.variants:
        if v.partition("-")[0] not in VARIANTS or v.partition("-")[2] not in ("", "running"):
            parser.error(f"unknown variant {v!r}: {', '.join(VARIANTS)}, each optionally with -running")
    for variant in args.variants:
        for seed in args.seeds:
            row = run(variant, seed, args.steps, args.episodes, lstm)
            with args.out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"{variant} seed {seed}: student {row['student_mean']:.1f}, "
                  f"teacher {row['teacher_mean']:.1f}, random {row['random_mean']:.1f}: "
                  f"{row['normalized']:.2f} of the teacher ({row['train_s']:.0f} s)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
