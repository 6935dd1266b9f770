"""Rectified-flow math: time schedule, training loss, guidance wrapper, samplers."""
from edgevid.flow.denoiser import GuidedVelocity
from edgevid.flow.loss import rectified_flow_loss
from edgevid.flow.sample import chunk_plan, sample_euler, sample_euler_with_prefix
from edgevid.flow.schedule import interpolate, logit_normal_t, shift_time, time_grid

__all__ = ["GuidedVelocity", "rectified_flow_loss", "sample_euler", "sample_euler_with_prefix", "chunk_plan", "interpolate", "logit_normal_t", "shift_time",
           "time_grid"]
