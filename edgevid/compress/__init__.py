"""Model compression: smaller, faster networks as new configs of the same classes (DESIGN.md)."""
from edgevid.compress.decoder import compress_decoder, compressed_vae, decoder_distillation_loss

__all__ = ["compress_decoder", "compressed_vae", "decoder_distillation_loss"]
