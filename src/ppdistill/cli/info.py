"""``ppdistill evaluate`` and ``ppdistill students``."""

from __future__ import annotations

import argparse
import json

from ppdistill.cli.args import CLIError
from ppdistill.cli.tables import print_table
from ppdistill.core.files import atomic_write, check_out_file
from ppdistill.core.spaces import is_flat_box


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ppdistill.evaluation import evaluate
    from ppdistill.teachers.loading import load_agent

    if args.json:
        check_out_file(args.json, force=args.force, what="--json")  # before the episodes, not after
    agent = load_agent(args.model, env_id=args.env, role="model")
    result = evaluate(
        agent, args.env, n_episodes=args.episodes, deterministic=not args.stochastic, seed=args.seed
    )
    mode = "stochastic" if args.stochastic else "deterministic"
    print(f"{args.model} on {args.env}, {result.n_episodes} {mode} episodes:")
    print(f"  mean {result.mean:.2f}  std {result.std:.2f}  IQM {result.iqm:.2f}")
    if args.json:
        payload = {
            "model": str(args.model),
            "env_id": args.env,
            "deterministic": not args.stochastic,
            **result.as_dict(),
        }
        atomic_write(args.json, json.dumps(payload, indent=2).encode())
    return 0


def cmd_students(args: argparse.Namespace) -> int:
    import numpy as np
    from gymnasium import spaces
    from stable_baselines3.common.preprocessing import is_image_space

    from ppdistill.core.distributions import param_dim
    from ppdistill.envs.make import env_spaces
    from ppdistill.networks.presets import (
        MLP_SIZES,
        STUDENT_SIZES,
        image_student_kwargs,
        mlp_param_count,
        mlp_student_arch,
    )
    from ppdistill.teachers.loading import load_teacher

    obs_space, act_space = env_spaces(args.env)
    # the actor's output: logits, or means (log-stds are one free vector)
    out_dim = param_dim(act_space) // 2 if isinstance(act_space, spaces.Box) else param_dim(act_space)
    if is_image_space(obs_space):
        rows = []
        for size in STUDENT_SIZES:
            kwargs = image_student_kwargs(size)
            net = kwargs["features_extractor_class"](obs_space, **kwargs["features_extractor_kwargs"])
            trunk = sum(p.numel() for p in net.parameters())
            fc = kwargs["features_extractor_kwargs"]["features_dim"]
            name = f"{kwargs['features_extractor_class'].__name__.replace('Extractor', '')} "
            name += f"{tuple(kwargs['features_extractor_kwargs']['channels'])} + FC {fc}"
            rows.append(
                [size, name, f"{trunk + fc * out_dim + out_dim}", f"{trunk + fc + 1}", "shared trunk"]
            )
        print_table(
            f"Image student presets for {args.env} (input {obs_space.shape}), "
            "around an IMPALA (16, 32, 32) teacher",
            ["size", "network", "actor params", "critic params", "note"],
            rows,
        )
        return 0
    if not is_flat_box(obs_space):
        raise CLIError(
            f"{args.env} has structured observations {obs_space}; the presets need flat or image ones"
        )
    teacher_arch = [64, 64]
    source = "SB3's default MlpPolicy (64, 64)"
    if args.teacher is not None:
        teacher = load_teacher(args.teacher, env_id=args.env)
        teacher_arch = teacher.hidden_layers or teacher_arch
        source = f"{args.teacher} ({', '.join(map(str, teacher_arch))})"
    obs_dim = int(np.prod(obs_space.shape))
    teacher_actor = mlp_param_count(obs_dim, teacher_arch, out_dim)
    rows = []
    for size in MLP_SIZES:
        arch = mlp_student_arch(size, teacher_arch)
        actor = mlp_param_count(obs_dim, arch, out_dim)
        critic = mlp_param_count(obs_dim, arch, 1)
        rows.append([size, str(tuple(arch)), f"{actor}", f"{critic}", f"{actor / teacher_actor:.2f}x"])
    print_table(
        f"Student presets for {args.env}, relative to {source}",
        ["size", "hidden layers", "actor params", "critic params", "actor vs teacher"],
        rows,
    )
    return 0
