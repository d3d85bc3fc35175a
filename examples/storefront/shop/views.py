"""The shop's pages. shop_recs appears only as a mixin that records product views, a purchase
signal, and the template tags in the templates."""

from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST
from django.views.generic import DetailView, ListView

from shop.models import Order, OrderLine, Product
from shop_recs.storefront.tracking import TrackProductViewMixin, purchase_completed


class ProductListView(ListView):
    queryset = Product.objects.filter(is_active=True).select_related("category")
    template_name = "shop/product_list.html"
    paginate_by = 24


class ProductDetailView(TrackProductViewMixin, DetailView):
    queryset = Product.objects.filter(is_active=True).select_related("category")
    template_name = "shop/product_detail.html"
    slug_field = "sku"
    slug_url_kwarg = "external_id"


@login_required
@require_POST
def buy(request, external_id: str):
    product = get_object_or_404(Product, sku=external_id, is_active=True)
    with transaction.atomic():
        order = Order.objects.create(user=request.user)
        OrderLine.objects.create(order=order, product=product)
    purchase_completed.send(
        sender=Order, request=request, order_id=str(order.pk), products=[product]
    )
    return redirect("product", external_id=product.sku)
