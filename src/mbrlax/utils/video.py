"""Saving rendered frames as a GIF (or MP4 when the name says so)."""

from __future__ import annotations

import os
import warnings
from typing import Sequence

import numpy as np


def save_video(frames: Sequence[np.ndarray], path: str | os.PathLike, fps: int = 30) -> bool:
    """Write ``frames[T]`` of ``[H, W, 3]`` uint8; returns False (with a warning) if it could not."""
    if not frames:
        return False
    try:
        import imageio.v3 as iio

        iio.imwrite(path, np.stack(frames), duration=1000 / fps, loop=0) if str(path).endswith(".gif") \
            else iio.imwrite(path, np.stack(frames), fps=fps)
        return True
    except Exception as e:  # a video is a nicety: never lose a run over it
        warnings.warn(f"could not write video {path}: {e}")
        return False
