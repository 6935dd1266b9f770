"""On-device export: the pipeline's stages as ExecuTorch (XNNPACK), ONNX, LiteRT and Core ML
artifacts, and a runner that generates a video from the artifacts alone.

    edgevid export --model default --format executorch -o out/default-et
    edgevid run-exported out/default-et "a red circle moving right on a white background" -o out.mp4

    stages.py    the pipeline cut into static-shape graphs (text, denoiser, streaming decoder)
    mobile.py    delegation-friendly forms of GroupNorm, LayerNorm, upsampling, 3D convs, attention
    formats.py   one exporter per runtime; XNNPACK delegation report; Core ML spec check
    exporter.py  export_pipeline: stages -> artifacts + manifest.json
    manifest.py  reading and checking a manifest (no torch)
    runner.py    ExportedPipeline: tokenizer + runtime + numpy; imports no edgevid model code

Nothing in edgevid.models imports this package; importing it imports nothing heavy.
"""
