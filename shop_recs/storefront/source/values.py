"""Reading a product: dotted paths through its relations, and each plugin field's value
checked and converted (text limits, prices, yes/no words, image references).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any

from django.core.exceptions import (
    FieldError,
    ImproperlyConfigured,
    ObjectDoesNotExist,
    ValidationError,
)
from django.core.files.storage import default_storage, storages
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models.fields.files import FieldFile
from django.db.models.manager import BaseManager

from shop_recs.catalog.models import Item
from shop_recs.catalog.validation import check_external_id, check_json_value
from shop_recs.conf import CALLABLE_PREFIX
from shop_recs.storefront.source.paths import Hop, M2MHop

REQUIRED_FIELDS = ("external_id", "title")
PLUGIN_FIELDS = ("external_id", *Item.DATA_FIELDS, "images")
#: Fields that hold one value: a path through a to-many relation must say how to reduce it.
SCALAR_FIELDS = tuple(f for f in PLUGIN_FIELDS if f not in ("images", "attributes"))
TEXT_LIMITS = {"title": 500, "description": 20000, "category": 200, "brand": 200}
#: ``"path|reducer"``: how a path through a to-many relation becomes one value.
REDUCER_SEPARATOR = "|"


@dataclass(frozen=True)
class ImageRef:
    """One image of a product: a file in Django's ``default_storage`` (``name``) or an
    absolute http(s) URL (``url``) that a worker downloads."""

    name: str = ""
    url: str = ""

    @property
    def key(self) -> str:
        """How the reference is remembered in the item's source marker."""
        return self.url or f"storage:{self.name}"


def _is_manager(value: Any) -> bool:
    return isinstance(value, BaseManager)


def resolve_path(obj: Any, path: Sequence[str]) -> Any:
    """Follow a dotted path: ``getattr`` step by step; a None on the way gives None; a bound
    method without arguments is called; a related manager is iterated and the rest of the path
    applied to each element (a list)."""
    value = obj
    for index, name in enumerate(path):
        if value is None:
            return None
        if _is_manager(value):
            return [resolve_path(element, path[index:]) for element in _rows(value)]
        try:
            value = getattr(value, name)
        except ObjectDoesNotExist:  # a missing one-to-one (reverse) relation
            return None
        if inspect.ismethod(value) or inspect.isbuiltin(value):
            value = value()
    if _is_manager(value):
        return list(_rows(value))
    return value


def _rows(manager: Any) -> Any:
    """A related manager's rows in a stable order (``first`` and ``join`` must not depend on
    how the database returned them); a prefetched or ordered one is used as it is."""
    rows = manager.all()
    if getattr(rows, "_result_cache", None) is None and not rows.ordered:
        rows = rows.order_by("pk")
    return rows


# --------------------------------------------------------------------------- reducers


def _plain(values: Any) -> list[Any]:
    """Nested lists (one level per to-many relation crossed) as one flat list of the present
    values (None and "" are absent)."""
    out: list[Any] = []
    for value in _flatten(values):
        if value is not None and value != "":
            out.append(value)
    return out


def _truthy(value: Any) -> bool:
    return _flag(value) if isinstance(value, str) else bool(value)


def _numbers(values: list[Any]) -> list[Any]:
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise ValueError(f"cannot add up {value!r}: sum, min and max take numbers")
    return values


REDUCERS: dict[str, Callable[[list[Any]], Any]] = {
    "first": lambda values: values[0] if values else None,
    "any": lambda values: any(_truthy(v) for v in values),
    "sum": lambda values: sum(_numbers(values), start=0),
    "min": lambda values: min(_numbers(values)) if values else None,
    "max": lambda values: max(_numbers(values)) if values else None,
    "join": lambda values: ", ".join(dict.fromkeys(str(v) for v in values)),
}


def reduced(getter: Callable[[Any], Any], how: str) -> Callable[[Any], Any]:
    """``getter`` whose (plural) value is reduced to one by :data:`REDUCERS` ``[how]``."""
    reduce = REDUCERS[how]

    def read(product: Any) -> Any:
        return reduce(_plain(getter(product)))

    return read


def _single(value: Any, what: str) -> None:
    """Refuse a plural value where one is expected, saying how to fix it."""
    if isinstance(value, list | tuple | set | frozenset | dict | models.QuerySet) or _is_manager(
        value
    ):
        count = f" of {len(value)}" if isinstance(value, list | tuple | set | frozenset) else ""
        raise ValueError(
            f"got a {type(value).__name__}{count}, not {what} (a path through a to-many "
            "relation?): reduce it with '|first', '|any', '|sum', '|min', '|max' or '|join', "
            "e.g. 'stockrecords.num_in_stock|sum'"
        )


def _text(value: Any, *, name: str, required: bool = False) -> str:
    _single(value, "a text")
    text = "" if value is None else str(value).strip()
    if required and not text:
        raise ValueError("is empty")
    if "\x00" in text:
        raise ValueError("contains a NUL character")
    limit = TEXT_LIMITS[name]
    if len(text) > limit:
        raise ValueError(f"is longer than {limit} characters ({len(text)})")
    return text


def _external_id(value: Any) -> str:
    _single(value, "an id")
    return check_external_id(value)


def _price(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    _single(value, "a price")
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a price")
    try:
        price = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a number") from None
    if not price.is_finite() or price < 0 or price >= Decimal("1e10"):
        raise ValueError(f"{value!r} is out of range (0 to 9999999999.99)")
    return price.quantize(Decimal("0.01"))


TRUE_WORDS = {"1", "true", "yes", "y", "on"}
FALSE_WORDS = {"0", "false", "no", "n", "off", ""}


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS | FALSE_WORDS:
            return word in TRUE_WORDS
        raise ValueError(f"{value!r} is not a yes/no value")
    _single(value, "a yes/no value")
    if value is None or isinstance(value, bool | int | float | Decimal):
        return bool(value)  # None (a None on the way) counts as no; a count: more than 0
    raise ValueError(f"got a {type(value).__name__} ({value!r}), not a yes/no value")


def _attributes(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"must be a dict, not {type(value).__name__}")
    # Decimals, dates, UUIDs become JSON the way the database stores them, so comparing with
    # the stored attributes recognises an unchanged product.
    data = json.loads(json.dumps(dict(value), cls=DjangoJSONEncoder))
    try:
        check_json_value(data, field="attributes")
    except ValidationError as exc:
        raise ValueError("; ".join(exc.messages)) from None
    return data


def _is_default_storage(storage: Any) -> bool:
    return storage is default_storage or storage is storages["default"]


def _flatten(value: Any) -> Iterable[Any]:
    if isinstance(value, list | tuple | set | frozenset):
        for element in value:
            yield from _flatten(element)
    elif _is_manager(value):
        yield from value.all()
    else:
        yield value


def _images(value: Any) -> list[ImageRef]:
    refs: dict[str, ImageRef] = {}
    for element in _flatten(value):
        if element is None or element == "":
            continue
        if isinstance(element, FieldFile):
            if not element:  # an empty file field
                continue
            if _is_default_storage(element.storage):
                ref = ImageRef(name=element.name)
            else:
                url = element.url
                if not url.lower().startswith(("http://", "https://")):
                    raise ValueError(
                        f"{element.name!r} is in a storage other than default_storage and its "
                        f"URL {url!r} is not absolute: give its storage absolute URLs"
                    )
                ref = ImageRef(url=url)
        elif isinstance(element, str):
            if not element.strip().lower().startswith(("http://", "https://")):
                raise ValueError(
                    f"{element!r} is neither an image file nor an absolute http(s) URL"
                )
            ref = ImageRef(url=element.strip())
        else:
            raise ValueError(
                f"got a {type(element).__name__}, not an image file or URL (for a related "
                "model, name its file field: e.g. 'images.file')"
            )
        refs.setdefault(ref.key, ref)
    return list(refs.values())


COERCE: dict[str, Callable[[Any], Any]] = {
    "external_id": _external_id,
    "title": partial(_text, name="title", required=True),
    "description": partial(_text, name="description"),
    "category": partial(_text, name="category"),
    "brand": partial(_text, name="brand"),
    "price": _price,
    "in_stock": _flag,
    "is_active": _flag,
    "images": _images,
    "attributes": _attributes,
}


class ItemSource:
    """The configured product model and how to read plugin item fields from a product."""

    def __init__(
        self,
        *,
        model: type[models.Model],
        getters: dict[str, Callable[[Any], Any]],
        specs: dict[str, Any],
        queryset: Callable[[], models.QuerySet] | None = None,
        parent: Callable[[Any], Any] | None = None,
        children_as_items: bool = False,
        hops: Sequence[Hop] = (),
        m2m: Sequence[M2MHop] = (),
    ) -> None:
        self.model = model
        self.label = model._meta.label
        self.getters = getters
        self.specs = specs
        self._queryset = queryset
        self._parent = parent
        self.children_as_items = children_as_items
        #: The shop's models the fields are read through (derived from the paths, plus WATCH),
        #: and the many-to-many relations crossed: their changes re-mirror the products.
        self.hops = tuple(hops)
        self.m2m = tuple(m2m)

    def parent_of(self, product: Any) -> Any | None:
        """The parent product of a variant (``PARENT``), or None for a product of its own.
        A variant is never an item unless ``CHILDREN_AS_ITEMS``: its item is its parent's."""
        if self._parent is None:
            return None
        try:
            parent = self._parent(product)
        except ObjectDoesNotExist:
            return None
        if parent is None or parent == "":
            return None
        if not isinstance(parent, self.model):
            raise ValueError(
                f"SHOP_RECS['ITEM_SOURCE']['PARENT'] gave {parent!r} for {self.label} "
                f"{product.pk}, not a {self.label} or None"
            )
        return parent

    def item_product(self, product: Any) -> Any:
        """The product whose item stands for ``product``: its parent for a variant (unless
        variants are items of their own), else the product itself."""
        if self.children_as_items:
            return product
        return self.parent_of(product) or product

    def is_variant(self, product: Any) -> bool:
        return not self.children_as_items and self.parent_of(product) is not None

    def __repr__(self) -> str:
        return f"<ItemSource {self.label} ({', '.join(self.getters)})>"

    @property
    def maps_images(self) -> bool:
        return "images" in self.getters

    def queryset(self) -> models.QuerySet:
        """The products to mirror (QUERYSET, else all of the model's default manager)."""
        if self._queryset is None:
            qs = self.model._default_manager.all()
        else:
            qs = self._queryset()
            if not isinstance(qs, models.QuerySet) or not issubclass(qs.model, self.model):
                raise ImproperlyConfigured(
                    f"SHOP_RECS['ITEM_SOURCE']['QUERYSET'] returned {qs!r}: it must return a "
                    f"queryset of {self.label}."
                )
        return qs if qs.ordered else qs.order_by("pk")

    def _get(self, name: str, product: Any) -> Any:
        try:
            raw = self.getters[name](product)
        except ObjectDoesNotExist:
            raw = None
        except Exception as exc:
            raise ValueError(
                f"reading it with {self.specs[name]!r} failed: {type(exc).__name__}: {exc}"
            ) from exc
        return COERCE[name](raw)

    def external_id_of(self, product: Any) -> str:
        try:
            return self._get("external_id", product)
        except ValueError as exc:
            raise ValidationError({"external_id": [str(exc)]}) from None

    def read(self, product: Any) -> dict[str, Any]:
        """The plugin item fields of a product: the mapped ones, ``is_active`` (True when not
        mapped: a product that exists is offered) and ``images`` (a list of ImageRef; empty
        when not mapped, and then ``product_sync`` leaves the item's images alone).

        Raises ValidationError naming every field that could not be read or is invalid.
        """
        data: dict[str, Any] = {}
        errors: dict[str, list[str]] = {}
        for name in self.getters:
            try:
                data[name] = self._get(name, product)
            except ValueError as exc:
                errors[name] = [str(exc)]
        if errors:
            raise ValidationError(errors)
        data.setdefault("is_active", True)
        data.setdefault("images", [])
        return data

    def product_for(self, external_id: str) -> models.Model | None:
        """The product with this external id, when the external id is mapped to a plain field
        path (e.g. "sku" or "meta.sku"); None otherwise or when there is none."""
        spec = self.specs["external_id"]
        if not isinstance(spec, str) or spec.startswith(CALLABLE_PREFIX):
            return None
        try:
            return self.queryset().filter(**{spec.replace(".", "__"): external_id}).first()
        except (FieldError, ValueError, TypeError):
            return None
