"""ShapesBench: ground-truth prompt adherence for generated shape videos.

    hold-out SceneSpec (benchmark.py) -> caption -> model -> video (T, H, W, 3) uint8
    video + spec -> analyze.py (background, colour blobs, tracks, shape, motion)
                 -> score.py score_video (per-attribute results, temporal metrics) -> aggregate
"""
from edgevid.eval.shapesbench.benchmark import benchmark_specs
from edgevid.eval.shapesbench.score import aggregate, score_video

__all__ = ["aggregate", "benchmark_specs", "score_video"]
