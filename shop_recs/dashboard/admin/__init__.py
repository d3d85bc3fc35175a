"""The Django admin of shop_recs: items, customers, model versions, merchandising rules,
background jobs and the dashboard. Each module registers its own ModelAdmins."""

from shop_recs.dashboard.admin import (  # noqa: F401
    customers,
    dashboard,
    experiments,
    items,
    jobs,
    rules,
    versions,
)
