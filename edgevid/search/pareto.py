"""The search's picture: quality against predicted latency for every evaluated candidate, the
Pareto front joined, the hand-designed plan and the search's pick marked (matplotlib PNG)."""
from __future__ import annotations

from pathlib import Path

from edgevid.search.evolve import Evaluated, pareto_front


def plot_pareto(evaluated: list[Evaluated], path: str | Path, hand_designed: str | None = None,
                chosen: str | None = None, title: str = "temporal-layer search",
                quality_label: str = "quality proxy (motion, smoothness, consistency)") -> Path:
    try:
        import matplotlib
    except ImportError:
        raise ValueError("the Pareto plot needs matplotlib: pip install 'edgevid[search]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    ax.scatter([e.cost.ms for e in evaluated], [e.quality for e in evaluated], s=18, c="0.6", label="evaluated")
    front = pareto_front(evaluated)
    ax.plot([e.cost.ms for e in front], [e.quality for e in front], "-o", c="tab:blue", ms=4, label="Pareto front")
    for key, style, label in ((hand_designed, dict(marker="s", c="tab:orange"), "hand-designed"),
                              (chosen, dict(marker="*", c="tab:red", s=160), "searched")):
        hits = [e for e in evaluated if e.plan.key == key]
        if hits:
            ax.scatter([hits[0].cost.ms], [hits[0].quality], zorder=5, label=f"{label}: {key}",
                       **{"s": 70, **style})
    ax.set_xlabel("predicted latency per denoiser call (ms, look-up table)")
    ax.set_ylabel(quality_label)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
