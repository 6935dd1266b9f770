"""The real-time benchmark (issue 5): `edgevid bench` as a script.

    .venv/bin/python benchmarks/bench.py --repeats 5 --output runs/eval/bench.json

Same flags as `edgevid bench` (see `edgevid bench --help`): the default 5-s, 24 fps, 256x256
video stage by stage (text, denoise, decode, write), real-time factor, time to first frame
with streaming, peak RSS, denoiser FLOPs per step and achieved GFLOP/s against fp32 and bf16
matmul peaks measured in the same run, cold CLI time; side by side the teacher path (25 steps,
CFG, full decoder) and a diffusers-built peer (UNet3DConditionModel + AutoencoderKL, random
weights, 25 steps, CFG). Needs `pip install -e ".[bench]"` for the peer.
"""
import sys

from edgevid.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
