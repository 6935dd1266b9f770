"""Evaluation: FLOPs now; ShapesBench (ground-truth prompt adherence) next."""
