from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """The admin pages of shop_recs (registered by ``admin.autodiscover()`` from
    ``shop_recs.dashboard.admin``) and their templates."""

    name = "shop_recs.dashboard"
    label = "shop_recs_dashboard"
    verbose_name = "Recommendations dashboard"
