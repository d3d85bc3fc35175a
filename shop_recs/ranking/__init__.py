"""Ranking: what a shopper is shown, and the model behind it.

Here: training (``training``, ``dataset``), the model registry and activation (``registry``,
``activation``), recommendations through the fallback chain model -> content -> popular
(``recommend``), similar items in every space and search with merchandising rules
(``similar``, ``merchandising``), and the served-list log (``served``).

May import: ``search``, ``encoding``, ``catalog``, ``conf``, ``recsys``.
"""
