"""Bool masks kept between passes over a shot at a small fraction of their size.

A shot is read several times (the model's conditions, then its results at the input size, once per stage), and
each pass needs every object's masks again. Decoding a 1080p mask PNG costs about 9 ms and upscaling stage 1's
masks about 30 ms a frame; keeping the masks as they were read or computed, one bit per pixel and zlib-compressed,
costs about 1 ms a frame to store and 0.3 ms to read back. A mask of a person or a car compresses some twenty
times (12 KB at 1080p); a fragmented one (noise, foliage) may not compress at all, and is then kept as packed bits
(253 KB at 1080p, 1 MB at 4K, per frame and object).
"""

from __future__ import annotations

import zlib

import numpy as np
import torch

ZLIB_LEVEL = 1  # the fastest level: masks compress well at it, and the noisy ones no better at any level
RETRY = 16  # after a frame that did not compress, the next this many are kept as packed bits without trying


class PackedMasks:
    """Frames of one object's masks ``[H, W]`` bool by frame index, packed; ``get`` gives them back exactly."""

    def __init__(self, size: tuple[int, int]):
        self.size = tuple(size)
        self._frames: dict[int, tuple[bool, bytes]] = {}
        self._skip = 0  # frames left to keep without trying zlib (it costs 6 ms on a 1080p frame of noise)

    def holds(self, part: slice) -> bool:
        """Whether every frame of ``part`` is kept."""
        return all(i in self._frames for i in range(part.start, part.stop))

    @property
    def nbytes(self) -> int:
        return sum(len(data) for _, data in self._frames.values())

    def put(self, index: int, mask: torch.Tensor) -> None:
        """Keeps frame ``index``: ``mask`` ``[H, W]`` bool (any device)."""
        if tuple(mask.shape) != self.size or mask.dtype != torch.bool:
            raise ValueError(f"PackedMasks: expected a bool mask of {self.size}, got {tuple(mask.shape)} "
                             f"{mask.dtype}.")
        packed = np.packbits(mask.cpu().numpy(), axis=None).tobytes()
        if self._skip:
            self._skip -= 1
            self._frames[index] = (False, packed)
            return
        squeezed = zlib.compress(packed, ZLIB_LEVEL)
        if len(squeezed) * 4 < len(packed) * 3:
            self._frames[index] = (True, squeezed)
        else:  # noise: not worth the time
            self._frames[index], self._skip = (False, packed), RETRY

    def put_part(self, part: slice, masks: torch.Tensor) -> None:
        """Keeps ``masks`` ``[t, H, W]`` as frames ``part``."""
        for i, mask in zip(range(part.start, part.stop), masks):
            self.put(i, mask)

    def get(self, index: int) -> torch.Tensor:
        """Frame ``index`` as ``[H, W]`` bool (a new tensor)."""
        return torch.from_numpy(self._unpacked(index))

    def get_part(self, part: slice) -> torch.Tensor:
        """Frames ``part`` as ``[t, H, W]`` bool (stacked by NumPy: PyTorch's stack of bool is slower)."""
        return torch.from_numpy(np.stack([self._unpacked(i) for i in range(part.start, part.stop)]))

    def _unpacked(self, index: int) -> np.ndarray:
        squeezed, data = self._frames[index]
        bits = np.frombuffer(zlib.decompress(data) if squeezed else data, dtype=np.uint8)
        return np.unpackbits(bits, count=self.size[0] * self.size[1]).view(np.bool_).reshape(self.size)
