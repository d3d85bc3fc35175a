"""The Django admin of shop_recs: items, customers, model versions, merchandising rules,
background jobs and the dashboard. Each module registers its own ModelAdmins."""

from shop_recs.dashboard.admin import customers, dashboard, items, jobs, rules, versions  # noqa: F401
