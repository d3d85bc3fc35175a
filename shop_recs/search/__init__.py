"""Search: k-nearest-neighbour queries in pgvector, and query text as vectors.

Here: the values lists are made of (``types``: filters, item cards, results), the k-NN SQL with
filters, explanations and popular items (``knn``), and search-query encoding (``query``).

May import: ``encoding``, ``catalog``, ``conf``, ``recsys``.
"""
