"""How spread an off-policy teacher's distillation target is, and how much its play depends on it.

    python benchmarks/teacher_action_spread.py \\
        teachers/kinds/tqc-Hopper-v5-timefeature.zip Hopper-v5 --time-feature

Plays the teacher on 5 seeded episodes (seeds 1000-1004) per way of acting and prints the mean
return, the episode length and the target's std per action dimension as a fraction of half the
action range (the mean over the visited states): acting deterministically, sampling from the
distillation target, sampling from it at half its std, and with a random offset of ±0.05 or
±0.1 of half the range on every dimension at every step (how much a student's small errors
would cost). SAC, TQC and CrossQ teachers are read with ``squashed_target="mode"`` (the
shipped setting for them), others as the loader reads them.
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
import torch as th

from ppdistill.teachers.loading import kind_of_source, load_teacher

SQUASHED = {"sac", "tqc", "crossq"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("teacher")
    parser.add_argument("env_id")
    parser.add_argument("--time-feature", action="store_true", help="the teacher was trained in one")
    args = parser.parse_args()
    kind = kind_of_source(args.teacher)
    options = {"squashed_target": "mode"} if kind in SQUASHED else {}
    teacher = load_teacher(args.teacher, args.env_id, **options)
    env = gym.make(args.env_id)
    if args.time_feature:
        from sb3_contrib.common.wrappers import TimeFeatureWrapper

        env = TimeFeatureWrapper(env)
    assert isinstance(env.action_space, gym.spaces.Box), "a Box action space"
    low, high = env.action_space.low, env.action_space.high
    half = (high - low) / 2
    rng = np.random.default_rng(0)

    def play(noise: float, offset: float, seed: int) -> tuple[float, int, np.ndarray]:
        obs, _ = env.reset(seed=seed)
        total, steps, stds = 0.0, 0, []
        while True:
            params = teacher(th.as_tensor(obs[None], dtype=th.float32)).params[0].numpy()
            d = params.shape[0] // 2
            mean, std = params[:d], np.exp(params[d:])
            stds.append(std / half)
            action = mean + noise * std * rng.standard_normal(d) + offset * half * rng.choice([-1, 1], d)
            obs, reward, terminated, truncated, _ = env.step(np.clip(action, low, high))
            total, steps = total + float(reward), steps + 1
            if terminated or truncated:
                return total, steps, np.mean(stds, axis=0)

    print(f"{args.teacher} ({kind}) on {args.env_id}, 5 episodes each (seeds 1000-1004)")
    ways = [
        ("deterministic", 0.0, 0.0),
        ("sampled from the target", 1.0, 0.0),
        ("sampled at half its std", 0.5, 0.0),
        ("random ±0.05 offsets", 0.0, 0.05),
        ("random ±0.1 offsets", 0.0, 0.1),
    ]
    for label, noise, offset in ways:
        runs = [play(noise, offset, 1000 + i) for i in range(5)]
        returns = [r[0] for r in runs]
        spread = np.round(np.mean([r[2] for r in runs], axis=0), 3)
        print(
            f"{label:25s} return {np.mean(returns):8.1f} ± {np.std(returns):6.1f}  "
            f"steps {np.mean([r[1] for r in runs]):6.0f}  target std / half range {spread}"
        )


if __name__ == "__main__":
    main()
