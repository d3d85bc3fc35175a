"""Item source adapter: mirror a shop's own product model into the plugin's items.

``SHOP_RECS["ITEM_SOURCE"]`` names the shop's product model and says how each plugin field is
read from a product (a dotted attribute path, a callable, or ``"callable:dotted.path"``)::

    "ITEM_SOURCE": {
        "MODEL": "shop.Product",
        "FIELDS": {"external_id": "sku", "title": "name", "category": "category.name",
                   "images": "images.file"},
        "QUERYSET": None,   # or the dotted path of a callable returning the products to mirror
    }

Saves and deletes of products are mirrored after commit (``connect_signals``, wired in the
catalog's ``AppConfig.ready()``) through the catalog services, so validation, the
``item_content_changed`` signal and encoding happen exactly as for the REST API;
``sync_all`` (``python manage.py recs_sync``) backfills and reconciles.

Items that came from the source carry a marker in ``Item.source``: ``{"model":
"shop.Product", "images": [...]}``. ``sync_all`` deactivates only items with the marker of the
configured model (never items created through the API or an import); and ``images`` lists the
product's image references as last mirrored, so an unchanged product is recognised without
reading its files. The marker is not part of the API's item, so a client never drops it.
"""

from __future__ import annotations

import inspect
import json
import logging
import posixpath
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import lru_cache, partial
from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.core import checks
from django.core.exceptions import (
    FieldDoesNotExist,
    FieldError,
    ImproperlyConfigured,
    ObjectDoesNotExist,
    ValidationError,
)
from django.core.files.storage import default_storage, storages
from django.core.serializers.json import DjangoJSONEncoder
from django.core.signals import setting_changed
from django.db import models, transaction
from django.db.models.fields.files import FieldFile
from django.db.models.manager import BaseManager
from django.db.models.signals import post_delete, post_save
from django.utils.module_loading import import_string

from shop_recs.catalog import services
from shop_recs.catalog.conf import recs_settings
from shop_recs.catalog.importer import EXTERNAL_ID
from shop_recs.catalog.models import Item, ItemEncoding
from shop_recs.catalog.services import customer_external_id, customer_for_user
from shop_recs.catalog.validation import check_json_value

__all__ = [
    "ImageRef",
    "ItemSource",
    "SyncReport",
    "check_settings",
    "connect_signals",
    "customer_external_id",
    "customer_for_user",
    "item_source",
    "product_removed",
    "product_sync",
    "resolve_path",
    "sync_all",
]

logger = logging.getLogger(__name__)

CALLABLE_PREFIX = "callable:"
REQUIRED_FIELDS = ("external_id", "title")
PLUGIN_FIELDS = (
    "external_id",
    "title",
    "description",
    "category",
    "brand",
    "price",
    "in_stock",
    "is_active",
    "images",
    "attributes",
)
SETTING_KEYS = {"MODEL", "FIELDS", "QUERYSET"}
TEXT_LIMITS = {"title": 500, "description": 20000, "category": 200, "brand": 200}
SAVE_UID = "shop_recs.item_source.saved"
DELETE_UID = "shop_recs.item_source.deleted"


# --------------------------------------------------------------------------- reading


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
            return [resolve_path(element, path[index:]) for element in value.all()]
        try:
            value = getattr(value, name)
        except ObjectDoesNotExist:  # a missing one-to-one (reverse) relation
            return None
        if inspect.ismethod(value) or inspect.isbuiltin(value):
            value = value()
    if _is_manager(value):
        return list(value.all())
    return value


def _text(value: Any, *, name: str, required: bool = False) -> str:
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
    text = "" if value is None else str(value).strip()
    try:
        EXTERNAL_ID(text)
    except ValidationError:
        raise ValueError(
            f"{text!r} is not a valid external id: use 1-255 characters without whitespace, "
            "control characters or any of / \\ ? # %"
        ) from None
    return text


def _price(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
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
    return bool(value)  # None (a None on the way) counts as no


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
    ) -> None:
        self.model = model
        self.label = model._meta.label
        self.getters = getters
        self.specs = specs
        self._queryset = queryset

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


# --------------------------------------------------------------------------- settings


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


def _import_callable(path: str) -> Callable[..., Any]:
    func = import_string(path)
    if not callable(func):
        raise ImportError(f"{path} is not callable")
    return func


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
                getters[name] = _import_callable(spec.removeprefix(CALLABLE_PREFIX))
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
            queryset_factory = _import_callable(queryset.removeprefix(CALLABLE_PREFIX))
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
            _import_callable(spec.removeprefix(CALLABLE_PREFIX))
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
    problems += _customer_id_problems(recs_settings.CUSTOMER_ID)
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


# --------------------------------------------------------------------------- writing


@dataclass
class _Plan:
    fields: dict[str, Any]
    attributes: dict[str, Any]
    changes: dict[str, Any]
    marker: dict[str, Any]
    marker_changed: bool
    images_changed: bool


def _plan(source: ItemSource, data: dict[str, Any], item: Item | None) -> _Plan:
    fields = {n: data[n] for n in services.ITEM_FIELDS if n in data and n != "attributes"}
    old_attributes = item.attributes if item is not None else {}
    old_marker = item.source if item is not None else None
    marker: dict[str, Any] = {"model": source.label}
    images_changed = False
    if source.maps_images:
        marker["images"] = [ref.key for ref in data["images"]]
        images_changed = (
            item is None
            or not isinstance(old_marker, dict)
            or old_marker.get("images") != marker["images"]
        )
    # not mapped: keep what the API or an import stored
    attributes = data["attributes"] if "attributes" in data else dict(old_attributes)
    wanted = {**fields, "attributes": attributes}
    changes = wanted if item is None else {n: v for n, v in wanted.items() if getattr(item, n) != v}
    return _Plan(fields, attributes, changes, marker, old_marker != marker, images_changed)


def _sync_images(item: Item, refs: Sequence[ImageRef], *, announce: bool) -> None:
    """Make the item's images those of the product: add the new ones (files are copied into
    the plugin's storage, deduplicated by checksum; URLs are fetched by a worker), delete the
    others. An image that cannot be read or is invalid is skipped with a warning."""
    keep: set[int] = set()
    for position, ref in enumerate(refs):
        try:
            if ref.url:
                image = services.item_image_add_url(item=item, url=ref.url, position=position)
            else:
                with default_storage.open(ref.name, "rb") as fh:
                    image = services.item_image_add_file(
                        item=item,
                        upload=fh,
                        filename=posixpath.basename(ref.name),
                        position=position,
                        announce=announce,
                    )
        except (ValidationError, OSError) as exc:
            reason = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
            logger.warning(
                "image %s of item %s skipped: %s", ref.url or ref.name, item.external_id, reason
            )
            continue
        keep.add(image.pk)
    for image in item.images.exclude(pk__in=keep):
        services.item_image_delete(image=image)


def _sync_data(
    source: ItemSource, data: dict[str, Any], *, dry_run: bool = False, announce: bool = True
) -> tuple[Item | None, str]:
    external_id = data["external_id"]
    if dry_run:
        item = Item.objects.filter(external_id=external_id).first()
        plan = _plan(source, data, item)
        if item is None:
            return None, "created"
        changed = plan.changes or plan.marker_changed or plan.images_changed
        return item, "updated" if changed else "unchanged"
    for attempt in range(2):
        try:
            with transaction.atomic():
                item = Item.objects.select_for_update().filter(external_id=external_id).first()
                plan = _plan(source, data, item)
                if item is None:
                    item = services.item_create(
                        external_id=external_id,
                        **plan.fields,
                        attributes=plan.attributes,
                        announce=announce,
                    )
                    outcome = "created"
                elif plan.changes:
                    services.item_update(item=item, data=plan.changes, announce=announce)
                    outcome = "updated"
                else:
                    outcome = "unchanged"
                if plan.marker_changed:
                    Item.objects.filter(pk=item.pk).update(source=plan.marker)
                    item.source = plan.marker
                    if outcome == "unchanged":
                        outcome = "updated"
                if plan.images_changed:
                    _sync_images(item, data["images"], announce=announce)
                    outcome = "created" if outcome == "created" else "updated"
            return item, outcome
        except services.AlreadyExists:
            if attempt:  # created concurrently: the second try updates it
                raise
    raise AssertionError("unreachable")


def product_sync(*, product: models.Model) -> Item:
    """Create or update the plugin item (and its images) of a shop product.

    Goes through the catalog services: the same validation as the REST API, the item is
    marked pending and encoded after commit when its content changed; an unchanged product
    changes nothing (and is not re-encoded). Raises ValidationError naming the product's
    fields that cannot be mirrored.
    """
    source = _require_source()
    try:
        data = source.read(product)
    except ValidationError as exc:
        raise _with_product(exc, source, product) from None
    item, _ = _sync_data(source, data)
    assert item is not None
    return item


def _with_product(exc: ValidationError, source: ItemSource, product: Any) -> ValidationError:
    return ValidationError(
        {
            name: [f"{source.label} {product.pk}: {message}" for message in messages]
            for name, messages in exc.message_dict.items()
        }
    )


def product_removed(*, external_id: str) -> None:
    """The product is gone: deactivate its item, so it leaves every recommendation.

    Deactivated, not deleted: deleting an item deletes its interactions (the shoppers' history
    that trains the model and explains their recommendations), the merchandising rules that
    name it and its vectors, and a product restored or re-created with the same id would start
    from nothing. An inactive item is kept for that history and never served.
    """
    item = Item.objects.filter(external_id=external_id).first()
    if item is not None and item.is_active:
        services.item_update(item=item, data={"is_active": False})


@dataclass
class SyncReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deactivated: int = 0
    failed: int = 0
    dry_run: bool = False
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"created {self.created}, updated {self.updated}, unchanged {self.unchanged}, "
            f"deactivated {self.deactivated}, failed {self.failed}"
        )


def _messages(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
    return "; ".join(exc.messages)


def _announce_pending(item_ids: list[int]) -> None:
    # Only items whose content changed wait for encoding (a price or stock change does not).
    pending = ItemEncoding.objects.filter(pk__in=item_ids, status=ItemEncoding.Status.PENDING)
    services.items_announce_changed(item_ids=sorted(pending.values_list("pk", flat=True)))


def sync_all(*, progress: bool = True, dry_run: bool = False, chunk_size: int = 200) -> SyncReport:
    """Mirror every product of the source: create missing items, update changed ones and
    deactivate marked items whose product is gone (or left the QUERYSET).

    Each product is written in its own transaction; one that fails is reported and the others
    go on. Changed items are queued for encoding in batches. With ``dry_run`` nothing is
    written and the report says what would change.
    """
    from tqdm import tqdm

    source = _require_source()
    products = source.queryset()
    report = SyncReport(dry_run=dry_run)
    seen: dict[str, Any] = {}
    unidentified = 0
    changed: list[int] = []
    with tqdm(total=products.count(), desc="products", unit="product", disable=not progress) as bar:
        for product in products.iterator(chunk_size=chunk_size):
            bar.update(1)
            try:
                external_id = source.external_id_of(product)
            except ValidationError as exc:
                unidentified += 1
                report.failed += 1
                report.errors.append(f"{source.label} {product.pk}: {_messages(exc)}")
                continue
            if external_id in seen:
                report.failed += 1
                report.errors.append(
                    f"{source.label} {product.pk}: external id {external_id!r} repeats that of "
                    f"{source.label} {seen[external_id]}"
                )
                continue
            seen[external_id] = product.pk
            try:
                item, outcome = _sync_data(
                    source, source.read(product), dry_run=dry_run, announce=False
                )
            except ValidationError as exc:
                report.failed += 1
                report.errors.append(f"{source.label} {product.pk}: {_messages(exc)}")
                continue
            except Exception as exc:  # one product's failure never stops the others
                logger.exception("%s %s could not be mirrored", source.label, product.pk)
                report.failed += 1
                report.errors.append(f"{source.label} {product.pk}: {type(exc).__name__}: {exc}")
                continue
            setattr(report, outcome, getattr(report, outcome) + 1)
            if item is not None and outcome != "unchanged" and not dry_run:
                changed.append(item.pk)
                if len(changed) >= chunk_size:
                    _announce_pending(changed)
                    changed = []
    if changed:
        _announce_pending(changed)

    if unidentified:
        # Their items cannot be told from those of deleted products: deactivate nothing.
        report.errors.append(
            f"nothing deactivated: {unidentified} product(s) have no valid external id"
        )
        return report
    marked = Item.objects.filter(is_active=True, source__model=source.label).only(
        "id", "external_id", "is_active"
    )
    for item in marked.iterator(chunk_size=2000):
        if item.external_id in seen:
            continue
        if not dry_run:
            services.item_update(item=item, data={"is_active": False})
        report.deactivated += 1
    return report


# --------------------------------------------------------------------------- signals

_connected: type[models.Model] | None = None


def _on_product_saved(
    sender: Any, instance: Any, raw: bool = False, using: str | None = None, **kwargs: Any
) -> None:
    if raw:  # loading fixtures: recs_sync mirrors them
        return
    try:
        source = item_source()
        if source is None or not isinstance(instance, source.model):
            return
        transaction.on_commit(partial(_mirror_saved, instance), using=using)
    except Exception:  # the shop's save must never fail because of the plugin
        logger.exception("shop_recs: could not queue the mirroring of %r", instance)


def _mirror_saved(instance: Any) -> None:
    try:
        source = item_source()
        if source is None:
            return
        # Read again after commit: the committed state, with the QUERYSET's filters and
        # prefetches (a product outside it, e.g. unpublished, is not offered).
        product = source.queryset().filter(pk=instance.pk).first()
        if product is None:
            product_removed(external_id=source.external_id_of(instance))
        else:
            product_sync(product=product)
    except Exception:
        logger.exception(
            "shop_recs: %s %s could not be mirrored into the recommendations catalog; "
            "fix the cause, then run `python manage.py recs_sync`",
            instance._meta.label,
            instance.pk,
        )


def _on_product_deleted(
    sender: Any, instance: Any, using: str | None = None, **kwargs: Any
) -> None:
    try:
        source = item_source()
        if source is None or not isinstance(instance, source.model):
            return
        # read now: after the delete the product's relations may be gone
        external_id = source.external_id_of(instance)
        transaction.on_commit(partial(_mirror_deleted, instance, external_id), using=using)
    except Exception:
        logger.exception(
            "shop_recs: the deletion of %s %s could not be mirrored; run "
            "`python manage.py recs_sync`",
            instance._meta.label,
            instance.pk,
        )


def _mirror_deleted(instance: Any, external_id: str) -> None:
    try:
        product_removed(external_id=external_id)
    except Exception:
        logger.exception(
            "shop_recs: the deletion of %s %s (item %s) could not be mirrored; run "
            "`python manage.py recs_sync`",
            instance._meta.label,
            instance.pk,
            external_id,
        )


def connect_signals() -> None:
    """Connect post_save/post_delete of the configured product model (and disconnect those of
    a previous configuration); called from the catalog's ready() and when settings change."""
    global _connected
    if _connected is not None:
        post_save.disconnect(sender=_connected, dispatch_uid=SAVE_UID)
        post_delete.disconnect(sender=_connected, dispatch_uid=DELETE_UID)
        _connected = None
    try:
        source = item_source()
    except ImproperlyConfigured:
        logger.exception("shop_recs: ITEM_SOURCE is invalid; products are not mirrored")
        return  # the system check reports it too
    if source is None:
        return
    post_save.connect(_on_product_saved, sender=source.model, dispatch_uid=SAVE_UID)
    post_delete.connect(_on_product_deleted, sender=source.model, dispatch_uid=DELETE_UID)
    _connected = source.model


def _settings_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "SHOP_RECS":
        item_source.cache_clear()
        connect_signals()


setting_changed.connect(_settings_changed, dispatch_uid="shop_recs.item_source.reload")
