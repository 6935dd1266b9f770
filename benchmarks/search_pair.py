"""Searched plans against the hand-designed one, measured: one denoiser call of the default video
on each runtime (medians over interleaved rounds, so that a slow moment hits every plan), beside
the look-up table's prediction, the parameters and the predicted peak memory.

    python benchmarks/search_pair.py --lut ~/runs/search/lut-eager-1t-17f-spatial.json \
        --plans model 'conv1d1-self_attn1d1-none|none+sa0110-h32.64.80' --runtimes eager executorch \
        --threads 1 --rounds 5 --output ~/runs/search/pair_spatial.json

'model' is the table's own UNet (`small` for the shipped teacher). The call is the table's latent
(the windowed default: 8 x 5 x 32 x 32); the first plan is the reference of the ratios.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
from pathlib import Path

import torch


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lut", required=True, help="the table the plans were searched against (its UNet and latent)")
    p.add_argument("--plans", nargs="+", required=True, help="plan keys; 'model' = the table's own UNet")
    p.add_argument("--runtimes", nargs="+", default=["eager"], choices=("eager", "executorch"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds; each times every plan (3 calls)")
    p.add_argument("--output", help="write the figures as JSON")
    args = p.parse_args(argv)

    from edgevid.search.evolve import memory_bytes
    from edgevid.search.lut import LatencyTable, measure_plan_rounds
    from edgevid.search.predict import predict
    from edgevid.search.space import UNetPlan

    torch.set_num_threads(args.threads)
    table = LatencyTable.load(args.lut)
    plans = [UNetPlan.from_config(table.base) if k == "model" else UNetPlan.from_key(k) for k in args.plans]
    costs = {plan.key: predict(table, plan) for plan in plans}
    rows = {key: {"predicted_ms": c.ms, "params": c.params, "predicted_memory_mb": memory_bytes(c) / 2**20}
            for key, c in costs.items()}
    for runtime in args.runtimes:
        runtime_table = dataclasses.replace(table, runtime=runtime, threads=args.threads)
        for plan, ms in zip(plans, measure_plan_rounds(runtime_table, plans, args.rounds)):
            rows[plan.key][f"{runtime}_ms"] = statistics.median(ms)
            rows[plan.key][f"{runtime}_rounds_ms"] = ms  # the spread says whether a small difference is real
    ref = rows[plans[0].key]
    print(f"one denoiser call, latent {table.latent}, {args.threads} thread(s), table {table.runtime} "
          f"({table.machine}); medians of {args.rounds} interleaved rounds\n")
    runtime_cols = "".join(f" {r} ms | x |" for r in args.runtimes)
    print(f"| plan | predicted ms ({table.runtime}) |{runtime_cols} params | predicted memory MB |")
    print("|---|---|" + "---|---|" * len(args.runtimes) + "---|---|")
    for key, r in rows.items():
        cells = "".join(f" {r[f'{rt}_ms']:.1f} | {r[f'{rt}_ms'] / ref[f'{rt}_ms']:.3f} |" for rt in args.runtimes)
        print(f"| {key.replace('|', chr(92) + '|')} | {r['predicted_ms']:.1f} |{cells} {r['params'] / 1e6:.2f} M | "
              f"{r['predicted_memory_mb']:.1f} |")
    print("\nevery round (ms):")
    for key, r in rows.items():
        print(f"  {key}: " + "; ".join(f"{rt} " + ", ".join(f"{x:.1f}" for x in r[f'{rt}_rounds_ms'])
                                        for rt in args.runtimes))
    if args.output:
        Path(args.output).write_text(json.dumps({"lut": args.lut, "threads": args.threads, "rounds": args.rounds,
                                                 "latent": list(table.latent), "plans": rows}, indent=2) + "\n")
        print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
