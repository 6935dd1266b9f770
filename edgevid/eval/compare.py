"""Two `edgevid eval` results of the same videos' prompts and seeds -> their paired difference.

A benchmark figure of 50-200 videos moves by a few hundredths between models for luck alone; the
same prompt and seed given to both models removes most of that luck (the scene's difficulty), so
a comparison reads the per-video differences: their mean, its standard error and a bootstrap
interval over videos for the difference and for the ratio of the two means.
"""
from __future__ import annotations

import numpy as np


def score_key(result: dict) -> str:
    """The headline per-video score of an eval result: i2v_score (image-to-video) or prompt_adherence."""
    return "i2v_score" if "i2v_score" in result else "prompt_adherence"


def paired_difference(a: dict, b: dict, metric: str | None = None, limit: int | None = None,
                      bootstrap: int = 10_000, seed: int = 0) -> dict:
    """Paired comparison of eval results `a` and `b` (JSON dicts with per_video) on their common
    first videos: mean of each, mean and standard error of b - a, 95 % bootstrap intervals of the
    difference and of mean(b) / mean(a). Refuses results whose videos are not the same prompts and seeds."""
    metric = metric or score_key(a)
    va, vb = a.get("per_video"), b.get("per_video")
    if not va or not vb:
        raise ValueError("both results need per-video scores (per_video), as `edgevid eval` writes them")
    n = min(len(va), len(vb)) if limit is None else limit
    if n < 2 or n > min(len(va), len(vb)):
        raise ValueError(f"need 2 to {min(len(va), len(vb))} common videos, got {n}")
    for i, (x, y) in enumerate(zip(va[:n], vb[:n])):
        for key in ("caption", "seed", "index"):
            if key in x and key in y and x[key] != y[key]:
                raise ValueError(f"video {i} differs in {key} ({x[key]!r} vs {y[key]!r}): not a paired comparison")
        if metric not in x or metric not in y:
            raise ValueError(f"video {i} has no {metric!r} score")
    sa = np.array([float(x[metric]) for x in va[:n]])
    sb = np.array([float(y[metric]) for y in vb[:n]])
    d = sb - sa
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(bootstrap, n))
    boot_a, boot_b = sa[idx].mean(1), sb[idx].mean(1)
    boot_d = boot_b - boot_a
    with np.errstate(divide="ignore", invalid="ignore"):
        boot_r = np.where(boot_a > 0, boot_b / boot_a, np.nan)
    ratio = sb.mean() / sa.mean() if sa.mean() > 0 else float("nan")
    finite = boot_r[np.isfinite(boot_r)]
    return {
        "metric": metric, "videos": n, "mean_a": float(sa.mean()), "mean_b": float(sb.mean()),
        "difference": float(d.mean()), "standard_error": float(d.std(ddof=1) / np.sqrt(n)),
        "difference_95": [float(np.quantile(boot_d, 0.025)), float(np.quantile(boot_d, 0.975))],
        "ratio": float(ratio),
        "ratio_95": ([float(np.quantile(finite, 0.025)), float(np.quantile(finite, 0.975))]
                     if len(finite) else [float("nan"), float("nan")]),
        "videos_better": int((d > 0).sum()), "videos_worse": int((d < 0).sum()),
    }


def describe(c: dict, name_a: str = "A", name_b: str = "B") -> str:
    """One paragraph a person reads: both means, the paired difference and its intervals."""
    lo, hi = c["difference_95"]
    rlo, rhi = c["ratio_95"]
    return (f"{c['metric']} on {c['videos']} paired videos: {name_a} {c['mean_a']:.3f}, {name_b} {c['mean_b']:.3f}\n"
            f"{name_b} - {name_a}: {c['difference']:+.3f} +- {c['standard_error']:.3f} (standard error), "
            f"95 % bootstrap [{lo:+.3f}, {hi:+.3f}]\n"
            f"{name_b} / {name_a}: {c['ratio']:.3f}, 95 % bootstrap [{rlo:.2f}, {rhi:.2f}]\n"
            f"videos {name_b} scores higher / lower / equal: {c['videos_better']} / {c['videos_worse']} / "
            f"{c['videos'] - c['videos_better'] - c['videos_worse']}")
