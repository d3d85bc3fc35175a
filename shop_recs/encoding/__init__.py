"""Encoding: item text and images into vectors (text, image, content spaces) in pgvector.

Here: the configured encoders (``encoders``), the encode service (``service``: plan, decode,
encode, store), images registered by URL (``images``) and the SSRF-safe fetcher (``fetch``).

May import: ``catalog``, ``conf``, ``recsys``.
"""
