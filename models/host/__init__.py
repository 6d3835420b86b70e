"""Host services shared by the command line and the nodes: device/precision policy and the one model resolver."""

from .catalog import (
    AMODAL_SEGMENTATION, CONTENT_COMPLETION, DEFAULT_DEPTH_MODEL, DEPTH, DEPTH_LICENSES, DEPTH_MODELS, DIFFUSION_VAS,
    ModelKind, available_models, check_obtainable, is_checkpoint, is_depth_model, locate_model, resolve_checkpoint,
    resolve_depth_model, resolve_model,
)
from .policy import PRECISIONS, Host, get_host, resolve_device, resolve_dtype, set_host

__all__ = [
    "AMODAL_SEGMENTATION", "CONTENT_COMPLETION", "DEFAULT_DEPTH_MODEL", "DEPTH", "DEPTH_LICENSES", "DEPTH_MODELS",
    "DIFFUSION_VAS", "ModelKind", "available_models", "check_obtainable", "is_checkpoint", "is_depth_model",
    "locate_model", "resolve_checkpoint", "resolve_depth_model", "resolve_model", "PRECISIONS", "Host", "get_host",
    "resolve_device", "resolve_dtype", "set_host",
]
