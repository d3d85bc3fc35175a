"""The ``ITEM_SOURCE`` and ``CUSTOMER_ID`` settings: validated into an :class:`ItemSource`, and
reported by ``manage.py check`` (``shop_recs.E001``-``E011``) with what to fix.

Field paths are checked against the product model's relations (:mod:`.paths`): a path through
a to-many relation into a one-value field must name a reducer (``E009``); ``WATCH`` names the
models callables read (``E010``); ``PARENT`` the variant's foreign key to its parent (``E011``).
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.core import checks
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db import models

from shop_recs.conf import CALLABLE_PREFIX, import_callable, recs_settings
from shop_recs.storefront.source.paths import Hop, M2MHop, PathInfo, analyse, analyse_lookup
from shop_recs.storefront.source.values import (
    PLUGIN_FIELDS,
    REDUCER_SEPARATOR,
    REDUCERS,
    REQUIRED_FIELDS,
    SCALAR_FIELDS,
    ItemSource,
    reduced,
    resolve_path,
)

SETTING_KEYS = {"MODEL", "FIELDS", "QUERYSET", "WATCH", "PARENT", "CHILDREN_AS_ITEMS"}
SETTING = "SHOP_RECS['ITEM_SOURCE']"


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


@dataclass
class _Built:
    getters: dict[str, Callable[[Any], Any]] = field(default_factory=dict)
    hops: list[Hop] = field(default_factory=list)
    m2m: list[M2MHop] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def _reached(model: type[models.Model], info: PathInfo) -> type[models.Model]:
    return info.hops[-1].model if info.hops else model


def _path_getter(
    name: str, spec: str, model: type[models.Model] | None, built: _Built
) -> Callable[[Any], Any] | None:
    """The getter of a dotted path (``"a.b.c"`` or ``"a.b.c|reducer"``), checking what can be
    checked from the model: the names, and that a plural value is reduced."""
    where = f"{SETTING}['FIELDS'][{name!r}]"
    text, _, how = spec.strip().partition(REDUCER_SEPARATOR)
    path = tuple(text.strip().split("."))
    how = how.strip()
    if not all(part.isidentifier() for part in path):
        built.problems.append(
            Problem(
                "shop_recs.E003",
                f"{where} = {spec!r} is not a dotted attribute path.",
                "Use attribute names separated by dots, e.g. 'category.name'.",
            )
        )
        return None
    if how and how not in REDUCERS:
        built.problems.append(
            Problem(
                "shop_recs.E009",
                f"{where} = {spec!r}: {how!r} is not a reducer.",
                f"Use one of: {', '.join(REDUCERS)}.",
            )
        )
        return None
    if model is None:
        return None
    info = analyse(model, path)
    if info.unknown is not None:
        built.problems.append(
            Problem(
                "shop_recs.E003",
                f"{where} = {spec!r}: {model._meta.label} has no field or attribute {path[0]!r}.",
                "Name a field, property, method or related manager of the model "
                "(dotted paths follow relations), or use 'callable:...'.",
            )
        )
        return None
    rest = path[len(info.relations) :]
    reached = _reached(model, info)
    if rest and info.relations and not _model_has(reached, rest[0]):
        built.problems.append(
            Problem(
                "shop_recs.E003",
                f"{where} = {spec!r}: {reached._meta.label} (reached through "
                f"{'.'.join(info.relations)}) has no field or attribute {rest[0]!r}.",
                "Check the name after the relation, or use 'callable:...'.",
            )
        )
        return None
    if info.plural and not how and name in SCALAR_FIELDS:
        crossed = ".".join(info.relations)
        built.problems.append(
            Problem(
                "shop_recs.E009",
                f"{where} = {spec!r} reads through the to-many relation {crossed!r}: it gives a "
                f"list, and {name!r} takes one value.",
                f"Say how to reduce it: '{text}|first' (or any, sum, min, max, join), e.g. "
                "in_stock: 'stockrecords.num_in_stock|sum', category: 'categories.name|join'.",
            )
        )
        return None
    if info.plural and name == "attributes":
        built.problems.append(
            Problem(
                "shop_recs.E009",
                f"{where} = {spec!r} reads through a to-many relation; attributes take one dict.",
                "Use a callable that builds the dict: 'callable:package.module.function'.",
            )
        )
        return None
    built.hops += info.hops
    built.m2m += info.m2m
    getter: Callable[[Any], Any] = partial(resolve_path, path=path)
    return reduced(getter, how) if how else getter


def _callable_getter(name: str, spec: Any, built: _Built, *, what: str) -> Callable | None:
    if callable(spec):
        return spec
    try:
        return import_callable(spec)
    except ImportError as exc:
        built.problems.append(
            Problem(
                "shop_recs.E005",
                f"{what} = {spec!r} cannot be imported: {exc}",
                "Give 'callable:package.module.function', a function taking the product.",
            )
        )
        return None


def _field_getter(
    name: str, spec: Any, model: type[models.Model] | None, built: _Built
) -> Callable[[Any], Any] | None:
    where = f"{SETTING}['FIELDS'][{name!r}]"
    if (isinstance(spec, str) and spec.startswith(CALLABLE_PREFIX)) or callable(spec):
        return _callable_getter(name, spec, built, what=where)
    if isinstance(spec, str) and spec.strip():
        return _path_getter(name, spec, model, built)
    built.problems.append(
        Problem(
            "shop_recs.E005",
            f"{where} = {spec!r} is neither a dotted path nor a callable.",
            "Give 'field.path', a function, or 'callable:package.module.function'.",
        )
    )
    return None


def _watch(config: Any, model: type[models.Model] | None, built: _Built) -> None:
    """``WATCH``: {"app.Model": "ORM lookup from the product model to it"} — models read by
    callables, which the paths cannot reveal."""
    watch = config.get("WATCH") or {}
    hint = (
        "WATCH maps a model label to the ORM lookup from the product model to it, e.g. "
        "{'catalogue.StockRecord': 'stockrecords'}."
    )
    if not isinstance(watch, Mapping):
        built.problems.append(
            Problem("shop_recs.E010", f"{SETTING}['WATCH'] must be a dict, not {watch!r}.", hint)
        )
        return
    for label, lookup in watch.items():
        where = f"{SETTING}['WATCH'][{label!r}]"
        try:
            watched = apps.get_model(str(label))
        except (LookupError, ValueError):
            built.problems.append(
                Problem("shop_recs.E010", f"{where}: {label!r} is not an installed model.", hint)
            )
            continue
        if model is None:
            continue
        hop = analyse_lookup(model, str(lookup)) if isinstance(lookup, str) and lookup else None
        if hop is None or hop.model is not watched:
            built.problems.append(
                Problem(
                    "shop_recs.E010",
                    f"{where} = {lookup!r} is not a lookup from {model._meta.label} to "
                    f"{watched._meta.label}.",
                    hint,
                )
            )
            continue
        built.hops.append(hop)


def _parent(config: Any, model: type[models.Model] | None, built: _Built) -> Callable | None:
    """``PARENT``: the path (or callable) from a variant to its parent product."""
    spec = config.get("PARENT")
    if spec is None:
        return None
    where = f"{SETTING}['PARENT']"
    if (isinstance(spec, str) and spec.startswith(CALLABLE_PREFIX)) or callable(spec):
        return _callable_getter("PARENT", spec, built, what=where)
    hint = "Name the product's foreign key to its parent product, e.g. 'parent'."
    if not (isinstance(spec, str) and spec.strip() and spec.strip().isidentifier()):
        built.problems.append(
            Problem("shop_recs.E011", f"{where} = {spec!r} is not a field name.", hint)
        )
        return None
    if model is not None:
        try:
            rel = model._meta.get_field(spec.strip())
        except FieldDoesNotExist:
            rel = None
        if rel is None or not rel.many_to_one or rel.related_model is not model:
            built.problems.append(
                Problem(
                    "shop_recs.E011",
                    f"{where} = {spec!r} is not a foreign key from {model._meta.label} to itself.",
                    hint,
                )
            )
            return None
    return partial(resolve_path, path=(spec.strip(),))


def _build(config: Any) -> tuple[ItemSource | None, list[Problem]]:
    """Validate ITEM_SOURCE and build the adapter; problems say what to fix."""
    setting = SETTING
    if config is None:
        return None, []
    if not isinstance(config, Mapping):
        return None, [
            Problem("shop_recs.E007", f"{setting} must be a dict or None, not {config!r}.")
        ]
    built = _Built()
    problems = built.problems
    unknown = set(config) - SETTING_KEYS
    if unknown:
        problems.append(
            Problem(
                "shop_recs.E007",
                f"{setting} has unknown keys: {', '.join(sorted(map(str, unknown)))}.",
                f"Use {', '.join(sorted(SETTING_KEYS))}.",
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
    for name, spec in fields.items():
        if name not in PLUGIN_FIELDS:
            problems.append(
                Problem(
                    "shop_recs.E004",
                    f"{setting}['FIELDS'][{name!r}]: {name!r} is not a plugin item field.",
                    f"Use some of: {', '.join(PLUGIN_FIELDS)}.",
                )
            )
            continue
        getter = _field_getter(name, spec, model, built)
        if getter is not None:
            built.getters[name] = getter
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
    _watch(config, model, built)
    parent = _parent(config, model, built)
    if problems or model is None:
        return None, problems
    specs = {name: fields[name] for name in built.getters}
    # rows of the product model itself are mirrored by its own signals
    hops = [h for h in dict.fromkeys(built.hops) if h.model is not model]
    return (
        ItemSource(
            model=model,
            getters=built.getters,
            specs=specs,
            queryset=queryset_factory,
            parent=parent,
            children_as_items=bool(config.get("CHILDREN_AS_ITEMS", False)),
            hops=hops,
            m2m=list(dict.fromkeys(built.m2m)),
        ),
        [],
    )


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
