"""`edgevid search lut | validate | run | score`: one parser function beside each command."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def add_search_parser(sub) -> None:
    s = sub.add_parser("search", help="latency/memory-guided temporal-layer search (SnapGen-V §3.2, App. A)",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=(
                           "examples:\n"
                           "  edgevid search lut --runtime eager --threads 2 -o lut-eager.json\n"
                           "  edgevid search validate --lut lut-eager.json --num 5 [--spatial]\n"
                           "  edgevid search run --lut lut-eager.json --latency-budget 300 --run-dir ~/runs/search "
                           "-o searched/\n"
                           "  edgevid search run --spatial --lut lut-eager.json --latency-budget 80 --run-dir ~/runs/search "
                           "-o searched-spatial/\n"
                           "  edgevid search score --plans model 'conv1d1-self_attn1d3-self_attn1d2|self_attn1d1' "
                           "--train-seeds 0 1 2 --run-dir ~/runs/search"))
    ssub = s.add_subparsers(dest="what", required=True)
    lut = ssub.add_parser("lut", help="measure the look-up table of every temporal layer type and stage, and of the "
                                      "spatial blocks' shrinks, on a runtime")
    lut.add_argument("--model", default="teacher", help="model whose UNet backbone the table is for (default: teacher)")
    lut.add_argument("--runtime", default="eager", choices=("eager", "executorch"))
    lut.add_argument("--threads", type=int, default=1)
    lut.add_argument("--num-frames", type=int, help="video frames (default: the model's)")
    lut.add_argument("--height", type=int)
    lut.add_argument("--width", type=int)
    lut.add_argument("--repeats", type=int, default=5, help="timed calls per entry, the median is kept")
    lut.add_argument("-o", "--output", required=True, help="the table, JSON")
    lut.set_defaults(func=cmd_search_lut)
    val = ssub.add_parser("validate", help="predicted (sum of table entries) against measured latency of random UNets")
    val.add_argument("--lut", required=True)
    val.add_argument("--num", type=int, default=5)
    val.add_argument("--repeats", type=int, default=3, help="timed calls per round, the median is kept")
    val.add_argument("--rounds", type=int, default=3,
                     help="interleaved rounds (every plan once per round; the median over rounds is kept)")
    val.add_argument("--seed", type=int, default=0)
    val.add_argument("--spatial", action="store_true", help="random spatial blocks too (the table's spatial entries)")
    val.set_defaults(func=cmd_search_validate)
    run = ssub.add_parser("run", help="eliminate over-budget plans, then search (Alg. A1) from the model's own plan")
    run.add_argument("--lut", required=True, help="a table from `edgevid search lut` (any runtime)")
    run.add_argument("--latency-budget", type=float, help="ms per denoiser call, on the table's runtime")
    run.add_argument("--memory-budget", type=float, help="MB (activations + fp32 weights) per denoiser call")
    run.add_argument("--iterations", type=int, default=6)
    run.add_argument("--sample-actions", type=int, help="evaluate only this many random actions per iteration")
    run.add_argument("--kinds", default="conv1d,self_attn1d,cross_attn1d,conv3d,self_attn3d,cross_attn3d",
                     help="temporal layer types to search over (comma-separated)")
    run.add_argument("--start", help="plan key to start from, e.g. 'conv1d1-self_attn1d3-self_attn1d2|self_attn1d1' "
                                      "(default: the model's own plan, which the plot marks as hand-designed)")
    run.add_argument("--spatial", action="store_true",
                     help="search the spatial blocks too: drop spatial transformers, narrow ResBlocks (the backbone "
                          "fine-tunes at --spatial-lr in every candidate)")
    _add_proxy_arguments(run)
    run.add_argument("-o", "--output", required=True, help="folder: searched preset (unet.json), search.json, pareto.png")
    run.set_defaults(func=cmd_search_run)
    score = ssub.add_parser("score", help="the quality proxy of given plans under several training seeds "
                                          "(the proxy's noise; plans compared at equal training compute)")
    score.add_argument("--plans", nargs="+", required=True,
                       help="plan keys; 'model' is the model's own plan")
    score.add_argument("--train-seeds", type=int, nargs="+", default=[0],
                       help="seeds of the temporal layers' init and batch order (the clips stay the same)")
    score.add_argument("--lut", help="table for each plan's predicted latency (needed by --equal-compute)")
    score.add_argument("--equal-compute", action="store_true",
                       help="train each plan for --proxy-steps x (first plan's ms / its ms) steps: equal compute")
    _add_proxy_arguments(score)
    score.add_argument("-o", "--output", help="write every result as JSON")
    score.set_defaults(func=cmd_search_score)


def _add_proxy_arguments(p) -> None:
    p.add_argument("--model", default="teacher", help="trained backbone whose spatial layers candidates inherit")
    p.add_argument("--proxy-steps", type=int, help="temporal-layer training steps per candidate (default 150)")
    p.add_argument("--proxy-specs", type=int, help="hold-out clips scored per candidate (default 8)")
    p.add_argument("--proxy-metric", choices=("shapesbench", "flow_loss"), default="shapesbench",
                   help="candidate quality: ShapesBench motion on samples, or the share of the spatial-only "
                        "model's held-out flow loss (object cells) that the temporal layers remove")
    p.add_argument("--spatial-lr", type=float,
                   help="lr of the backbone's spatial layers in each candidate's training (default: 0, frozen; "
                        "1e-4 with --spatial)")
    p.add_argument("--run-dir", required=True, help="latent cache and quality cache (reused by later runs)")
    p.add_argument("--threads", type=int, default=1)


def _proxy_config(args, **overrides):
    import dataclasses

    from edgevid.search.quality import ProxyConfig

    spatial_lr = args.spatial_lr if args.spatial_lr is not None else (1e-4 if getattr(args, "spatial", False) else None)
    given = {"steps": args.proxy_steps, "eval_specs": args.proxy_specs, "spatial_lr": spatial_lr, **overrides}
    return dataclasses.replace(ProxyConfig(metric=args.proxy_metric), **{k: v for k, v in given.items() if v is not None})


def _threads(n: int) -> None:
    import torch

    torch.set_num_threads(max(1, n))


def cmd_search_lut(args) -> None:
    from edgevid.pipeline import EdgeVidPipeline, resolve_model_dir
    from edgevid.search.lut import build_table

    _threads(args.threads)
    pipe = EdgeVidPipeline.from_pretrained(resolve_model_dir(args.model), precision="fp32")
    d = pipe.defaults
    latent = pipe.vae.latent_shape(args.num_frames or d.num_frames, args.height or d.height, args.width or d.width)
    t0 = time.perf_counter()
    table = build_table(pipe.unet.config, latent, runtime=args.runtime, threads=args.threads, repeats=args.repeats,
                        progress=lambda key: print(f"  measuring {key}", flush=True))
    table.save(args.output)
    print(f"wrote {args.output}: backbone {table.backbone['ms']:.1f} ms and {len(table.entries)} entries "
          f"({args.runtime}, {args.threads} threads, {table.machine}) in {time.perf_counter() - t0:.0f} s")


def cmd_search_validate(args) -> None:
    import random

    from edgevid.config import TEMPORAL_LAYER_TYPES

    from edgevid.search.evolve import all_plans
    from edgevid.search.lut import LatencyTable, measure_plans
    from edgevid.search.predict import predict
    from edgevid.search.space import UNetPlan, spatial_plans

    if args.rounds < 1 or args.repeats < 1:
        raise ValueError(f"--rounds and --repeats must be >= 1, got {args.rounds} and {args.repeats}")
    table = LatencyTable.load(args.lut)
    _threads(table.threads)
    kinds = tuple(sorted({k.split("/")[0] for k in table.entries} & set(TEMPORAL_LAYER_TYPES)))
    rng = random.Random(args.seed)
    plans = rng.sample(all_plans(len(table.base.channels) + 1, kinds), args.num)
    if args.spatial:
        plans = [UNetPlan(p.positions, rng.choice(spatial_plans(table.base))) for p in plans]
    print("| plan | predicted ms | measured ms | error |\n|---|---|---|---|")
    errors = []
    for plan, measured in zip(plans, measure_plans(table, plans, args.rounds, args.repeats)):
        predicted = predict(table, plan).ms
        errors.append(abs(predicted - measured) / measured)
        signed = 100 * (predicted - measured) / measured
        print(f"| {plan.key.replace('|', chr(92) + '|')} | {predicted:.1f} | {measured:.1f} | {signed:+.1f} % |")
    print(f"largest error {100 * max(errors):.1f} % (target: within 15 %)")


def cmd_search_run(args) -> None:
    import dataclasses

    from edgevid.config import config_to_dict
    from edgevid.pipeline import EdgeVidPipeline, resolve_model_dir
    from edgevid.search.evolve import Evaluated, all_plans, eliminate, eliminate_counts, memory_bytes, search
    from edgevid.search.lut import LatencyTable
    from edgevid.search.pareto import plot_pareto
    from edgevid.search.predict import predict
    from edgevid.search.quality import ProxyConfig, QualityProxy
    from edgevid.search.space import UNetPlan, spatial_plans

    _threads(args.threads)
    table = LatencyTable.load(args.lut)
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    pipe = EdgeVidPipeline.from_pretrained(resolve_model_dir(args.model), precision="fp32")
    own = UNetPlan.from_config(pipe.unet.config, spatial=args.spatial)
    start = UNetPlan.from_key(args.start) if args.start else own
    if (start.spatial is None) == args.spatial:
        raise SystemExit(f"edgevid search run: --start {start.key} " + ("needs a spatial part (+sa...-h...) with "
                         "--spatial" if args.spatial else "has a spatial part: add --spatial"))
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    mem = args.memory_budget * 2**20 if args.memory_budget else None
    plans = all_plans(len(start.positions), kinds)
    if args.spatial:
        spatial = spatial_plans(table.base)
        kept, oom, slow = eliminate_counts(plans, table, spatial, mem, args.latency_budget)
        total = len(plans) * len(spatial)
    else:
        kept_plans, oom, slow = eliminate(plans, table, mem, args.latency_budget)
        kept, total = len(kept_plans), len(plans)
    print(f"coarse stage: {total} plans, {oom} over the memory budget, {slow} then over the latency budget, "
          f"{kept} left")
    proxy_cfg = _proxy_config(args)
    proxy = QualityProxy(pipe, proxy_cfg, Path(args.run_dir))
    t0 = time.perf_counter()
    result = search(table, start, proxy, latency_budget=args.latency_budget, memory_budget=mem,
                    max_iterations=args.iterations, kinds=kinds, sample_actions=args.sample_actions, log=print)
    wall = time.perf_counter() - t0
    best = result.best
    preset = best.plan.to_config(pipe.unet.config)
    (out / "unet.json").write_text(json.dumps(config_to_dict(preset), indent=2) + "\n")
    evaluated = list(result.evaluated.values())
    label = {"flow_loss": "quality proxy (share of the spatial-only flow loss removed)",
             "shapesbench": "quality proxy (motion, smoothness, consistency)"}[proxy_cfg.metric]
    if own.key not in result.evaluated:  # a search started elsewhere still shows the hand-designed plan
        result.evaluated[own.key] = Evaluated(own, proxy(own), predict(table, own))
        evaluated = list(result.evaluated.values())
    title = "temporal-layer and spatial-block search" if args.spatial else "temporal-layer search"
    plot_pareto(evaluated, out / "pareto.png", hand_designed=own.key, chosen=best.plan.key, quality_label=label,
                title=title)
    start_cost = predict(table, start)
    summary = {
        "table": str(args.lut), "runtime": table.runtime, "threads": table.threads, "machine": table.machine,
        "latency_budget_ms": args.latency_budget, "memory_budget_mb": args.memory_budget,
        "coarse": {"plans": total, "over_memory": oom, "over_latency": slow, "kept": kept},
        "hand_designed": own.key,
        "start": {"plan": start.key, "quality": result.evaluated[start.key].quality, "ms": start_cost.ms,
                  "memory_mb": memory_bytes(start_cost) / 2**20},
        "best": {"plan": best.plan.key, "quality": best.quality, "ms": best.cost.ms,
                 "memory_mb": memory_bytes(best.cost) / 2**20},
        "path": [(a, e.plan.key) for a, e in result.path],
        "evaluated": {k: {"quality": e.quality, "ms": e.cost.ms, "memory_mb": memory_bytes(e.cost) / 2**20}
                      for k, e in result.evaluated.items()},
        "wall_s": round(wall, 1), "new_evaluations": len(proxy.seconds_per_evaluation),
        "seconds_per_evaluation": round(sum(proxy.seconds_per_evaluation) / max(1, len(proxy.seconds_per_evaluation)), 1),
    }
    (out / "search.json").write_text(json.dumps(summary, indent=2) + "\n")
    own_eval = result.evaluated[own.key]
    print(f"searched {best.plan.key}: quality {best.quality:.3f} at {best.cost.ms:.1f} ms, against {own.key} "
          f"(hand-designed): {own_eval.quality:.3f} at {own_eval.cost.ms:.1f} ms; {len(evaluated)} plans evaluated in "
          f"{wall / 3600:.2f} h; wrote {out / 'unet.json'}, {out / 'pareto.png'}, {out / 'search.json'}")


def cmd_search_score(args) -> None:
    import numpy as np

    from edgevid.pipeline import EdgeVidPipeline, resolve_model_dir
    from edgevid.search.lut import LatencyTable
    from edgevid.search.predict import predict
    from edgevid.search.quality import QualityProxy
    from edgevid.search.space import UNetPlan

    if args.equal_compute and not args.lut:
        raise SystemExit("edgevid search score: --equal-compute needs --lut (the plans' predicted latencies)")
    _threads(args.threads)
    pipe = EdgeVidPipeline.from_pretrained(resolve_model_dir(args.model), precision="fp32")
    plans = [UNetPlan.from_config(pipe.unet.config) if k == "model" else UNetPlan.from_key(k)
             for k in args.plans]
    table = LatencyTable.load(args.lut) if args.lut else None
    ms = [predict(table, p).ms if table else None for p in plans]
    base_steps = _proxy_config(args).steps
    rows = []
    for plan, plan_ms in zip(plans, ms):
        steps = round(base_steps * ms[0] / plan_ms) if args.equal_compute else base_steps
        qualities, seconds = [], []
        for seed in args.train_seeds:
            proxy = QualityProxy(pipe, _proxy_config(args, steps=steps, train_seed=seed), Path(args.run_dir))
            qualities.append(proxy(plan))
            seconds.append(proxy.results[f"{proxy.settings}:{plan.key}"].get("seconds", 0.0))
            print(f"  {plan.key}, train seed {seed}, {steps} steps: {qualities[-1]:.4f}", flush=True)
        rows.append({"plan": plan.key, "ms": plan_ms, "steps": steps, "train_seeds": args.train_seeds,
                     "quality": qualities, "mean": float(np.mean(qualities)),
                     "std": float(np.std(qualities, ddof=1)) if len(qualities) > 1 else None,
                     "seconds": seconds})
    print("| plan | ms | steps | quality per train seed | mean | std |\n|---|---|---|---|---|---|")
    for r in rows:
        std = f"{r['std']:.4f}" if r["std"] is not None else ""
        ms_text = f"{r['ms']:.1f}" if r["ms"] is not None else ""
        plan_cell = r["plan"].replace("|", "\\|")  # the key's '|' would split the markdown cell
        print(f"| {plan_cell} | {ms_text} | {r['steps']} | {' / '.join(f'{q:.4f}' for q in r['quality'])} | "
              f"{r['mean']:.4f} | {std} |")
    if args.output:
        Path(args.output).write_text(json.dumps({"metric": args.proxy_metric, "model": args.model, "rows": rows},
                                                indent=2) + "\n")
        print(f"wrote {args.output}")
