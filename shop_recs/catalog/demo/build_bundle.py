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

Everything is driven by ``--seed``: the same seed and the same source files give
byte-identical output, so the bundle can be committed and rebuilt for review.

Usage (from the repository root)::

    .venv/bin/python shop_recs/catalog/demo/build_bundle.py [--source DIR] [--out DIR] [--seed 7]

Only numpy, Pillow and the standard library are used; the IDX files are parsed here so the
build needs no network access and no dataset loader.
"""

import argparse
import csv
import gzip
import hashlib
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
# Vocabulary. No colour words anywhere: the images are grayscale, so a "navy" coat would be
# contradicted by its own picture.
# --------------------------------------------------------------------------------------------


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


# Price multiplier and a one-sentence selling point per material.
MATERIALS: dict[str, tuple[float, str]] = {
    "Organic Cotton": (1.1, "The organic cotton is grown without synthetic pesticides."),
    "Pima Cotton": (1.2, "Long-staple Pima cotton gives it a smooth, almost silky hand."),
    "Slub Cotton": (1.0, "Slub cotton gives the fabric a subtly irregular, lived-in texture."),
    "Cotton Jersey": (0.9, "Soft cotton jersey keeps its shape wash after wash."),
    "Linen-Blend": (1.1, "The linen blend stays cool without creasing as much as pure linen."),
    "Merino Wool": (1.4, "Fine merino wool regulates temperature and resists odours."),
    "Modal": (1.0, "Modal drapes fluidly and feels cool against the skin."),
    "Bamboo Jersey": (1.05, "Bamboo jersey is soft, breathable and quick to dry."),
    "Ribbed Cotton": (0.95, "Ribbed cotton gives a close, comfortable stretch."),
    "Waffle-Knit Cotton": (1.05, "The waffle knit traps warmth while staying breathable."),
    "Wool-Blend": (1.3, "The wool blend holds a crisp line and resists wrinkles."),
    "Stretch Cotton": (1.0, "A touch of stretch in the cotton makes it easy to move in."),
    "Linen": (1.2, "Linen breathes easily and softens with every wash."),
    "Tech Twill": (1.15, "Technical twill repels light rain and dries quickly."),
    "Corduroy": (1.1, "Fine-wale corduroy adds texture and a little extra warmth."),
    "Cotton Twill": (1.0, "Sturdy cotton twill wears in nicely over time."),
    "Rigid Denim": (1.05, "Rigid denim moulds to you and develops character as it ages."),
    "Stretch Denim": (1.0, "Stretch denim keeps its shape from morning to night."),
    "Selvedge Denim": (1.5, "The selvedge denim is woven on traditional shuttle looms."),
    "Loopback Cotton": (1.0, "Loopback cotton is soft, breathable and substantial."),
    "Brushed Fleece": (0.95, "Brushed fleece feels soft and cosy from the first wear."),
    "Cotton Ripstop": (1.05, "Ripstop weaving stops small tears from spreading."),
    "Crepe": (1.15, "Crepe has a fine grain that drapes without clinging."),
    "Lambswool": (1.3, "Lambswool is warm, light and pleasantly soft."),
    "Cashmere": (2.2, "Cashmere is exceptionally soft and remarkably warm for its weight."),
    "Cotton Knit": (1.0, "A breathable cotton knit makes it a year-round layer."),
    "Alpaca-Blend": (1.6, "The alpaca blend is lofty, warm and surprisingly light."),
    "Viscose": (0.95, "Viscose gives a soft, fluid drape."),
    "Cotton Poplin": (1.0, "Crisp cotton poplin keeps a clean, polished finish."),
    "Silk": (2.0, "Silk feels light against the skin and has a gentle sheen."),
    "Cotton Voile": (1.0, "Sheer cotton voile is light enough for the hottest days."),
    "Jersey": (0.9, "Stretchy jersey moves with you and packs without creasing."),
    "Satin": (1.3, "Satin catches the light and drapes beautifully."),
    "Chambray": (1.05, "Lightweight chambray has the look of denim at half the weight."),
    "Ribbed Knit": (1.1, "A ribbed knit follows the body without feeling tight."),
    "Boiled Wool": (1.5, "Boiled wool is dense, wind-resistant and naturally warm."),
    "Melton Wool": (1.5, "Melton wool is tightly woven to keep out the cold."),
    "Cashmere-Blend": (1.9, "A cashmere blend adds softness to the warmth of wool."),
    "Cotton Gabardine": (1.2, "Tightly woven gabardine sheds showers and wind."),
    "Waxed Cotton": (1.25, "Waxed cotton shrugs off rain and can be re-proofed for years."),
    "Technical Shell": (1.3, "The technical shell is waterproof, windproof and breathable."),
    "Recycled Down": (1.5, "Responsibly recycled down gives plenty of warmth for its weight."),
    "Padded Nylon": (1.0, "Light padding keeps the warmth in without the bulk."),
    "Synthetic-Fill": (0.95, "Synthetic fill stays warm even when it gets damp."),
    "Waterproof Nylon": (1.0, "Waterproof nylon with taped seams keeps you dry."),
    "Leather": (1.4, "The leather is chosen to age gracefully with wear."),
    "Suede": (1.35, "Soft suede gives a relaxed, tactile finish."),
    "Recycled Webbing": (0.9, "The straps are made from recycled webbing."),
    "Moulded EVA": (0.7, "Moulded EVA is light, cushioned and fully waterproof."),
    "Canvas": (0.9, "Heavy canvas is hard-wearing and easy to care for."),
    "Woven Jute": (0.9, "A woven jute sole gives a classic summer feel."),
    "Nubuck": (1.35, "Nubuck has a fine, velvety surface that is tougher than it looks."),
    "Oxford Cotton": (1.05, "Oxford cloth is robust and gets softer over time."),
    "Seersucker": (1.05, "Puckered seersucker sits away from the skin to keep you cool."),
    "Brushed Cotton": (1.0, "Brushed cotton is soft and warm, ideal for cooler days."),
    "Knit Mesh": (1.1, "A knit mesh upper flexes with the foot and breathes well."),
    "Recycled Mesh": (1.05, "The upper is made from recycled mesh."),
    "Pebbled Leather": (1.45, "Pebbled leather hides scuffs and keeps its structure."),
    "Recycled Nylon": (0.95, "Recycled nylon is light, tough and water-resistant."),
    "Waxed Canvas": (1.15, "Waxed canvas is weather-resistant and ages with character."),
    "Waxed Leather": (1.5, "Waxed leather repels water and develops a rich patina."),
    "Waterproof Leather": (1.5, "Waterproof leather keeps feet dry on wet ground."),
}

# Sweatshirts and hoodies are not for "the office on chilly days" like a merino jumper.
CASUAL_TOP_OCCASIONS = (
    "lazy weekends",
    "working from home",
    "post-gym layering",
    "autumn evenings",
)

# Label order is Fashion-MNIST's: the label in the IDX file indexes this tuple.
CATEGORIES: tuple[Category, ...] = (
    Category(
        0,
        "T-shirt/top",
        "T-shirts & tops",
        22.0,
        1.3,
        ("Relaxed", "Slim-Fit", "Oversized", "Boxy", "Cropped", "Classic", "Fitted", "Lightweight"),
        (
            Noun("T-Shirt", ("Organic Cotton", "Pima Cotton", "Slub Cotton", "Linen-Blend")),
            Noun("Crew Neck Tee", ("Organic Cotton", "Pima Cotton", "Slub Cotton", "Merino Wool")),
            Noun("V-Neck Tee", ("Pima Cotton", "Modal", "Bamboo Jersey")),
            Noun("Tank Top", ("Ribbed Cotton", "Cotton Jersey", "Modal")),
            Noun("Long-Sleeve Top", ("Merino Wool", "Cotton Jersey", "Waffle-Knit Cotton")),
            Noun("Henley Top", ("Slub Cotton", "Waffle-Knit Cotton", "Organic Cotton")),
            Noun("Ribbed Top", ("Ribbed Cotton", "Modal")),
        ),
        (
            "a ribbed crew neck",
            "dropped shoulders",
            "a patch chest pocket",
            "a softly curved hem",
            "flat-lock seams",
            "a tag-free neckline",
            "double-stitched hems",
            "a slightly longer back hem",
        ),
        (
            "everyday wear",
            "weekend errands",
            "layering under a jacket",
            "warm summer afternoons",
            "travel days",
            "lazy Sundays",
        ),
    ),
    Category(
        1,
        "Trouser",
        "Trousers",
        55.0,
        1.0,
        ("Straight-Leg", "Slim", "Tapered", "Relaxed", "High-Rise", "Regular-Fit", "Wide-Leg"),
        (
            Noun(
                "Trousers",
                ("Wool-Blend", "Stretch Cotton", "Linen", "Tech Twill", "Corduroy"),
                plural=True,
            ),
            Noun("Chinos", ("Stretch Cotton", "Cotton Twill", "Organic Cotton"), plural=True),
            Noun("Jeans", ("Rigid Denim", "Stretch Denim", "Selvedge Denim"), plural=True),
            Noun(
                "Joggers",
                ("Loopback Cotton", "Tech Twill", "Brushed Fleece"),
                plural=True,
                styles=("Relaxed", "Tapered", "Slim", "Cropped", "Lightweight"),
                features=(
                    "an elasticated drawstring waist",
                    "cuffed ankles",
                    "zipped side pockets",
                    "a back patch pocket",
                ),
                occasions=("lazy weekends", "the gym and back", "travel days", "working from home"),
            ),
            Noun(
                "Cargo Trousers",
                ("Cotton Ripstop", "Cotton Twill", "Tech Twill"),
                plural=True,
                occasions=("weekend walks", "travel days", "festival season", "relaxed Fridays"),
            ),
            Noun("Pleated Trousers", ("Wool-Blend", "Linen", "Crepe"), plural=True),
            Noun(
                "Five-Pocket Trousers",
                ("Corduroy", "Stretch Cotton", "Cotton Twill"),
                plural=True,
            ),
        ),
        (
            "a button-and-zip fly",
            "deep side pockets",
            "a partially elasticated waistband",
            "belt loops",
            "reinforced seams",
            "a hidden coin pocket",
            "a clean, unfussy finish",
            "neatly turned-up hems",
        ),
        (
            "the office",
            "smart-casual dinners",
            "the daily commute",
            "weekend walks",
            "travel days",
            "relaxed Fridays",
        ),
    ),
    Category(
        2,
        "Pullover",
        "Pullovers",
        55.0,
        1.0,
        ("Relaxed", "Chunky", "Fine-Knit", "Oversized", "Classic", "Cropped", "Slim-Fit", "Cosy"),
        (
            Noun("Sweater", ("Merino Wool", "Lambswool", "Cashmere", "Cotton Knit")),
            Noun("Crew Neck Jumper", ("Merino Wool", "Lambswool", "Cotton Knit", "Cashmere")),
            Noun("Roll-Neck Sweater", ("Merino Wool", "Cashmere", "Alpaca-Blend")),
            Noun(
                "Cable-Knit Jumper",
                ("Lambswool", "Cotton Knit", "Alpaca-Blend"),
                styles=("Chunky", "Relaxed", "Classic", "Oversized", "Cosy"),
            ),
            Noun("Half-Zip Pullover", ("Merino Wool", "Brushed Fleece", "Cotton Knit")),
            Noun(
                "Hoodie",
                ("Loopback Cotton", "Brushed Fleece", "Organic Cotton"),
                styles=("Relaxed", "Oversized", "Classic", "Cropped", "Heavyweight"),
                features=(
                    "a lined hood",
                    "a kangaroo pocket",
                    "ribbed cuffs and hem",
                    "flat drawcords",
                ),
                occasions=CASUAL_TOP_OCCASIONS,
            ),
            Noun(
                "Sweatshirt",
                ("Loopback Cotton", "Brushed Fleece", "Organic Cotton"),
                styles=("Relaxed", "Oversized", "Classic", "Cropped", "Heavyweight"),
                features=(
                    "ribbed cuffs and hem",
                    "raglan sleeves",
                    "a V-insert at the neck",
                    "dropped shoulders",
                ),
                occasions=CASUAL_TOP_OCCASIONS,
            ),
        ),
        (
            "ribbed cuffs and hem",
            "dropped shoulders",
            "saddle shoulders",
            "fully fashioned seams",
            "a relaxed ribbed collar",
            "a subtle textured stitch",
            "raglan sleeves",
        ),
        (
            "cold mornings",
            "layering over a shirt",
            "autumn weekends",
            "the office on chilly days",
            "evenings by the fire",
            "winter travel",
        ),
    ),
    Category(
        3,
        "Dress",
        "Dresses",
        65.0,
        1.2,
        ("A-Line", "Fitted", "Flowing", "Tiered", "Relaxed", "Belted", "Sleeveless", "Pleated"),
        (
            Noun("Midi Dress", ("Viscose", "Linen", "Crepe", "Cotton Poplin", "Silk")),
            Noun("Maxi Dress", ("Viscose", "Linen", "Cotton Voile", "Silk")),
            Noun("Wrap Dress", ("Jersey", "Crepe", "Viscose", "Satin")),
            Noun("Shirt Dress", ("Cotton Poplin", "Linen", "Chambray")),
            Noun("Slip Dress", ("Satin", "Silk", "Crepe")),
            Noun("Shift Dress", ("Crepe", "Cotton Poplin", "Linen")),
            Noun(
                "Knit Dress",
                ("Ribbed Knit", "Merino Wool", "Cotton Knit"),
                styles=("Fitted", "Relaxed", "Sleeveless", "Belted", "Slim-Fit"),
            ),
            Noun("Mini Dress", ("Cotton Poplin", "Jersey", "Crepe", "Satin")),
        ),
        (
            "a V-neckline",
            "side-seam pockets",
            "a tie waist",
            "a smocked back",
            "a concealed back zip",
            "a lined bodice",
            "a gently flared skirt",
            "adjustable straps",
        ),
        (
            "summer weddings",
            "garden parties",
            "long holiday days",
            "dinner dates",
            "the office with a blazer",
            "weekend brunch",
        ),
    ),
    Category(
        4,
        "Coat",
        "Coats",
        150.0,
        0.8,
        ("Tailored", "Relaxed", "Double-Breasted", "Longline", "Belted", "Classic", "Cropped"),
        (
            Noun("Overcoat", ("Wool-Blend", "Boiled Wool", "Melton Wool", "Cashmere-Blend")),
            Noun(
                "Peacoat",
                ("Melton Wool", "Wool-Blend"),
                styles=("Classic", "Tailored", "Cropped", "Relaxed"),
            ),
            Noun("Trench Coat", ("Cotton Gabardine", "Waxed Cotton", "Tech Twill")),
            Noun(
                "Parka",
                ("Waxed Cotton", "Technical Shell", "Recycled Down"),
                styles=("Hooded", "Longline", "Relaxed", "Classic", "Insulated"),
            ),
            Noun(
                "Puffer Jacket",
                ("Recycled Down", "Padded Nylon", "Synthetic-Fill"),
                styles=("Hooded", "Cropped", "Longline", "Lightweight", "Relaxed", "Packable"),
                features=(
                    "baffle quilting",
                    "a two-way zip",
                    "elasticated cuffs",
                    "a stand-up collar",
                    "zipped hand pockets",
                ),
            ),
            Noun(
                "Rain Jacket",
                ("Technical Shell", "Waterproof Nylon"),
                styles=("Hooded", "Lightweight", "Packable", "Relaxed", "Longline"),
                features=(
                    "an adjustable hood",
                    "taped seams",
                    "a storm flap",
                    "underarm vents",
                    "adjustable cuffs",
                ),
            ),
            Noun(
                "Quilted Jacket",
                ("Padded Nylon", "Synthetic-Fill", "Waxed Cotton"),
                styles=("Classic", "Cropped", "Relaxed", "Lightweight"),
            ),
            Noun("Car Coat", ("Wool-Blend", "Boiled Wool", "Cotton Gabardine")),
        ),
        (
            "a storm flap",
            "deep welt pockets",
            "a full inner lining",
            "a two-way zip",
            "adjustable cuffs",
            "a notched lapel",
            "an inside phone pocket",
            "a stand-up collar",
        ),
        (
            "the winter commute",
            "crisp autumn days",
            "city weekends",
            "wet-weather walks",
            "layering over tailoring",
            "cold evenings out",
        ),
    ),
    Category(
        5,
        "Sandal",
        "Sandals",
        45.0,
        0.8,
        ("Flat", "Cushioned", "Adjustable", "Minimal", "Platform", "Low-Heel", "Classic"),
        (
            Noun("Sandals", ("Leather", "Suede", "Recycled Webbing"), plural=True),
            Noun("Slides", ("Leather", "Suede", "Moulded EVA"), plural=True),
            Noun(
                "Sport Sandals",
                ("Recycled Webbing", "Moulded EVA"),
                plural=True,
                styles=("Cushioned", "Adjustable", "Lightweight", "Trail-Ready"),
            ),
            Noun("Strappy Sandals", ("Leather", "Suede"), plural=True),
            Noun("Espadrille Sandals", ("Canvas", "Woven Jute"), plural=True),
            Noun("Footbed Sandals", ("Leather", "Suede", "Nubuck"), plural=True),
        ),
        (
            "a contoured cork footbed",
            "adjustable buckle straps",
            "a cushioned insole",
            "a grippy rubber outsole",
            "padded straps",
            "a moulded arch support",
            "a lightweight sole",
            "a padded heel strap",
        ),
        (
            "beach holidays",
            "warm city days",
            "poolside lounging",
            "summer festivals",
            "holiday evenings",
            "everyday summer wear",
        ),
    ),
    Category(
        6,
        "Shirt",
        "Shirts",
        45.0,
        1.0,
        ("Relaxed", "Slim-Fit", "Regular-Fit", "Oversized", "Short-Sleeve", "Classic", "Boxy"),
        (
            Noun("Shirt", ("Linen", "Cotton Poplin", "Chambray", "Seersucker", "Cotton Twill")),
            Noun("Oxford Shirt", ("Oxford Cotton",)),
            Noun("Button-Down Shirt", ("Oxford Cotton", "Cotton Poplin", "Chambray")),
            Noun("Overshirt", ("Corduroy", "Wool-Blend", "Cotton Twill", "Brushed Cotton")),
            Noun("Flannel Shirt", ("Brushed Cotton",)),
            Noun("Camp-Collar Shirt", ("Linen", "Viscose", "Seersucker")),
            Noun("Blouse", ("Silk", "Viscose", "Crepe", "Cotton Voile")),
            Noun("Work Shirt", ("Cotton Twill", "Chambray", "Cotton Ripstop")),
        ),
        (
            "a button-down collar",
            "a curved hem",
            "a single chest pocket",
            "a box pleat at the back",
            "roll-up sleeve tabs",
            "a spread collar",
            "single-needle stitching",
            "horn-effect buttons",
        ),
        (
            "the office",
            "smart-casual dinners",
            "summer evenings",
            "weekend coffee runs",
            "client meetings",
            "city breaks",
        ),
    ),
    Category(
        7,
        "Sneaker",
        "Sneakers",
        85.0,
        1.2,
        ("Classic", "Lightweight", "Chunky", "Retro", "Minimal", "Cushioned", "Low-Profile"),
        (
            Noun("Low-Top Sneakers", ("Leather", "Suede", "Canvas", "Nubuck"), plural=True),
            Noun("High-Top Sneakers", ("Canvas", "Leather", "Suede"), plural=True),
            Noun(
                "Running Shoes",
                ("Knit Mesh", "Recycled Mesh"),
                plural=True,
                styles=("Lightweight", "Cushioned", "Responsive", "Neutral", "Stability"),
                occasions=("morning runs", "light training", "the treadmill", "weekend park runs"),
            ),
            Noun("Court Sneakers", ("Leather", "Nubuck"), plural=True),
            Noun("Slip-On Sneakers", ("Canvas", "Knit Mesh"), plural=True),
            Noun(
                "Trail Runners",
                ("Recycled Mesh", "Knit Mesh"),
                plural=True,
                styles=("Lightweight", "Cushioned", "Rugged", "Grippy"),
                occasions=("trail runs", "muddy weekend paths", "light hiking", "rough tracks"),
            ),
            Noun("Trainers", ("Suede", "Leather", "Knit Mesh"), plural=True),
        ),
        (
            "a padded collar",
            "a cushioned foam midsole",
            "a vulcanised rubber sole",
            "a removable insole",
            "a reinforced toe cap",
            "flat waxed laces",
            "a grippy outsole",
            "a breathable lining",
        ),
        (
            "everyday wear",
            "long days on your feet",
            "city walking",
            "weekend errands",
            "easy travel days",
            "light training",
        ),
    ),
    Category(
        8,
        "Bag",
        "Bags",
        70.0,
        0.9,
        ("Structured", "Slouchy", "Compact", "Roomy", "Everyday", "Minimal", "Classic"),
        (
            Noun("Tote Bag", ("Canvas", "Leather", "Recycled Nylon", "Waxed Canvas")),
            Noun("Backpack", ("Recycled Nylon", "Waxed Canvas", "Canvas", "Leather")),
            Noun("Crossbody Bag", ("Leather", "Pebbled Leather", "Recycled Nylon", "Suede")),
            Noun("Shoulder Bag", ("Leather", "Suede", "Pebbled Leather")),
            Noun(
                "Weekender Bag",
                ("Waxed Canvas", "Leather", "Canvas"),
                occasions=("weekend trips", "carry-on travel", "short city breaks"),
            ),
            Noun(
                "Clutch",
                ("Leather", "Satin", "Suede"),
                occasions=("evenings out", "weddings", "dinner dates", "parties"),
            ),
            Noun("Messenger Bag", ("Waxed Canvas", "Leather", "Recycled Nylon")),
            Noun("Bucket Bag", ("Leather", "Suede", "Pebbled Leather")),
            Noun("Belt Bag", ("Recycled Nylon", "Leather")),
        ),
        (
            "an adjustable strap",
            "a padded laptop sleeve",
            "an internal zip pocket",
            "a magnetic snap closure",
            "sturdy top handles",
            "a detachable shoulder strap",
            "a wipe-clean lining",
            "several inner slip pockets",
        ),
        (
            "the daily commute",
            "weekend trips",
            "evenings out",
            "the office",
            "shopping days",
            "carry-on travel",
        ),
    ),
    Category(
        9,
        "Ankle boot",
        "Ankle boots",
        110.0,
        0.8,
        ("Classic", "Chunky-Sole", "Block-Heel", "Lug-Sole", "Sleek", "Rugged", "Low-Heel"),
        (
            Noun("Chelsea Boots", ("Leather", "Suede", "Waxed Leather"), plural=True),
            Noun("Lace-Up Boots", ("Leather", "Waxed Leather", "Nubuck"), plural=True),
            Noun("Ankle Boots", ("Leather", "Suede", "Nubuck"), plural=True),
            Noun(
                "Hiking Boots",
                ("Waterproof Leather", "Nubuck"),
                plural=True,
                styles=("Rugged", "Lug-Sole", "Lightweight", "Classic"),
                occasions=("country walks", "wet-weather walks", "weekend hikes", "autumn trails"),
            ),
            Noun("Desert Boots", ("Suede", "Nubuck"), plural=True),
            Noun("Zip Boots", ("Leather", "Suede"), plural=True),
            Noun("Combat Boots", ("Leather", "Waxed Leather"), plural=True),
            Noun("Shearling-Lined Boots", ("Suede", "Leather"), plural=True),
        ),
        (
            "elasticated side panels",
            "a side zip",
            "a Goodyear-welted sole",
            "a cushioned footbed",
            "a pull-on heel tab",
            "a grippy lug sole",
            "a water-repellent finish",
            "a padded collar",
        ),
        (
            "autumn city days",
            "wet-weather walks",
            "the office",
            "nights out",
            "winter weekends",
            "country walks",
        ),
    ),
)


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


BRANDS: tuple[Brand, ...] = (
    Brand(
        "Nordhavn",
        1.25,
        {"T-shirts & tops": 1.0, "Trousers": 1.0, "Pullovers": 1.2, "Shirts": 1.2, "Coats": 1.0},
        "Nordhavn keeps the design pared back so it works with the rest of your wardrobe.",
    ),
    Brand(
        "Calder & Finch",
        1.6,
        {"Shirts": 1.5, "Trousers": 1.2, "Coats": 1.2, "Dresses": 0.8, "Ankle boots": 0.6},
        "Calder & Finch cuts everything with a tailor's eye for proportion.",
        {"Trousers": ("Trousers", "Chinos", "Pleated Trousers", "Five-Pocket Trousers")},
    ),
    Brand(
        "Urbanek",
        1.0,
        {"T-shirts & tops": 1.3, "Pullovers": 1.2, "Trousers": 1.0, "Sneakers": 1.2, "Bags": 0.6},
        "Urbanek borrows its easy attitude from the skate park and the studio.",
        {
            "Pullovers": ("Hoodie", "Sweatshirt", "Crew Neck Jumper"),
            "Trousers": ("Jeans", "Cargo Trousers", "Joggers", "Chinos"),
            "Bags": ("Backpack", "Belt Bag", "Tote Bag", "Messenger Bag"),
        },
    ),
    Brand(
        "Solmara",
        0.95,
        {"Dresses": 1.5, "Sandals": 1.3, "T-shirts & tops": 0.8, "Bags": 0.7, "Shirts": 0.5},
        "Solmara designs for long, sunny days by the sea.",
        {"Bags": ("Tote Bag", "Crossbody Bag", "Bucket Bag", "Clutch")},
    ),
    Brand(
        "Fjellsti",
        1.3,
        {"Coats": 1.5, "Pullovers": 1.0, "Trousers": 0.8, "Ankle boots": 1.0, "Bags": 0.6},
        "Fjellsti tests its pieces on windy mountain trails before they reach the city.",
        {
            "Coats": ("Parka", "Puffer Jacket", "Rain Jacket", "Quilted Jacket"),
            "Trousers": ("Cargo Trousers", "Trousers", "Joggers"),
            "Ankle boots": ("Hiking Boots", "Lace-Up Boots", "Chelsea Boots"),
            "Bags": ("Backpack", "Weekender Bag", "Belt Bag"),
        },
    ),
    Brand(
        "Pebble & Pike",
        0.65,
        {
            "T-shirts & tops": 1.3,
            "Pullovers": 1.0,
            "Trousers": 1.0,
            "Shirts": 1.0,
            "Dresses": 0.8,
            "Sneakers": 0.6,
            "Sandals": 0.6,
        },
        "Pebble & Pike makes dependable basics at an honest price.",
    ),
    Brand(
        "Maison Verrier",
        2.2,
        {
            "Dresses": 1.2,
            "Coats": 1.0,
            "Bags": 1.3,
            "Ankle boots": 0.9,
            "Sandals": 0.6,
            "Shirts": 0.5,
        },
        "Maison Verrier finishes every piece by hand in small runs.",
        {"Bags": ("Shoulder Bag", "Clutch", "Bucket Bag", "Tote Bag", "Crossbody Bag")},
    ),
    Brand(
        "Stridewell",
        1.05,
        {"Sneakers": 1.5, "Sandals": 1.2, "Ankle boots": 1.2},
        "Stridewell builds all of its footwear around all-day comfort.",
    ),
    Brand(
        "Loomcraft",
        0.95,
        {"Pullovers": 1.6, "Dresses": 0.8, "T-shirts & tops": 0.7},
        "Loomcraft knits with yarns from small, family-run spinners.",
        {
            "Dresses": ("Knit Dress", "Wrap Dress"),
            "T-shirts & tops": ("Long-Sleeve Top", "Ribbed Top", "Henley Top"),
        },
    ),
    Brand(
        "Brisk Athletic",
        0.85,
        {
            "T-shirts & tops": 1.2,
            "Trousers": 0.9,
            "Sneakers": 1.3,
            "Pullovers": 0.9,
            "Bags": 0.6,
        },
        "Brisk Athletic designs kit that moves as fast as you do.",
        {
            "T-shirts & tops": ("T-Shirt", "Crew Neck Tee", "Tank Top", "Long-Sleeve Top"),
            "Trousers": ("Joggers", "Cargo Trousers"),
            "Pullovers": ("Hoodie", "Sweatshirt", "Half-Zip Pullover"),
            "Sneakers": ("Running Shoes", "Trail Runners", "Trainers"),
            "Bags": ("Backpack", "Belt Bag"),
        },
    ),
    Brand(
        "Velin",
        1.2,
        {"Dresses": 1.3, "Shirts": 1.1, "T-shirts & tops": 0.8, "Coats": 0.8, "Sandals": 0.8},
        "Velin designs modern wardrobe staples with a soft, fluid line.",
        {"Coats": ("Trench Coat", "Overcoat", "Car Coat")},
    ),
    Brand(
        "Hollis Row",
        1.5,
        {"Bags": 1.6, "Ankle boots": 1.3, "Coats": 0.6},
        "Hollis Row has worked with leather for three generations.",
        {"Coats": ("Car Coat", "Trench Coat")},
    ),
)


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


# Words that keep their capital mid-sentence (places, people, acronyms).
PROPER_WORDS = frozenset({"Chelsea", "Oxford", "Henley", "Pima", "EVA"})


def _lower(phrase: str) -> str:
    """Lower-case a title phrase for use mid-sentence, keeping proper nouns and letter-names."""
    words = []
    for word in phrase.split(" "):
        head, _, tail = word.partition("-")
        if word in PROPER_WORDS:
            words.append(word)
        elif len(head) == 1 and tail:  # "T-Shirt" -> "T-shirt", "A-Line" -> "A-line"
            words.append(f"{head}-{tail.lower()}")
        else:
            words.append(word.lower())
    return " ".join(words)


def _article(phrase: str) -> str:
    """'a' or 'an' for the phrase (none of the vocabulary has a silent 'h' or a 'yoo' 'u')."""
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
    feature_a, feature_b = features[int(first)], features[int(second)]
    thing = _lower(noun.name)
    style_l, material_l = _lower(style), _lower(material)
    if noun.plural:
        openers = (
            f"A pair of {style_l} {thing} in {material_l}, with {feature_a} and {feature_b}.",
            f"These {style_l} {thing} are made from {material_l} and finished with {feature_a}.",
            f"Cut from {material_l}, these {style_l} {thing} come with {feature_a}.",
        )
    else:
        article = _article(style_l)
        openers = (
            (
                f"{article.capitalize()} {style_l} {thing} in {material_l}, "
                f"with {feature_a} and {feature_b}."
            ),
            f"This {style_l} {thing} is made from {material_l} and finished with {feature_a}.",
            f"Cut from {material_l}, this {style_l} {thing} comes with {feature_a}.",
        )
    occasion = _pick(rng, noun.occasions or category.occasions)
    pronoun = "them" if noun.plural else "it"
    middles = (
        f"Made for {occasion}.",
        f"An easy choice for {occasion}.",
        f"Wear {pronoun} for {occasion} and beyond.",
        f"A dependable pick for {occasion}.",
    )
    sentences = [_pick(rng, openers), _pick(rng, middles)]
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
    command = "python shop_recs/catalog/demo/build_bundle.py"
    if seed != DEFAULT_SEED:
        command += f" --seed {seed}"

    lines = [
        "# Demo catalogue bundle",
        "",
        "A small, redistributable demo shop for the recommender: product images from",
        "Fashion-MNIST plus synthetic product texts, brands, prices and shoppers.",
        "Load it with `python manage.py recs_import shop_recs/catalog/demo/bundle`.",
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
        "descriptions (generated from templates), brand names, prices, shoppers and their",
        "interactions. Any resemblance to real brands or people is coincidental. They are",
        f"generated by `shop_recs/catalog/demo/build_bundle.py` with seed {seed}; the same seed "
        "and",
        "source files always give byte-identical output. Shoppers have 1-3 favourite",
        "categories, 1-2 favourite brands and a price band; they browse in sessions",
        "(view -> click -> cart -> purchase, with likes and 1-5 star ratings that are higher",
        "for items matching their taste).",
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
        f"(default `shop_recs/catalog/demo/bundle`), `--seed N` (default {DEFAULT_SEED}).",
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
        # The bundle ships inside the package; keep it small enough to commit and install.
        print(f"warning: bundle exceeds {MAX_BUNDLE_BYTES:,} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
