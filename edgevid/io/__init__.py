"""Video and image files: H.264 MP4 (PyAV), GIF and images (Pillow), atomic writes.

PyAV and Pillow are imported inside the functions, so importing this package is cheap.
"""
from edgevid.io.image import load_image, save_image
from edgevid.io.video import (
    StreamingVideoWriter,
    export,
    export_to_gif,
    export_to_video,
    probe_video,
    read_video,
    to_uint8_frames,
)

__all__ = [
    "StreamingVideoWriter",
    "export",
    "export_to_gif",
    "export_to_video",
    "load_image",
    "probe_video",
    "read_video",
    "save_image",
    "to_uint8_frames",
]
