"""API: the REST endpoints (Django REST framework), app ``shop_recs_api``.

Here: views per resource (``views/``), input/output serializers, the plugin's own policies
(authentication, permissions, throttles, parsers, error handler: ``base``), urls and OpenAPI.

May import everything below it (``workers`` excepted, a sibling it does not need). Nothing
imports it.
"""
