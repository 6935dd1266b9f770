"""Run in a fresh process by tests/test_estimate.py: generate + write one video with a pipeline
folder, print JSON {predicted, measured} of the memory growth (after a warm-up that loads the
libraries) and of the wall time."""
import json
import sys
import time

import torch

from _rss import peak, reset_peak
from edgevid.estimate import OVERHEAD_BYTES, estimate_generation, machine_rates
from edgevid.io.video import export
from edgevid.pipeline import EdgeVidPipeline, frames_to_uint8

model, T, H, W, stream = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
out = sys.argv[6]
torch.set_num_threads(1)
pipe = EdgeVidPipeline.from_pretrained(model)
d = pipe.defaults
m = pipe.size_multiple


def run(T, H, W):
    kw = dict(num_frames=T, height=H, width=W, generator=torch.Generator().manual_seed(0))
    if stream:
        from edgevid.io.video import StreamingVideoWriter

        with StreamingVideoWriter(out, fps=24) as writer:
            for frames in pipe.stream("a red circle moving left", first_window_latent_frames=0, **kw):
                writer.write(frames_to_uint8(frames))
    else:
        result = pipe("a red circle moving left", **kw)
        export(frames_to_uint8(result.frames[0]), out, fps=24)


args = (pipe, T, H, W, d.num_inference_steps, d.guidance_scale, d.window_latent_frames, d.overlap_latent_frames)
est = estimate_generation(*args, stream=stream, rates={"unet": 1.0, "vae": 1.0})  # memory only: traces on meta
run(1, m, m)  # warm-up: kernels, PyAV and x264 loaded, the allocator's first arenas
base = reset_peak()
t0 = time.perf_counter()
run(T, H, W)
wall = time.perf_counter() - t0
grown = peak() - base
est = estimate_generation(*args, stream=stream, rates=machine_rates(pipe))  # measuring the rates allocates too: after
print(json.dumps({"predicted_bytes": est.peak_bytes - OVERHEAD_BYTES, "measured_bytes": grown,
                  "predicted_s": est.seconds, "measured_s": wall}))
