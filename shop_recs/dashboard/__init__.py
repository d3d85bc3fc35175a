"""Dashboard: the admin pages (Django app ``shop_recs_dashboard``).

Here: the ModelAdmins of items, customers, model versions, rules and jobs, the dashboard view,
similar-item previews (``previews``), server-side SVG charts (``charts``) and their templates.

May import: ``workers`` (queue backlog), ``storefront``, ``ranking``, ``search``, ``encoding``,
``catalog``, ``conf``, ``recsys``. Nothing imports it.
"""
