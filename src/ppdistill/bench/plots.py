"""The figures of a benchmark report: learning curves per env, aggregate scores with CIs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ppdistill.bench.stats import Interval, curve_grid


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def plot_env_curves(
    groups: dict[str, dict[str, list[dict[str, Any]]]],
    labels: dict[str, str],
    title: str,
    path: Path,
) -> None:
    """One panel per student size: each method's normalized curve (mean ± std over seeds),
    the teacher as a dashed line at 1.

    :param groups: student size → method → its runs on this env
    :param labels: method → name in the legend
    :param title: the figure's title
    :param path: the PNG to write
    """
    plt = _pyplot()
    sizes = list(groups)
    fig, axes = plt.subplots(1, len(sizes), figsize=(4.2 * len(sizes), 3.4), dpi=110, squeeze=False)
    for ax, size in zip(axes[0], sizes):
        for method, runs in groups[size].items():
            grid = curve_grid(runs)
            if grid is None:
                continue
            x, mean, std = grid
            ax.plot(x, mean, label=labels.get(method, method))
            ax.fill_between(x, mean - std, mean + std, alpha=0.15)
        ax.axhline(1.0, color="black", linestyle="--", linewidth=1)
        ax.set_title(f"{size} student")
        ax.set_xlabel("env steps")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("normalized return")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_aggregate(
    aggregate: dict[tuple[str, str, str], Interval],
    keys: list[tuple[str, str]],
    methods: list[str],
    labels: dict[str, str],
    path: Path,
) -> None:
    """Bars of the IQM normalized score with 95% CIs, per (suite, student size) and method.

    :param aggregate: (suite, size, method) → IQM and CI
    :param keys: the (suite, size) groups, in order
    :param methods: the methods, in order
    :param labels: method → name in the legend
    :param path: the PNG to write
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 3.6), dpi=110)
    width = 0.8 / max(1, len(methods))
    for i, m in enumerate(methods):
        xs, ys, err = [], [], []
        for j, key in enumerate(keys):
            if (*key, m) in aggregate:
                point, lo, hi = aggregate[(*key, m)]
                xs.append(j + i * width)
                ys.append(point)
                err.append([point - lo, hi - point])
        if xs:
            ax.bar(xs, ys, width, yerr=np.array(err).T, capsize=2, label=labels.get(m, m))
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(keys))])
    ax.set_xticklabels([f"{s}\n{z}" for s, z in keys], fontsize=8)
    ax.set_ylabel("IQM normalized score (95% CI)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
