"""Model folders on the default 5-second video, side by side (issue 19: "quality, latency and memory
on the default 5-second video").

    python benchmarks/video_pair.py --models ~/runs/models/v013 default ~/runs/models/conv \
        --threads 1 --rounds 3 --repeats 3 --output ~/runs/search/video_pair.json

Each round runs `edgevid bench --teacher none --peer none --no-cold --no-precision-compare` once per
model, each in a fresh process (so its peak RSS is that model's alone), the models interleaved so
that a machine's drift between rounds falls on all of them. Reported per model: every round's
median total / denoise / decode seconds and the process's peak RSS, their medians, and each
model's total and denoise time as a fraction of the first model's.
"""
import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

FIELDS = ("total_s", "denoise_s", "decode_s", "peak_rss_mb")


def bench_once(model: str, threads: int, repeats: int, out: Path) -> dict:
    cmd = [sys.executable, "-m", "edgevid.cli", "bench", "--model", model, "--teacher", "none", "--peer", "none",
           "--no-cold", "--no-precision-compare", "--threads", str(threads), "--repeats", str(repeats),
           "--output", str(out)]
    if subprocess.run(cmd, stdout=subprocess.DEVNULL).returncode != 0:  # bench printed its one-line error
        sys.exit(f"video_pair: `edgevid bench --model {model}` failed (above)")
    row = json.loads(out.read_text())["paths"]["default"]
    return {k: row[k] for k in (*FIELDS, "denoiser_calls", "denoiser_gflop_per_video")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", required=True, help="model folders or shipped names; the first is the reference")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (fresh processes)")
    ap.add_argument("--repeats", type=int, default=3, help="timed videos per process (bench's median)")
    ap.add_argument("--output", help="JSON with every round")
    args = ap.parse_args(argv)
    if args.rounds < 1 or args.repeats < 1 or args.threads < 1:
        ap.error("--rounds, --repeats and --threads must be >= 1")

    rounds = {m: [] for m in args.models}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for i, m in enumerate(args.models):
                rounds[m].append(bench_once(m, args.threads, args.repeats, Path(tmp) / f"{r}_{i}.json"))
                print(f"round {r + 1}/{args.rounds} {m}: " +
                      ", ".join(f"{k} {rounds[m][-1][k]:.2f}" for k in FIELDS), flush=True)
    medians = {m: {k: statistics.median(x[k] for x in rs) for k in FIELDS} for m, rs in rounds.items()}
    ref = medians[args.models[0]]
    print(f"\n| model | total s | denoise s | decode s | peak RSS MB | total x first | denoise x first |")
    print("|---|---|---|---|---|---|---|")
    for m, md in medians.items():
        print(f"| {m} | {md['total_s']:.2f} | {md['denoise_s']:.2f} | {md['decode_s']:.2f} | {md['peak_rss_mb']:.0f} | "
              f"{md['total_s'] / ref['total_s']:.3f} | {md['denoise_s'] / ref['denoise_s']:.3f} |")
    if args.output:
        Path(args.output).write_text(json.dumps({"threads": args.threads, "repeats": args.repeats,
                                                 "rounds": rounds, "medians": medians}, indent=2) + "\n")
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
