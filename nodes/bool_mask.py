"""`BoolMask`: a ComfyUI MASK (float32 ``[B, H, W]``, every value 0 or 1) whose values are held as bool.

ComfyUI's MASK is floating point in 0..1, and core mask nodes (Invert, Threshold, Feather, Grow, Mask To Image, Join
Image with Alpha) compute on it as such. A long shot's masks at its own size are large as float32: 480 frames of
1080p are 4 GB per mask output, and a workflow holds several. A `BoolMask` is a float32 tensor to everything that
computes with it (its ``dtype``, ``shape`` and every operation's result are float32's), while it keeps one byte
per pixel: any operation on it first makes the float32 values (the operation's own cost, as on any MASK), indexing
along frames makes only the frames it takes, and the pack's own nodes read its bool values directly (`bool_values`).

Used for the masks of the VIDEO path (long shots); the IMAGE path's masks are plain float32 tensors.
"""

from __future__ import annotations

import torch
from torch.utils._pytree import tree_map

_aten = torch.ops.aten
_FRAME_INDEXING = (_aten.select.int, _aten.slice.Tensor)  # on dim 0: made from the frames taken only


def _dense(bits: torch.Tensor) -> torch.Tensor:
    return bits.view(torch.uint8).to(torch.float32)  # through uint8: bool -> float is not vectorized on the CPU


class BoolMask(torch.Tensor):
    """A float32 MASK ``[B, H, W]`` of 0 and 1 held as ``bits`` (bool, the same shape)."""

    bits: torch.Tensor

    @staticmethod
    def __new__(cls, bits: torch.Tensor):
        if not torch.is_tensor(bits) or bits.dtype != torch.bool:
            raise TypeError(f"BoolMask holds a bool tensor, got {getattr(bits, 'dtype', type(bits).__name__)}.")
        return torch.Tensor._make_wrapper_subclass(cls, bits.shape, dtype=torch.float32, device=bits.device)

    def __init__(self, bits: torch.Tensor):
        self.bits = bits

    def dense(self) -> torch.Tensor:
        """The float32 values as a plain tensor (a new one: ``B * H * W * 4`` bytes)."""
        return _dense(self.bits)

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _FRAME_INDEXING and isinstance(args[0], BoolMask) and (args[1] if len(args) > 1 else 0) == 0:
            return _dense(func(args[0].bits, *args[1:], **kwargs))

        def unwrap(x):
            return x.dense() if isinstance(x, BoolMask) else x

        return func(*tree_map(unwrap, args), **tree_map(unwrap, kwargs))

    # Tensor methods that do not go through the dispatcher
    def numpy(self, *args, **kwargs):
        return self.dense().numpy(*args, **kwargs)

    def tolist(self):
        return self.dense().tolist()

    def __reduce_ex__(self, protocol):
        return _dense, (self.bits,)  # pickled (saved) as the plain float32 tensor it stands for

    def __repr__(self) -> str:
        return f"BoolMask(shape={tuple(self.shape)}, float32 held as bool)"


def as_mask(bits: torch.Tensor) -> torch.Tensor:
    """A bool ``[B, H, W]`` tensor as a ComfyUI MASK (a `BoolMask`; nothing copied)."""
    return BoolMask(bits)


def bool_values(mask) -> torch.Tensor | None:
    """A `BoolMask`'s bool values (no copy); None for any other value."""
    return mask.bits if isinstance(mask, BoolMask) else None
