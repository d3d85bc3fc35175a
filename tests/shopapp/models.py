"""A tiny shop: the product model that ``SHOP_RECS['ITEM_SOURCE']`` mirrors in the tests."""

from __future__ import annotations

from django.db import models


class Category(models.Model):
    name = models.CharField(max_length=100)

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    sku = models.CharField(max_length=50, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    category = models.ForeignKey(
        Category, null=True, blank=True, related_name="products", on_delete=models.CASCADE
    )
    brand = models.CharField(max_length=100, blank=True, default="")
    price = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    stock = models.IntegerField(default=0)
    active = models.BooleanField(default=True)
    image = models.ImageField(upload_to="shop/products/", blank=True)

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return f"/shop/products/{self.sku}/"

    @property
    def in_stock(self) -> bool:
        return self.stock > 0

    def is_sellable(self) -> bool:
        return self.active and self.stock > 0


class ProductImage(models.Model):
    product = models.ForeignKey(Product, related_name="images", on_delete=models.CASCADE)
    file = models.ImageField(upload_to="shop/gallery/")
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return self.file.name
