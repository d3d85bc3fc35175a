"""shop_recs core: encoders, hybrid model, training, evaluation and artefacts.

Pure Python/torch. Never imports django, rest_framework or celery: it takes arrays, tensors and
ids and returns the same, so it can be tested, benchmarked and reused outside the web app.

May import: numpy, torch, sentence-transformers, pillow, torchvision; nothing of the app.
"""

__version__ = "0.1.0"
