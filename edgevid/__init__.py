"""edgevid: fast video diffusion for phones and laptops (SnapGen-V, MobileVD).

Heavy modules (torch models, the pipeline) are imported lazily so that `edgevid --help`
and the CLI's argument checks stay fast.
"""
__version__ = "0.1.0"


def __getattr__(name):
    if name == "EdgeVidPipeline":
        from edgevid.pipeline import EdgeVidPipeline

        return EdgeVidPipeline
    if name in ("export_to_video", "export_to_gif"):
        from edgevid.io import video

        return getattr(video, name)
    raise AttributeError(f"module 'edgevid' has no attribute {name!r}")
