"""Environment steps per second: envpool against the gymnasium path, side by side.

For each environment, random actions are stepped through ``make_vec_env`` with the
gymnasium backend (in-process DummyVecEnv and SubprocVecEnv) and the envpool backend, the
backends taking turns over ``--repeats`` rounds; the script prints steps/s and the ratio to
the in-process gymnasium path, and writes ``benchmarks/results/env_throughput.md``.

    python benchmarks/env_throughput.py
    python benchmarks/env_throughput.py --envs PongNoFrameskip-v4 --n-envs 8 --steps 4000
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from ppdistill.envs.make import make_vec_env
from ppdistill.experiment.outputs import machine_description

REPO = Path(__file__).resolve().parents[1]
BACKENDS = {
    "gymnasium (DummyVecEnv)": {"backend": "gymnasium", "subprocess": False},
    "gymnasium (SubprocVecEnv)": {"backend": "gymnasium", "subprocess": True},
    "envpool": {"backend": "envpool", "subprocess": False},
}


def steps_per_second(env_id: str, n_envs: int, steps: int, backend: str, subprocess: bool) -> float:
    env = make_vec_env(env_id, n_envs=n_envs, seed=0, backend=backend, subprocess=subprocess)  # type: ignore[arg-type]
    rng = np.random.default_rng(0)
    space = env.action_space
    env.reset()
    if hasattr(space, "n"):
        actions = [rng.integers(0, space.n, size=n_envs) for _ in range(64)]
    else:
        actions = [
            rng.uniform(space.low, space.high, size=(n_envs, *space.shape)).astype(np.float32)
            for _ in range(64)
        ]
    t0 = time.perf_counter()
    for i in range(steps // n_envs):
        env.step(actions[i % 64])
    elapsed = time.perf_counter() - t0
    env.close()
    return (steps // n_envs) * n_envs / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", nargs="+", default=["PongNoFrameskip-v4", "HalfCheetah-v5"])
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=8000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--note", default="", help="a line on the conditions (e.g. other load)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "env_throughput")
    args = parser.parse_args(argv)

    rows = []
    for env_id in args.envs:
        results: dict[str, list[float]] = {name: [] for name in BACKENDS}
        for rep in range(args.repeats):
            names = list(BACKENDS) if rep % 2 == 0 else list(reversed(BACKENDS))
            for name in names:
                sps = steps_per_second(env_id, args.n_envs, args.steps, **BACKENDS[name])  # type: ignore[arg-type]
                results[name].append(sps)
                print(f"{env_id} rep {rep} {name}: {sps:.0f} steps/s", flush=True)
        base = statistics.median(results["gymnasium (DummyVecEnv)"])
        for name, values in results.items():
            median = statistics.median(values)
            rows.append(
                {
                    "env": env_id,
                    "backend": name,
                    "steps_per_s": values,
                    "median": median,
                    "ratio": median / base,
                }
            )

    command = "python benchmarks/env_throughput.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        "# Environment throughput: envpool against gymnasium",
        "",
        f"Command: `{command.strip()}`  ",
        f"Machine: {machine_description()}  ",
        f"{args.n_envs} environments, random actions, {args.steps} steps per measurement, "
        f"{args.repeats} rounds with the backends taking turns; median steps/s.",
        *([args.note] if args.note else []),
        "",
        "| env | backend | env steps/s | vs DummyVecEnv |",
        "|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['env']} | {r['backend']} | {r['median']:.0f} | {r['ratio']:.2f}x |")
    report = "\n".join(lines) + "\n"
    print()
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(report)
    args.out.with_suffix(".json").write_text(json.dumps({"command": command, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
