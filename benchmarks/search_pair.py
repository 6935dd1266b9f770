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
    from edgevid.search.lut import LatencyTable, time_module, unet_inputs
    from edgevid.search.predict import predict
    from edgevid.search.space import UNetPlan

    torch.set_num_threads(args.threads)
    table = LatencyTable.load(args.lut)
    plans = [UNetPlan.from_config(table.base) if k == "model" else UNetPlan.from_key(k) for k in args.plans]
    inputs = unet_inputs(table.base, table.latent)
    costs = {plan.key: predict(table, plan) for plan in plans}
    rows = {key: {"predicted_ms": c.ms, "params": c.params, "predicted_memory_mb": memory_bytes(c) / 2**20}
            for key, c in costs.items()}
    for runtime in args.runtimes:
        callables = {plan.key: _runner(table, plan, runtime, args.threads, inputs) for plan in plans}
        times = {key: [] for key in callables}
        for _ in range(args.rounds):
            for key, run in callables.items():
                times[key].append(run())
        for key, ts in times.items():
            rows[key][f"{runtime}_ms"] = statistics.median(ts)
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
    if args.output:
        Path(args.output).write_text(json.dumps({"lut": args.lut, "threads": args.threads, "rounds": args.rounds,
                                                 "latent": list(table.latent), "plans": rows}, indent=2) + "\n")
        print(f"\nwrote {args.output}")


def _runner(table, plan, runtime: str, threads: int, inputs):
    """A zero-argument function that times one round (the median of 3 calls) of `plan` on `runtime`:
    the module is built and exported once, outside the timed rounds."""
    from edgevid.compiled import DenoiserStep
    from edgevid.models.unet import SpatioTemporalUNet
    from edgevid.search.lut import median_seconds

    torch.manual_seed(0)
    module = DenoiserStep(SpatioTemporalUNet(plan.to_config(table.base))).eval().requires_grad_(False)
    if runtime == "eager":
        def run():
            with torch.no_grad():
                return 1e3 * median_seconds(lambda: module(*inputs), 3)
        return run
    import tempfile

    from edgevid.export.formats import export_executorch
    from edgevid.export.mobile import mobile_friendly
    from edgevid.export.runner import _ExecuTorch

    folder = Path(tempfile.mkdtemp(prefix="search_pair_"))
    path = folder / "unet.pte"
    with torch.no_grad():
        export_executorch(mobile_friendly(module).eval().requires_grad_(False), inputs,
                          [f"in{i}" for i in range(len(inputs))], ["out"], path)
    program = _ExecuTorch(path, threads)
    arrays = [x.numpy() for x in inputs]
    return lambda: 1e3 * median_seconds(lambda: program(*arrays), 3)


if __name__ == "__main__":
    main()
