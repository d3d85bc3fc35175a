"""Build the redistributable demo catalog bundle from Fashion-MNIST.

The bundle is a small, self-contained shop: about 1,000 products whose pictures are real
Fashion-MNIST training images (MIT licence, Zalando Research) and whose titles,
descriptions, brands and prices are generated from templates, plus a few hundred simulated
shoppers with consistent tastes whose browsing sessions produce the interaction log.

Output layout (read by ``manage.py recs_import DIR``)::

    items.csv          item_id,title,description,category,brand,price,image
    interactions.csv   user_id,item_id,event,value,timestamp   (sorted by time)
    images/<item_id>.png
    README.md          provenance, licence, counts and the rebuild command

The script is the generator; the words are data. Materials, categories and their product
types, styles, features and occasions, brands and the description templates live in
``vocabulary.json`` next to this script (plain JSON, with "_comment" notes for editors). It is
read and checked at start; edit it to change the product texts, then rebuild the bundle.

Everything is driven by ``--seed``: the same seed and the same source files give
byte-identical output, so the bundle can be committed and rebuilt for review.

Usage (from the repository root)::

    .venv/bin/python demo/build_bundle.py [--source DIR] [--out DIR] [--seed 7]

Only numpy, Pillow and the standard library are used; the IDX files are parsed here so the
build needs no network access and no dataset loader.
"""

import argparse
import csv
import gzip
import hashlib
import json
import math
import struct
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from PIL import Image

# Where the Debian package ``dataset-fashion-mnist`` installs the IDX files.
DEFAULT_SOURCE = Path("/usr/share/datasets/fashion-mnist")
DEFAULT_OUT = Path(__file__).resolve().parent / "bundle"
DEFAULT_SEED = 7

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"

ITEMS_PER_CLASS = 100
N_USERS = 400
IMAGE_SIZE = 56
MAX_BUNDLE_BYTES = 3_000_000

# The interaction window: 90 days ending with 2026-06-30 (end is exclusive).
WINDOW_END = datetime(2026, 7, 1, tzinfo=UTC)
WINDOW_DAYS = 90
WINDOW_START = WINDOW_END - timedelta(days=WINDOW_DAYS)
WINDOW_SECONDS = WINDOW_DAYS * 86400

EVENTS = ("view", "click", "cart", "purchase", "like", "rating")

# Independent random streams per stage, so that e.g. rewording a template does not reshuffle
# the simulated shoppers (each stage draws from its own generator derived from the seed).
STAGE_SELECT, STAGE_CATALOG, STAGE_USERS, STAGE_EVENTS = range(4)


# --------------------------------------------------------------------------------------------
# Vocabulary: materials, categories, product types, brands and description templates are data,
# kept in vocabulary.json next to this script (see the "_comment" keys there). It is read once
# at start, checked, and turned into the dataclasses below.
# --------------------------------------------------------------------------------------------

VOCABULARY_FILE = Path(__file__).resolve().parent / "vocabulary.json"


@dataclass(frozen=True)
class Noun:
    """A product type within a category, with the materials and styles that make sense for it."""

    name: str
    materials: tuple[str, ...]
    plural: bool = False
    styles: tuple[str, ...] = ()  # empty: use the category's styles
    features: tuple[str, ...] = ()  # empty: use the category's features
    occasions: tuple[str, ...] = ()  # empty: use the category's occasions


@dataclass(frozen=True)
class Category:
    """One Fashion-MNIST class, presented as a shop category."""

    label: int
    source_name: str  # the Fashion-MNIST class name
    name: str  # the shop-facing name written to items.csv
    base_price: float  # typical mid-market price, before brand and material adjustments
    popularity: float  # how often shoppers pick it as a favourite
    styles: tuple[str, ...]
    nouns: tuple[Noun, ...]
    features: tuple[str, ...]
    occasions: tuple[str, ...]


@dataclass(frozen=True)
class Brand:
    """An invented brand: what it sells, how expensive it is and how it talks about itself."""

    name: str
    price_level: float  # multiplier on the category's base price
    categories: dict[str, float]  # shop category name -> share of that brand's range
    blurb: str
    # Optional product-type range per category, so e.g. a sportswear label sells joggers
    # rather than pleated wool trousers.
    nouns: dict[str, tuple[str, ...]] | None = None

    @property
    def tier(self) -> int:
        """0 budget, 1 mid-market, 2 premium: used to match shoppers' price bands."""
        if self.price_level < 0.9:
            return 0
        return 1 if self.price_level < 1.4 else 2


@dataclass(frozen=True)
class Descriptions:
    """Sentence templates for product descriptions (``str.format`` with DESCRIPTION_FIELDS)."""

    proper_words: frozenset[str]  # keep their capital mid-sentence (places, people, acronyms)
    openers_plural: tuple[str, ...]
    openers_singular: tuple[str, ...]
    middles: tuple[str, ...]


@dataclass(frozen=True)
class Vocabulary:
    """Everything read from vocabulary.json."""

    materials: dict[str, tuple[float, str]]  # name -> (price multiplier, selling point)
    categories: tuple[Category, ...]  # in Fashion-MNIST label order
    brands: tuple[Brand, ...]
    descriptions: Descriptions


# The placeholders a description template may use; describe() fills in all of them.
DESCRIPTION_FIELDS = (
    "style",
    "thing",
    "material",
    "feature_a",
    "feature_b",
    "Article",
    "occasion",
    "pronoun",
)


class VocabularyError(ValueError):
    """vocabulary.json is malformed or inconsistent."""


def _without_comments(value: object) -> object:
    """Drop the "_comment" keys (notes for whoever edits the JSON) at every level."""
    if isinstance(value, dict):
        return {k: _without_comments(v) for k, v in value.items() if k != "_comment"}
    if isinstance(value, list):
        return [_without_comments(v) for v in value]
    return value


def _object(
    value: object,
    where: str,
    required: tuple[str, ...] = (),
    optional: tuple[str, ...] | None = (),
) -> dict:
    """Check a JSON object's keys: every required one, no unknown ones (catches typos).

    ``optional=None`` allows any further keys (tables keyed by name).
    """
    if not isinstance(value, dict):
        raise VocabularyError(f"{where}: expected an object")
    missing = [key for key in required if key not in value]
    unknown = [] if optional is None else [k for k in value if k not in (*required, *optional)]
    if missing:
        raise VocabularyError(f"{where}: missing {', '.join(missing)}")
    if unknown:
        raise VocabularyError(f"{where}: unknown key {', '.join(unknown)}")
    return value


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise VocabularyError(f"{where}: expected a positive number")
    return float(value)


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise VocabularyError(f"{where}: expected a non-empty string")
    return value


def _texts(value: object, where: str, least: int = 1) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) < least:
        raise VocabularyError(f"{where}: expected a list of at least {least} strings")
    return tuple(_text(v, where) for v in value)


def _materials(raw: object) -> dict[str, tuple[float, str]]:
    materials = {}
    for name, entry in _object(raw, "materials", optional=None).items():
        where = f"materials.{name}"
        entry = _object(entry, where, ("price_factor", "note"))
        materials[name] = (
            _number(entry["price_factor"], f"{where}.price_factor"),
            _text(entry["note"], f"{where}.note"),
        )
    return materials


def _noun(raw: object, where: str, materials: dict, shared: dict[str, tuple[str, ...]]) -> Noun:
    raw = _object(raw, where, ("name", "materials"), ("plural", "styles", "features", "occasions"))
    for material in _texts(raw["materials"], f"{where}.materials"):
        if material not in materials:
            raise VocabularyError(f"{where}: material {material!r} is not in materials")
    occasions = raw.get("occasions", [])
    if isinstance(occasions, str):  # the name of a shared occasion list
        if occasions not in shared:
            raise VocabularyError(f"{where}: {occasions!r} is not in shared_occasions")
        occasions = list(shared[occasions])
    plural = raw.get("plural", False)
    if not isinstance(plural, bool):
        raise VocabularyError(f"{where}.plural: expected true or false")
    return Noun(
        name=_text(raw["name"], f"{where}.name"),
        materials=tuple(raw["materials"]),
        plural=plural,
        styles=_texts(raw.get("styles", []), f"{where}.styles", 0),
        features=_texts(raw.get("features", []), f"{where}.features", 0),
        occasions=_texts(occasions, f"{where}.occasions", 0),
    )


def _category(raw: object, where: str, materials: dict, shared: dict) -> Category:
    keys = ("label", "source_name", "name", "base_price", "popularity")
    raw = _object(raw, where, (*keys, "styles", "features", "occasions", "nouns"))
    if not isinstance(raw["nouns"], list) or not raw["nouns"]:
        raise VocabularyError(f"{where}.nouns: expected a non-empty list")
    nouns = tuple(
        _noun(n, f"{where}.nouns[{i}]", materials, shared) for i, n in enumerate(raw["nouns"])
    )
    if len({n.name for n in nouns}) != len(nouns):
        raise VocabularyError(f"{where}: noun names must be unique")
    for noun in nouns:
        if len(noun.features) == 1:
            raise VocabularyError(f"{where}: {noun.name} needs two features or none")
    return Category(
        label=raw["label"],
        source_name=_text(raw["source_name"], f"{where}.source_name"),
        name=_text(raw["name"], f"{where}.name"),
        base_price=_number(raw["base_price"], f"{where}.base_price"),
        popularity=_number(raw["popularity"], f"{where}.popularity"),
        styles=_texts(raw["styles"], f"{where}.styles"),
        nouns=nouns,
        # Each description names two different features.
        features=_texts(raw["features"], f"{where}.features", 2),
        occasions=_texts(raw["occasions"], f"{where}.occasions"),
    )


def _brand(raw: object, where: str, categories: dict[str, Category]) -> Brand:
    raw = _object(raw, where, ("name", "price_level", "blurb", "categories"), ("nouns",))
    shares = _object(raw["categories"], f"{where}.categories", optional=tuple(categories))
    if not shares:
        raise VocabularyError(f"{where}.categories: the brand must sell something")
    nouns = _object(raw.get("nouns", {}), f"{where}.nouns", optional=tuple(shares))
    for name, allowed in nouns.items():
        known = {n.name for n in categories[name].nouns}
        for noun in _texts(allowed, f"{where}.nouns.{name}"):
            if noun not in known:
                raise VocabularyError(f"{where}.nouns.{name}: {noun!r} is not a {name} noun")
    return Brand(
        name=_text(raw["name"], f"{where}.name"),
        price_level=_number(raw["price_level"], f"{where}.price_level"),
        categories={k: _number(v, f"{where}.categories.{k}") for k, v in shares.items()},
        blurb=_text(raw["blurb"], f"{where}.blurb"),
        nouns={k: tuple(v) for k, v in nouns.items()} if "nouns" in raw else None,
    )


def _descriptions(raw: object, where: str) -> Descriptions:
    keys = ("proper_words", "openers_plural", "openers_singular", "middles")
    raw = _object(raw, where, keys)
    for key in keys[1:]:
        for template in _texts(raw[key], f"{where}.{key}"):
            try:
                template.format(**{field: field for field in DESCRIPTION_FIELDS})
            except (KeyError, IndexError, ValueError) as exc:
                raise VocabularyError(f"{where}.{key}: bad template {template!r} ({exc})") from None
    return Descriptions(
        proper_words=frozenset(_texts(raw["proper_words"], f"{where}.proper_words", 0)),
        openers_plural=tuple(raw["openers_plural"]),
        openers_singular=tuple(raw["openers_singular"]),
        middles=tuple(raw["middles"]),
    )


def _vocabulary(raw: object) -> Vocabulary:
    keys = ("materials", "shared_occasions", "categories", "brands", "descriptions")
    raw = _object(raw, "top level", keys)
    materials = _materials(raw["materials"])
    shared = _object(raw["shared_occasions"], "shared_occasions", optional=None)
    shared = {k: _texts(v, f"shared_occasions.{k}") for k, v in shared.items()}
    if not isinstance(raw["categories"], list):
        raise VocabularyError("categories: expected a list")
    categories = tuple(
        _category(c, f"categories[{i}]", materials, shared) for i, c in enumerate(raw["categories"])
    )
    for position, category in enumerate(categories):
        if type(category.label) is not int or category.label != position:
            raise VocabularyError(
                f"categories[{position}]: label must be {position} (list in label order)"
            )
    by_name = {c.name: c for c in categories}
    if not isinstance(raw["brands"], list):
        raise VocabularyError("brands: expected a list")
    brands = tuple(_brand(b, f"brands[{i}]", by_name) for i, b in enumerate(raw["brands"]))
    if len(by_name) != len(categories) or len({b.name for b in brands}) != len(brands):
        raise VocabularyError("category names and brand names must be unique")
    for category in categories:
        if not any(category.name in brand.categories for brand in brands):
            raise VocabularyError(f"no brand sells {category.name}")
    return Vocabulary(
        materials=materials,
        categories=categories,
        brands=brands,
        descriptions=_descriptions(raw["descriptions"], "descriptions"),
    )


def load_vocabulary(path: Path) -> Vocabulary:
    """Read vocabulary.json into the dataclasses, keeping the file's order throughout."""
    try:
        return _vocabulary(_without_comments(json.loads(path.read_text(encoding="utf-8"))))
    except (OSError, json.JSONDecodeError, VocabularyError) as exc:
        raise VocabularyError(f"{path}: {exc}") from None


# Read once at start; the rest of the script uses these module constants.
try:
    _VOCABULARY = load_vocabulary(VOCABULARY_FILE)
except VocabularyError as exc:
    sys.exit(f"error: {exc}")
MATERIALS = _VOCABULARY.materials
CATEGORIES = _VOCABULARY.categories
BRANDS = _VOCABULARY.brands
DESCRIPTIONS = _VOCABULARY.descriptions


# --------------------------------------------------------------------------------------------
# Source data
# --------------------------------------------------------------------------------------------


def read_idx(path: Path) -> np.ndarray:
    """Parse a gzipped IDX file (the MNIST container format) into a uint8 array.

    The header is a big-endian magic number whose low byte is the number of dimensions and
    whose second-lowest byte is the element type (0x08 = unsigned byte), followed by one
    big-endian uint32 per dimension.
    """
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != math.prod(dims):
        raise ValueError(f"{path}: expected {math.prod(dims)} values, found {array.size}")
    return array.reshape(dims)


def sha256_of(path: Path) -> str:
    """Checksum recorded in the README so a rebuild can confirm it used the same inputs."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------------------------
# Catalogue
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    item_id: str
    source_index: int  # row in the Fashion-MNIST training set
    category: Category
    brand: Brand
    title: str
    description: str
    price_cents: int


def select_images(labels: np.ndarray, rng: np.random.Generator) -> list[int]:
    """Pick ITEMS_PER_CLASS training images per class, then shuffle them into catalogue order.

    The shuffle keeps item ids from encoding the category (fm-0001..fm-0100 are not all
    T-shirts), which would otherwise leak the label into anything keyed on the id.
    """
    chosen: list[int] = []
    for category in CATEGORIES:
        candidates = np.flatnonzero(labels == category.label)
        picked = rng.choice(candidates, size=ITEMS_PER_CLASS, replace=False)
        chosen.extend(int(i) for i in np.sort(picked))
    order = rng.permutation(len(chosen))
    return [chosen[i] for i in order]


def _lower(phrase: str) -> str:
    """Lower-case a title phrase for use mid-sentence, keeping proper nouns and letter-names."""
    words = []
    for word in phrase.split(" "):
        head, _, tail = word.partition("-")
        if word in DESCRIPTIONS.proper_words:
            words.append(word)
        elif len(head) == 1 and tail:  # "T-Shirt" -> "T-shirt", "A-Line" -> "A-line"
            words.append(f"{head}-{tail.lower()}")
        else:
            words.append(word.lower())
    return " ".join(words)


def _article(phrase: str) -> str:
    """'a' or 'an' for the phrase (no style in the vocabulary has a silent 'h' or a 'yoo' 'u')."""
    return "an" if phrase[:1].lower() in "aeiou" else "a"


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _charm_price(amount: float) -> int:
    """Round to shop-like prices in cents: 24.99 below 100, 129.99 (steps of 5) above."""
    if amount < 100:
        return max(499, round(amount) * 100 - 1)
    return round(amount / 5) * 500 - 1


def describe(
    rng: np.random.Generator,
    category: Category,
    brand: Brand,
    noun: Noun,
    style: str,
    material: str,
) -> str:
    """Two or three sentences: construction, occasion and (usually) a material or brand note."""
    features = noun.features or category.features
    first, second = rng.choice(len(features), size=2, replace=False)
    style_l = _lower(style)
    words = {
        "style": style_l,
        "thing": _lower(noun.name),
        "material": _lower(material),
        "feature_a": features[int(first)],
        "feature_b": features[int(second)],
        "Article": _article(style_l).capitalize(),
        "occasion": _pick(rng, noun.occasions or category.occasions),
        "pronoun": "them" if noun.plural else "it",
    }
    openers = DESCRIPTIONS.openers_plural if noun.plural else DESCRIPTIONS.openers_singular
    # Draw order (features, occasion, opener, middle, then the roll) is part of the output.
    opener = _pick(rng, openers)
    middle = _pick(rng, DESCRIPTIONS.middles)
    sentences = [opener.format(**words), middle.format(**words)]
    roll = rng.random()
    if roll < 0.4:
        sentences.append(MATERIALS[material][1])
    elif roll < 0.75:
        sentences.append(brand.blurb)
    return " ".join(sentences)


def build_catalog(
    source_indices: list[int], labels: np.ndarray, rng: np.random.Generator
) -> list[Item]:
    """Give every selected image a brand, a product type, a unique title and a price."""
    items: list[Item] = []
    titles: set[str] = set()
    for position, source_index in enumerate(source_indices, start=1):
        category = CATEGORIES[int(labels[source_index])]
        sellers = [b for b in BRANDS if category.name in b.categories]
        weights = np.array([b.categories[category.name] for b in sellers])
        brand = sellers[int(rng.choice(len(sellers), p=weights / weights.sum()))]
        allowed = (brand.nouns or {}).get(category.name)
        nouns = [n for n in category.nouns if allowed is None or n.name in allowed]
        # Redraw on a clash so every product is distinguishable by its title; the vocabulary
        # has far more combinations than any brand sells within one category.
        for _ in range(100):
            noun = nouns[int(rng.integers(len(nouns)))]
            style = _pick(rng, noun.styles or category.styles)
            material = _pick(rng, noun.materials)
            title = f"{brand.name} {style} {material} {noun.name}"
            if title not in titles:
                break
        else:
            raise RuntimeError(f"could not find a unique title for {category.name}/{brand.name}")
        titles.add(title)
        # Spread around the brand/material price point so prices within a brand still vary.
        amount = (
            category.base_price
            * brand.price_level
            * MATERIALS[material][0]
            * math.exp(rng.normal(0.0, 0.12))
        )
        items.append(
            Item(
                item_id=f"fm-{position:04d}",
                source_index=source_index,
                category=category,
                brand=brand,
                title=title,
                description=describe(rng, category, brand, noun, style, material),
                price_cents=_charm_price(amount),
            )
        )
    return items


def write_images(items: list[Item], images: np.ndarray, out: Path) -> None:
    """Save each item's real Fashion-MNIST picture, upscaled 2x, as an 8-bit grayscale PNG."""
    image_dir = out / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    wanted = {f"{item.item_id}.png" for item in items}
    # Drop images left over from an earlier build with a different catalogue size.
    for stale in image_dir.glob("fm-*.png"):
        if stale.name not in wanted:
            stale.unlink()
    for item in items:
        picture = Image.fromarray(images[item.source_index])
        picture = picture.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS)
        # No metadata is written, so identical pixels give identical bytes.
        picture.convert("L").save(image_dir / f"{item.item_id}.png", optimize=True)


def write_items(items: list[Item], out: Path) -> None:
    with (out / "items.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["item_id", "title", "description", "category", "brand", "price", "image"])
        for item in items:
            writer.writerow(
                [
                    item.item_id,
                    item.title,
                    item.description,
                    item.category.name,
                    item.brand.name,
                    f"{item.price_cents // 100}.{item.price_cents % 100:02d}",
                    f"images/{item.item_id}.png",
                ]
            )


# --------------------------------------------------------------------------------------------
# Shoppers
# --------------------------------------------------------------------------------------------

# Shoppers' price bands: preferred price relative to the category median, and how common
# each band is. Budget shoppers are the most common, as in most fashion shops.
PRICE_BANDS = (("budget", 0.7, 0.35), ("mid", 1.0, 0.45), ("premium", 1.7, 0.20))


@dataclass(frozen=True)
class Shopper:
    user_id: str
    categories: tuple[int, ...]  # indices into CATEGORIES
    brands: tuple[int, ...]  # indices into BRANDS
    band: int  # index into PRICE_BANDS
    n_sessions: int
    first_day: float  # days after WINDOW_START when the shopper first shows up


def make_shoppers(rng: np.random.Generator) -> list[Shopper]:
    """Draw shoppers with 1-3 favourite categories, 1-2 brands and a price band."""
    category_weights = np.array([c.popularity for c in CATEGORIES])
    category_weights /= category_weights.sum()
    band_weights = np.array([b[2] for b in PRICE_BANDS])
    shoppers = []
    for number in range(1, N_USERS + 1):
        n_categories = int(rng.choice([1, 2, 3], p=[0.35, 0.45, 0.20]))
        categories = rng.choice(
            len(CATEGORIES), size=n_categories, replace=False, p=category_weights
        )
        band = int(rng.choice(len(PRICE_BANDS), p=band_weights))
        # Favourite brands must sell what the shopper likes, and fit the budget more often
        # than not (tier distance 0 -> strong, 2 -> rare).
        brand_weights = np.array(
            [
                sum(b.categories.get(CATEGORIES[c].name, 0.0) for c in categories)
                * (3.0, 1.0, 0.25)[abs(b.tier - band)]
                for b in BRANDS
            ]
        )
        n_brands = min(
            int(rng.choice([1, 2], p=[0.55, 0.45])), int(np.count_nonzero(brand_weights))
        )
        brands = rng.choice(
            len(BRANDS), size=n_brands, replace=False, p=brand_weights / brand_weights.sum()
        )
        # Long-tailed activity: a block of one-off visitors plus a log-normal majority, so the
        # log has both cold-start users with a handful of events and a few heavy shoppers.
        n_sessions = 1 if rng.random() < 0.12 else min(1 + int(rng.lognormal(1.7, 0.95)), 60)
        # About a third are existing customers active from day one; the rest join later.
        first_day = 0.0 if rng.random() < 0.35 else float(rng.uniform(0, WINDOW_DAYS - 10))
        shoppers.append(
            Shopper(
                user_id=f"u-{number:04d}",
                categories=tuple(sorted(int(c) for c in categories)),
                brands=tuple(sorted(int(b) for b in brands)),
                band=band,
                n_sessions=n_sessions,
                first_day=first_day,
            )
        )
    return shoppers


# --------------------------------------------------------------------------------------------
# Interaction simulation
# --------------------------------------------------------------------------------------------

# Relative traffic per hour of day (UTC): quiet nights, a lunch bump and an evening peak.
HOUR_WEIGHTS = np.array(
    [2, 1, 1, 1, 1, 1, 2, 3, 4, 5, 5, 6, 8, 8, 6, 5, 5, 6, 8, 10, 11, 10, 7, 4], dtype=float
)
HOUR_WEIGHTS /= HOUR_WEIGHTS.sum()

# (seconds from window start, user_id, per-user sequence, item_id, event, value)
Event = tuple[int, str, int, str, str, int]


@dataclass
class Affinity:
    """Per-shopper view of the catalogue, precomputed once as vectors over all items."""

    match: np.ndarray  # 0..1: how well each item fits the shopper (drives the funnel)
    taste: np.ndarray  # sampling weight for taste-driven browsing (match x popularity)


def affinity(
    shopper: Shopper,
    item_category: np.ndarray,
    item_brand: np.ndarray,
    relative_price: np.ndarray,
    popularity: np.ndarray,
) -> Affinity:
    in_category = np.isin(item_category, shopper.categories)
    in_brand = np.isin(item_brand, shopper.brands)
    centre = PRICE_BANDS[shopper.band][1]
    price_fit = np.exp(-((np.log(relative_price / centre)) ** 2) / (2 * 0.35**2))
    match = 0.5 * in_category + 0.25 * in_brand + 0.25 * price_fit
    taste = (
        np.where(in_category, 1.0, 0.04)
        * np.where(in_brand, 2.5, 1.0)
        * (0.25 + price_fit)
        * popularity**0.8
    )
    return Affinity(match=match, taste=taste)


def _weighted(rng: np.random.Generator, weights: np.ndarray) -> int:
    """Draw one index in proportion to non-negative weights."""
    cumulative = np.cumsum(weights)
    return int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))


@dataclass(frozen=True)
class Shop:
    """Catalogue facts the simulation needs, as arrays aligned with the item list."""

    item_ids: list[str]
    category: np.ndarray  # Fashion-MNIST label per item
    popularity: np.ndarray  # latent, shared by all shoppers
    category_pick: np.ndarray  # weights for sessions that wander off the shopper's favourites


def simulate(items: list[Item], shoppers: list[Shopper], rng: np.random.Generator) -> list[Event]:
    """Run browsing sessions for every shopper and return the events in time order."""
    item_category = np.array([item.category.label for item in items])
    item_brand = np.array([BRANDS.index(item.brand) for item in items])
    prices = np.array([item.price_cents for item in items], dtype=float)
    # Price relative to the category median, so one price band works across cheap tees and
    # expensive coats.
    medians = {c.label: float(np.median(prices[item_category == c.label])) for c in CATEGORIES}
    relative_price = prices / np.array([medians[int(c)] for c in item_category])
    shop = Shop(
        item_ids=[item.item_id for item in items],
        category=item_category,
        # A few bestsellers and a long tail: this is the popularity bias in the log.
        popularity=rng.lognormal(0.0, 1.0, size=len(items)),
        category_pick=np.array([c.popularity for c in CATEGORIES]),
    )
    events: list[Event] = []
    for shopper in shoppers:
        aff = affinity(shopper, item_category, item_brand, relative_price, shop.popularity)
        events.extend(_simulate_shopper(rng, shop, shopper, aff))
    # Sequence numbers break ties within a second, so the funnel order survives the sort.
    events.sort()
    return events


def _simulate_shopper(
    rng: np.random.Generator, shop: Shop, shopper: Shopper, aff: Affinity
) -> list[Event]:
    """All of one shopper's sessions: views, the click/cart/purchase funnel, likes, ratings."""
    events: list[Event] = []
    pending: list[int] = []  # clicked but not bought: shoppers come back to these later
    bought: set[int] = set()

    def emit(t: float, item: int, event: str, value: int = 1) -> None:
        if t < WINDOW_SECONDS:  # sessions and late ratings past the window end are cut off
            events.append((int(t), shopper.user_id, len(events), shop.item_ids[item], event, value))

    for start in _session_starts(rng, shopper):
        # Most sessions revolve around one of the shopper's categories; some wander off.
        if rng.random() < 0.85:
            focus = int(rng.choice(shopper.categories))
        else:
            focus = _weighted(rng, shop.category_pick)
        focus_weights = aff.taste * (shop.category == focus)
        if shopper.n_sessions == 1 and rng.random() < 0.7:
            n_views = 1  # a drive-by visitor: one product page and gone
        else:
            n_views = min(int(rng.geometric(0.22)), 25)

        t = start
        seen: set[int] = set()
        cart: list[int] = []
        for _ in range(n_views):
            item = _next_view(rng, aff, focus_weights, shop.popularity, pending, seen)
            seen.add(item)
            emit(t, item, "view")
            m = float(aff.match[item])
            # Funnel: each step is less likely than the one before, and likelier for items
            # that fit the shopper's taste.
            if rng.random() < 0.12 + 0.5 * m:
                t += 2 + rng.exponential(8)
                emit(t, item, "click")
                if item not in pending and item not in bought:
                    pending.append(item)
                if rng.random() < 0.02 + 0.1 * m:
                    t += 5 + rng.exponential(30)
                    emit(t, item, "like")
                if item not in bought and rng.random() < 0.04 + 0.3 * m:
                    t += 15 + rng.exponential(60)
                    emit(t, item, "cart")
                    cart.append(item)
            t += 8 + rng.exponential(45)

        # Checkout at the end of the session; well-matched items are abandoned less often.
        t += 60 + rng.exponential(120)
        for item in cart:
            m = float(aff.match[item])
            if rng.random() < 0.3 + 0.4 * m:
                emit(t, item, "purchase")
                bought.add(item)
                if item in pending:
                    pending.remove(item)
                # Some buyers rate days later, and items that fit their taste score higher.
                if rng.random() < 0.45:
                    later = t + rng.uniform(1, 14) * 86400
                    stars = round(1 + 4 * m + rng.normal(0.0, 0.8))
                    emit(later, item, "rating", int(min(5, max(1, stars))))
                t += 1 + rng.exponential(3)
    return events


def _session_starts(rng: np.random.Generator, shopper: Shopper) -> list[float]:
    """Session start times (seconds from window start), weekend-heavy and evening-heavy."""
    starts = []
    while len(starts) < shopper.n_sessions:
        day = rng.uniform(shopper.first_day, WINDOW_DAYS)
        weekday = (WINDOW_START + timedelta(days=int(day))).weekday()
        if weekday < 5 and rng.random() > 0.8:  # weekdays get 80% of weekend traffic
            continue
        hour = int(rng.choice(24, p=HOUR_WEIGHTS))
        starts.append((int(day) * 24 + hour) * 3600 + float(rng.uniform(0, 3600)))
    return sorted(starts)


def _next_view(
    rng: np.random.Generator,
    aff: Affinity,
    focus_weights: np.ndarray,
    popularity: np.ndarray,
    pending: list[int],
    seen: set[int],
) -> int:
    """Choose the next item shown, mixing taste, exploration, popularity and return visits."""
    for _ in range(10):  # avoid showing the same item twice in one session
        roll = rng.random()
        if pending and roll < 0.08:
            item = pending[int(rng.integers(len(pending)))]  # coming back to a considered item
        elif roll < 0.78:
            item = _weighted(rng, focus_weights)  # browsing the session's category
        elif roll < 0.90:
            item = _weighted(rng, aff.taste)  # recommendations across the whole shop
        else:
            item = _weighted(rng, popularity)  # bestsellers / home-page exploration
        if item not in seen:
            return item
    return item


def _iso(seconds: int) -> str:
    return (WINDOW_START + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_interactions(events: list[Event], out: Path) -> None:
    with (out / "interactions.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["user_id", "item_id", "event", "value", "timestamp"])
        for seconds, user_id, _seq, item_id, event, value in events:
            writer.writerow([user_id, item_id, event, value, _iso(seconds)])


# --------------------------------------------------------------------------------------------
# README
# --------------------------------------------------------------------------------------------

MIT_LICENCE = """\
The MIT License (MIT)

Copyright (c) 2017 Zalando SE, https://tech.zalando.com

Permission is hereby granted, free of charge, to any person obtaining a copy of this software
and associated documentation files (the "Software"), to deal in the Software without
restriction, including without limitation the rights to use, copy, modify, merge, publish,
distribute, sublicense, and/or sell copies of the Software, and to permit persons to whom the
Software is furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or
substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING
BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM,
DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""


def write_readme(
    items: list[Item],
    shoppers: list[Shopper],
    events: list[Event],
    seed: int,
    checksums: dict[str, str],
    out: Path,
) -> None:
    """Document provenance, licence and counts. Nothing run-specific (paths, dates of the
    build) goes in, so rebuilds stay byte-identical."""
    per_event = Counter(e[4] for e in events)
    per_category = Counter(item.category.name for item in items)
    per_brand = Counter(item.brand.name for item in items)
    per_user = Counter(e[1] for e in events)
    active = len(per_user)
    light = sum(1 for n in per_user.values() if n <= 3)
    prices = sorted(item.price_cents for item in items)
    command = "python demo/build_bundle.py"
    if seed != DEFAULT_SEED:
        command += f" --seed {seed}"

    lines = [
        "# Demo catalogue bundle",
        "",
        "A small, redistributable demo shop for the recommender: product images from",
        "Fashion-MNIST plus synthetic product texts, brands, prices and shoppers.",
        "Load it with `python manage.py recs_import demo/bundle`.",
        "",
        "## Source",
        "",
        "Images: [Fashion-MNIST](https://github.com/zalandoresearch/fashion-mnist) by Zalando",
        "Research, MIT licence (below). The files were obtained from the Debian package",
        "`dataset-fashion-mnist`, which installs them in `/usr/share/datasets/fashion-mnist/`:",
        "",
    ]
    lines += [f"- `{name}` (sha256 `{digest}`)" for name, digest in checksums.items()]
    lines += [
        "",
        f"{ITEMS_PER_CLASS} images per class were drawn from the 60,000-image training set with",
        f"the seed, and each 28x28 image was upscaled to {IMAGE_SIZE}x{IMAGE_SIZE} with Pillow's",
        "Lanczos filter and saved as an 8-bit grayscale PNG (`images/<item_id>.png`).",
        "",
        "## What is synthetic",
        "",
        "Everything except the pictures and their class labels is invented: product titles and",
        "descriptions (generated from the templates and word lists in `demo/vocabulary.json`),",
        "brand names, prices, shoppers and their interactions. Any resemblance to real brands or",
        f"people is coincidental. They are generated by `demo/build_bundle.py` with seed {seed};",
        "the same seed, vocabulary and source files always give byte-identical output. Shoppers",
        "have 1-3 favourite categories, 1-2 favourite brands and a price band; they browse in",
        "sessions (view -> click -> cart -> purchase, with likes and 1-5 star ratings that are",
        "higher for items matching their taste).",
        "",
        "## Rebuild",
        "",
        "From the repository root (needs `apt-get install dataset-fashion-mnist`, numpy and",
        "Pillow):",
        "",
        "```sh",
        command,
        "```",
        "",
        "Options: `--source DIR` (default `/usr/share/datasets/fashion-mnist`), `--out DIR`",
        f"(default `demo/bundle`), `--seed N` (default {DEFAULT_SEED}). To change the product",
        "texts, edit `demo/vocabulary.json` (materials, categories, product types, brands and",
        "description templates) and rebuild.",
        "",
        "## Contents",
        "",
        "| file | columns |",
        "| --- | --- |",
        "| `items.csv` | item_id, title, description, category, brand, price, image |",
        "| `interactions.csv` | user_id, item_id, event, value, timestamp (sorted by time) |",
        "| `images/` | one PNG per item |",
        "",
        (
            f"- Items: {len(items)} in {len(per_category)} categories "
            f"({', '.join(f'{c.name} {per_category[c.name]}' for c in CATEGORIES)})"
        ),
        (
            f"- Brands: {len(per_brand)} "
            f"({', '.join(f'{name} {n}' for name, n in sorted(per_brand.items()))})"
        ),
        f"- Prices: {prices[0] / 100:.2f} to {prices[-1] / 100:.2f}",
        (
            f"- Users: {len(shoppers)} simulated shoppers, {active} with at least one event, "
            f"{light} with only 1-3 events"
        ),
        (
            f"- Interactions: {len(events)} "
            f"({', '.join(f'{e} {per_event.get(e, 0)}' for e in EVENTS)})"
        ),
        f"- Time range: {_iso(events[0][0])} to {_iso(events[-1][0])} (UTC)",
        "",
        "`value` is 1 for every event except `rating`, where it is the 1-5 star rating.",
        "",
        "## Fashion-MNIST licence",
        "",
        "```text",
        MIT_LICENCE.rstrip("\n"),
        "```",
        "",
    ]
    (out / "README.md").write_text("\n".join(lines), encoding="utf-8")


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--source",
        type=Path,
        default=DEFAULT_SOURCE,
        help="directory with the Fashion-MNIST train-*-ubyte.gz files (default: %(default)s)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="bundle directory to write (default: the bundle folder next to this script)",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="default: %(default)s")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    source: Path = args.source
    out: Path = args.out
    missing = [n for n in (TRAIN_IMAGES, TRAIN_LABELS) if not (source / n).is_file()]
    if missing:
        print(
            f"error: {', '.join(missing)} not found in {source}; install the Debian package "
            "(apt-get install dataset-fashion-mnist) or pass --source DIR",
            file=sys.stderr,
        )
        return 1

    images = read_idx(source / TRAIN_IMAGES)
    labels = read_idx(source / TRAIN_LABELS)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError("unexpected Fashion-MNIST array shapes")

    def stream(stage: int) -> np.random.Generator:
        return np.random.default_rng([args.seed, stage])

    items = build_catalog(
        select_images(labels, stream(STAGE_SELECT)), labels, stream(STAGE_CATALOG)
    )
    shoppers = make_shoppers(stream(STAGE_USERS))
    events = simulate(items, shoppers, stream(STAGE_EVENTS))

    out.mkdir(parents=True, exist_ok=True)
    write_images(items, images, out)
    write_items(items, out)
    write_interactions(events, out)
    checksums = {n: sha256_of(source / n) for n in (TRAIN_IMAGES, TRAIN_LABELS)}
    write_readme(items, shoppers, events, args.seed, checksums, out)

    per_event = Counter(e[4] for e in events)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(
        f"wrote {out}: {len(items)} items, {len(shoppers)} users, {len(events)} interactions "
        f"({', '.join(f'{e}={per_event.get(e, 0)}' for e in EVENTS)}), {size:,} bytes"
    )
    if size > MAX_BUNDLE_BYTES:
        # The bundle is committed to the repository; keep it small enough to review and clone.
        print(f"warning: bundle exceeds {MAX_BUNDLE_BYTES:,} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
