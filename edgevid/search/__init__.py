"""Latency- and memory-guided temporal-layer search (SnapGen-V §3.2, App. A, Alg. A1).

    space.py    UNetPlan: which temporal layer, how many, at which position (stage / mid), and
                optionally the spatial blocks (SpatialPlan: transformers kept, ResBlock widths)
    lut.py      look-up tables measured on a runtime (eager PyTorch, ExecuTorch XNNPACK), JSON
    predict.py  a plan's latency and memory as sums of table entries
    evolve.py   OOM / latency elimination and the search (Alg. A1) over add/remove actions
    quality.py  the quality proxy: temporal layers trained briefly on the inherited backbone
                (frozen; fine-tuned too in a spatial search)
    pareto.py   the quality-latency plot of every evaluated candidate
"""
