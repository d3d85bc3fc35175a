"""The ``ITEM_SOURCE`` and ``CUSTOMER_ID`` settings: validated into an :class:`ItemSource`, and
reported by ``manage.py check`` (``shop_recs.E001``-``E008``) with what to fix.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.core import checks
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db import models

from shop_recs.conf import CALLABLE_PREFIX, import_callable, recs_settings
from shop_recs.storefront.source.values import (
    PLUGIN_FIELDS,
    REQUIRED_FIELDS,
    ItemSource,
    resolve_path,
)

SETTING_KEYS = {"MODEL", "FIELDS", "QUERYSET"}


@dataclass(frozen=True)
class Problem:
    id: str
    msg: str
    hint: str = ""


def _model_has(model: type[models.Model], name: str) -> bool:
    if hasattr(model, name):
        return True
    try:
        model._meta.get_field(name)
    except FieldDoesNotExist:
        return False
    return True


def _build(config: Any) -> tuple[ItemSource | None, list[Problem]]:
    """Validate ITEM_SOURCE and build the adapter; problems say what to fix."""
    setting = "SHOP_RECS['ITEM_SOURCE']"
    if config is None:
        return None, []
    if not isinstance(config, Mapping):
        return None, [
            Problem("shop_recs.E007", f"{setting} must be a dict or None, not {config!r}.")
        ]
    problems: list[Problem] = []
    unknown = set(config) - SETTING_KEYS
    if unknown:
        problems.append(
            Problem(
                "shop_recs.E007",
                f"{setting} has unknown keys: {', '.join(sorted(map(str, unknown)))}.",
                "Use MODEL, FIELDS and QUERYSET.",
            )
        )
    model: type[models.Model] | None = None
    label = config.get("MODEL")
    try:
        model = apps.get_model(str(label)) if label else None
    except (LookupError, ValueError):
        model = None
    if model is None:
        problems.append(
            Problem(
                "shop_recs.E001",
                f"{setting}['MODEL'] = {label!r} is not an installed model.",
                "Name the shop's product model as 'app_label.ModelName', e.g. 'shop.Product'.",
            )
        )
    fields = config.get("FIELDS")
    if not isinstance(fields, Mapping):
        problems.append(
            Problem(
                "shop_recs.E002",
                f"{setting}['FIELDS'] must be a dict of plugin field -> how to read it.",
                "At least {'external_id': 'sku', 'title': 'name'} (your field names).",
            )
        )
        fields = {}
    missing = [name for name in REQUIRED_FIELDS if name not in fields]
    if missing:
        problems.append(
            Problem(
                "shop_recs.E002",
                f"{setting}['FIELDS'] lacks the required field(s) {', '.join(missing)}.",
                "Map them to your product's fields, e.g. 'external_id': 'sku', 'title': 'name'.",
            )
        )
    getters: dict[str, Callable[[Any], Any]] = {}
    for name, spec in fields.items():
        where = f"{setting}['FIELDS'][{name!r}]"
        if name not in PLUGIN_FIELDS:
            problems.append(
                Problem(
                    "shop_recs.E004",
                    f"{where}: {name!r} is not a plugin item field.",
                    f"Use some of: {', '.join(PLUGIN_FIELDS)}.",
                )
            )
            continue
        if isinstance(spec, str) and spec.startswith(CALLABLE_PREFIX):
            try:
                getters[name] = import_callable(spec)
            except ImportError as exc:
                problems.append(
                    Problem(
                        "shop_recs.E005",
                        f"{where} = {spec!r} cannot be imported: {exc}",
                        "Give 'callable:package.module.function', a function taking the product.",
                    )
                )
        elif callable(spec):
            getters[name] = spec
        elif isinstance(spec, str) and spec.strip():
            path = tuple(spec.strip().split("."))
            if not all(part.isidentifier() for part in path):
                problems.append(
                    Problem(
                        "shop_recs.E003",
                        f"{where} = {spec!r} is not a dotted attribute path.",
                        "Use attribute names separated by dots, e.g. 'category.name'.",
                    )
                )
                continue
            if model is not None and not _model_has(model, path[0]):
                problems.append(
                    Problem(
                        "shop_recs.E003",
                        f"{where} = {spec!r}: {model._meta.label} has no field or attribute "
                        f"{path[0]!r}.",
                        "Name a field, property, method or related manager of the model "
                        "(dotted paths follow relations), or use 'callable:...'.",
                    )
                )
                continue
            getters[name] = partial(resolve_path, path=path)
        else:
            problems.append(
                Problem(
                    "shop_recs.E005",
                    f"{where} = {spec!r} is neither a dotted path nor a callable.",
                    "Give 'field.path', a function, or 'callable:package.module.function'.",
                )
            )
    queryset = config.get("QUERYSET")
    queryset_factory: Callable[[], models.QuerySet] | None = None
    if isinstance(queryset, str):
        try:
            queryset_factory = import_callable(
                CALLABLE_PREFIX + queryset.removeprefix(CALLABLE_PREFIX)
            )
        except ImportError as exc:
            problems.append(
                Problem(
                    "shop_recs.E006",
                    f"{setting}['QUERYSET'] = {queryset!r} cannot be imported: {exc}",
                    "Give the dotted path of a function returning a queryset of the model.",
                )
            )
    elif callable(queryset):
        queryset_factory = queryset
    elif queryset is not None:
        problems.append(
            Problem(
                "shop_recs.E006",
                f"{setting}['QUERYSET'] = {queryset!r} is neither None nor a dotted path.",
                "Give the dotted path of a function returning a queryset of the model.",
            )
        )
    if problems or model is None:
        return None, problems
    specs = {name: fields[name] for name in getters}
    return ItemSource(model=model, getters=getters, specs=specs, queryset=queryset_factory), []


def _customer_id_problems(spec: Any) -> list[Problem]:
    setting = "SHOP_RECS['CUSTOMER_ID']"
    hint = "Use a format string such as 'user-{pk}', or 'callable:package.module.function'."
    if isinstance(spec, str) and spec.startswith(CALLABLE_PREFIX):
        try:
            import_callable(spec)
        except ImportError as exc:
            return [Problem("shop_recs.E008", f"{setting} = {spec!r}: {exc}", hint)]
        return []
    if callable(spec):
        return []
    if not isinstance(spec, str):
        return [Problem("shop_recs.E008", f"{setting} = {spec!r} is not a string.", hint)]
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(spec) if name is not None]
    except ValueError as exc:
        return [Problem("shop_recs.E008", f"{setting} = {spec!r}: {exc}", hint)]
    if not names or any(not name for name in names):
        return [
            Problem(
                "shop_recs.E008",
                f"{setting} = {spec!r} would give every user the same customer.",
                hint,
            )
        ]
    user_model = get_user_model()
    bad = [n for n in names if not _model_has(user_model, n.split(".")[0].split("[")[0])]
    if bad:
        return [
            Problem(
                "shop_recs.E008",
                f"{setting} = {spec!r} names {', '.join(bad)}, which "
                f"{user_model._meta.label} lacks.",
                hint,
            )
        ]
    return []


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Django system check of ITEM_SOURCE and CUSTOMER_ID (``manage.py check``)."""
    _, problems = _build(recs_settings.ITEM_SOURCE)
    problems += _customer_id_problems(recs_settings.raw("CUSTOMER_ID"))
    return [checks.Error(p.msg, hint=p.hint or None, id=p.id) for p in problems]


@lru_cache(maxsize=1)
def item_source() -> ItemSource | None:
    """The configured item source (None without ITEM_SOURCE); validated on first use.

    Raises ImproperlyConfigured listing every problem (``manage.py check`` lists them too).
    """
    source, problems = _build(recs_settings.ITEM_SOURCE)
    if problems:
        lines = [f"{p.msg} {p.hint}".strip() for p in problems]
        raise ImproperlyConfigured("Invalid SHOP_RECS['ITEM_SOURCE']:\n  " + "\n  ".join(lines))
    return source


def _require_source() -> ItemSource:
    source = item_source()
    if source is None:
        raise ImproperlyConfigured(
            "No item source: set SHOP_RECS['ITEM_SOURCE'] = {'MODEL': 'shop.Product', "
            "'FIELDS': {'external_id': ..., 'title': ...}} (see the README, Configuration)."
        )
    return source
