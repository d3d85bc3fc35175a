"""Helpers shared by the torch encoders (kept out of ``base`` so it imports without torch)."""

from __future__ import annotations

import hashlib
import os
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from PIL import Image


def package_version(dist: str) -> str:
    """Installed version of a distribution, or ``"unknown"`` (a vendored copy, say)."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def file_sha256(path: str | os.PathLike[str], length: int = 16) -> str:
    """Short content hash of a weights file: the same file under another name is the same model."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:length]


def state_dict_sha256(module: torch.nn.Module, length: int = 16) -> str:
    """Short hash of a module's parameters and buffers (names, dtypes, shapes and bytes).

    Identifies the weights of a model loaded by name, where there is no single file to hash.
    """
    import torch

    digest = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:length]


def to_rgb(image: Image.Image) -> Image.Image:
    """An RGB copy of any PIL image; transparent pixels become white.

    Plain ``convert("RGB")`` keeps whatever colour sits under transparent pixels (often black),
    which would make the same product on a transparent or a white background look different.
    """
    from PIL import Image

    if image.mode == "RGB":
        return image
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")
