"""python manage.py load_sample [--products N] — fill the shop with products from the demo
catalogue in this repository (demo/bundle), and create a shopper login. shop_recs mirrors each
product as it is saved (its item source), so nothing else needs to run."""

import csv
from decimal import Decimal
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.files import File
from django.core.management.base import BaseCommand
from tqdm import tqdm

from shop.models import Category, Product

# examples/storefront/shop/management/commands/ -> the repository root
BUNDLE = Path(__file__).resolve().parents[5] / "demo" / "bundle"


class Command(BaseCommand):
    help = "Load sample products (from shop_recs' demo catalogue) and a shopper login."

    def add_arguments(self, parser):
        parser.add_argument("--products", type=int, default=60)
        parser.add_argument("--password", default="shopper-pass-1")

    def handle(self, *args, products: int, password: str, **options):
        with (BUNDLE / "items.csv").open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        # every category, round robin, so a small sample still has neighbours in each
        by_category: dict[str, list[dict]] = {}
        for row in rows:
            by_category.setdefault(row["category"], []).append(row)
        picked: list[dict] = []
        while len(picked) < min(products, len(rows)):
            for group in by_category.values():
                if group and len(picked) < products:
                    picked.append(group.pop(0))
        created = 0
        for row in tqdm(picked, desc="products", unit="product"):
            if Product.objects.filter(sku=row["item_id"]).exists():
                continue
            category, _ = Category.objects.get_or_create(name=row["category"])
            product = Product(
                sku=row["item_id"],
                name=row["title"],
                description=row["description"],
                category=category,
                brand=row["brand"],
                price=Decimal(row["price"]),
            )
            with (BUNDLE / row["image"]).open("rb") as image:
                product.image.save(Path(row["image"]).name, File(image), save=False)
            product.save()
            created += 1
        user, new = get_user_model().objects.get_or_create(username="shopper")
        if new:
            user.set_password(password)
            user.save()
        self.stdout.write(
            f"loaded {created} new products ({Product.objects.count()} in the shop); "
            f"log in as shopper / {password if new else '(unchanged password)'}"
        )
