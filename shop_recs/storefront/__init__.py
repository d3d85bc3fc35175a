"""Storefront: the plugin inside a shop (Django app ``shop_recs_storefront``).

Here: mirroring the shop's product model into items (``source``), tracking views, clicks and
purchases (``tracking``), widget lists and item cards (``widgets``, ``cards``, ``links``), the
``{% load shop_recs %}`` template tags, ``track.js``/``widget.js`` and the widget template.

May import: ``ranking``, ``search``, ``encoding``, ``catalog``, ``conf``, ``recsys``.
"""
