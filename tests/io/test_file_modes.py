import os
import stat

import numpy as np

from edgevid.io.video import export
from edgevid.models.weights import save_component


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_written_files_get_the_default_mode_not_mkstemps_0600(tmp_path):
    umask = os.umask(0o022)
    try:
        export(np.zeros((1, 8, 8, 3), np.uint8), tmp_path / "a.mp4", fps=8)
        export(np.zeros((1, 8, 8, 3), np.uint8), tmp_path / "a.gif", fps=8)
        from edgevid.config import VAE_PRESETS
        from edgevid.models.vae import VideoVAE

        save_component(VideoVAE(VAE_PRESETS["tiny"]), VAE_PRESETS["tiny"], tmp_path / "vae")
    finally:
        os.umask(umask)
    for f in ("a.mp4", "a.gif", "vae/config.json", "vae/model.safetensors"):
        assert _mode(tmp_path / f) == 0o644, f
