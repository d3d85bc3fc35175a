from django.contrib import admin

from shop.models import Category, Order, OrderLine, Product


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("sku", "name", "category", "brand", "price", "stock", "is_active")
    search_fields = ("sku", "name")
    list_filter = ("category", "is_active")


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    extra = 0


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "created_at")
    inlines = [OrderLineInline]


admin.site.register(Category)
