"""PPD's cost over plain PPO: the same work timed side by side, interleaved A B A B.

For each environment, PPO and PPD (λ = 1, the zoo's teacher) train the same student with
the same hyperparameters, seed and number of steps; each pair runs ``--repeats`` times in
alternating order, and the script prints the ratio of PPD's time to PPO's for the whole
``learn()`` and for ``train()`` alone (the update, where the reference library spends its
3.26×). Results go to ``benchmarks/results/overhead.md`` (and ``.json``).

    python benchmarks/overhead.py                       # CartPole-v1 and HalfCheetah-v5
    python benchmarks/overhead.py --envs CartPole-v1 --repeats 5

The zoo teachers are read from $PPDISTILL_ZOO_DIR or ../shared/teachers/rl-zoo.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch as th
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

import ppdistill
from ppdistill import PPD, load_teacher
from ppdistill.experiment.outputs import machine_description
from ppdistill.networks.normalization import NormalizedFlattenExtractor

REPO = Path(__file__).resolve().parents[1]
ZOO = Path(os.environ.get("PPDISTILL_ZOO_DIR", REPO.parent / "shared" / "teachers" / "rl-zoo"))

# env id -> (zoo folder, steps per run, hyperparameters shared by PPO and PPD)
CASES: dict[str, tuple[str, int, dict[str, Any]]] = {
    "CartPole-v1": (
        "ppo/CartPole-v1_1",
        50_000,
        {"n_envs": 8, "n_steps": 64, "batch_size": 128, "n_epochs": 4, "gamma": 0.999, "gae_lambda": 0.9},
    ),
    "HalfCheetah-v5": (
        "ppo/HalfCheetah-v3_1",
        10_240,
        {"n_envs": 1, "n_steps": 512, "batch_size": 64, "n_epochs": 10, "gamma": 0.999, "gae_lambda": 0.9},
    ),
}


def machine() -> str:
    return f"{machine_description()}, torch {th.__version__} ({th.get_num_threads()} threads)"


def timed_run(
    algo: str, env_id: str, steps: int, hp: dict[str, Any], teacher: Any, seed: int
) -> tuple[float, float]:
    """Seconds for the whole learn() and for train() alone."""
    hp = dict(hp)
    env = make_vec_env(env_id, n_envs=hp.pop("n_envs"), seed=seed)
    if algo == "ppo":
        # the same student as PPD's: with the teacher's frozen input normalization when it has one
        policy_kwargs = {}
        if teacher.obs_normalizer is not None:
            policy_kwargs = {
                "features_extractor_class": NormalizedFlattenExtractor,
                "features_extractor_kwargs": teacher.obs_normalizer.stats(),
            }
        model = PPO("MlpPolicy", env, seed=seed, device="cpu", policy_kwargs=policy_kwargs, **hp)
    else:
        model = PPD("MlpPolicy", env, teacher=teacher, distill_lambda=1.0, seed=seed, device="cpu", **hp)
    train_time = 0.0
    original = model.train

    def timed_train() -> None:
        nonlocal train_time
        t0 = time.perf_counter()
        original()
        train_time += time.perf_counter() - t0

    model.train = timed_train  # type: ignore[method-assign]
    t0 = time.perf_counter()
    model.learn(steps)
    total = time.perf_counter() - t0
    env.close()
    return total, train_time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier timings)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "overhead")
    args = parser.parse_args(argv)
    th.set_num_threads(args.threads)
    if not ZOO.is_dir():
        print(f"zoo teachers not found at {ZOO}; set PPDISTILL_ZOO_DIR", file=sys.stderr)
        return 2

    rows = []
    for env_id in args.envs:
        folder, steps, hp = CASES[env_id]
        teacher = load_teacher(ZOO / folder, env_id=env_id)
        times: dict[str, list[tuple[float, float]]] = {"ppo": [], "ppd": []}
        timed_run("ppo", env_id, steps // 10, hp, teacher, seed=0)  # warm-up: imports, allocator, caches
        for rep in range(args.repeats):
            order = ("ppo", "ppd") if rep % 2 == 0 else ("ppd", "ppo")
            for algo in order:
                times[algo].append(timed_run(algo, env_id, steps, hp, teacher, seed=rep))
                total, train = times[algo][-1]
                print(f"{env_id} rep {rep} {algo}: learn {total:.2f}s, train {train:.2f}s", flush=True)
        learn_ratio = statistics.median(b[0] / a[0] for a, b in zip(times["ppo"], times["ppd"]))
        train_ratio = statistics.median(b[1] / a[1] for a, b in zip(times["ppo"], times["ppd"]))
        rows.append(
            {
                "env": env_id,
                "steps": steps,
                "hyperparameters": hp,
                "ppo_learn_s": [t[0] for t in times["ppo"]],
                "ppd_learn_s": [t[0] for t in times["ppd"]],
                "ppo_train_s": [t[1] for t in times["ppo"]],
                "ppd_train_s": [t[1] for t in times["ppd"]],
                "learn_ratio_median": learn_ratio,
                "train_ratio_median": train_ratio,
            }
        )

    command = "python benchmarks/overhead.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        "# PPD overhead over plain PPO",
        "",
        f"Command: `{command.strip()}`  ",
        f"Machine: {machine()}  ",
        f"ppdistill {ppdistill.__version__}, {time.strftime('%Y-%m-%d')}",
        "",
        "Same student (SB3 default MLP; with the teacher's frozen input normalization inside the",
        "network for HalfCheetah, as PPD gives it), hyperparameters, seed and steps; pairs interleaved;",
        "median over pairs of PPD time / PPO time. Target: ≤ 1.10 (sb3_distill: 1.19× whole learn()",
        "on CartPole, 3.26× train() on an IMPALA CNN).",
        "",
        "| env | steps | learn() PPD/PPO | per-pair range | train() PPD/PPO | PPO learn s | PPD learn s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        pairs = [b / a for a, b in zip(r["ppo_learn_s"], r["ppd_learn_s"])]
        lines.append(
            f"| {r['env']} | {r['steps']} | {r['learn_ratio_median']:.3f} | "
            f"{min(pairs):.2f}–{max(pairs):.2f} | "
            f"{r['train_ratio_median']:.3f} | "
            f"{statistics.median(r['ppo_learn_s']):.1f} | {statistics.median(r['ppd_learn_s']):.1f} |"
        )
    report = "\n".join(lines) + "\n"
    print()
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(report)
    args.out.with_suffix(".json").write_text(
        json.dumps({"command": command, "machine": machine(), "rows": rows}, indent=2)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
