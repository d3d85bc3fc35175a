"""The multi-table shop of ``tests/test_source_tables.py``."""

from __future__ import annotations

from django.db import models


class Brand(models.Model):
    name = models.CharField(max_length=100)

    def __str__(self) -> str:
        return self.name


class Category(models.Model):
    name = models.CharField(max_length=100)

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    # a variant's own upc may be empty: it is sold under its parent's item
    upc = models.CharField(max_length=64, blank=True, default="")
    title = models.CharField(max_length=200, blank=True, default="")
    description = models.TextField(blank=True, default="")
    parent = models.ForeignKey(
        "self", null=True, blank=True, related_name="children", on_delete=models.CASCADE
    )
    brand = models.ForeignKey(Brand, null=True, blank=True, on_delete=models.SET_NULL)
    categories = models.ManyToManyField(Category, through="ProductCategory", blank=True)
    is_public = models.BooleanField(default=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return self.title or self.upc

    def get_absolute_url(self) -> str:
        return f"/catalogue/{self.upc}/"


class ProductCategory(models.Model):
    product = models.ForeignKey(Product, on_delete=models.CASCADE)
    category = models.ForeignKey(Category, on_delete=models.CASCADE)

    def __str__(self) -> str:
        return f"{self.product_id}:{self.category_id}"


class StockRecord(models.Model):
    product = models.ForeignKey(Product, related_name="stockrecords", on_delete=models.CASCADE)
    partner_sku = models.CharField(max_length=64)
    price = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    num_in_stock = models.IntegerField(default=0)

    def __str__(self) -> str:
        return self.partner_sku


class ProductImage(models.Model):
    product = models.ForeignKey(Product, related_name="images", on_delete=models.CASCADE)
    original = models.ImageField(upload_to="tableshop/")
    display_order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["display_order", "pk"]

    def __str__(self) -> str:
        return self.original.name


class Review(models.Model):
    """Read only by a callable (the average rating): mirrored through WATCH."""

    product = models.ForeignKey(Product, related_name="reviews", on_delete=models.CASCADE)
    score = models.IntegerField()

    def __str__(self) -> str:
        return f"{self.score}"
