"""What a dotted path reads through: the shop's models a field is read from, found from the
product model's ``_meta`` (no instance, no query).

A path such as ``"stockrecords.num_in_stock"`` follows the relations of the product model step
by step: forward foreign keys and one-to-ones, their reverse accessors (``stockrecords``,
``stockrecord_set``), many-to-many fields in both directions. The analysis says

- whether the value is plural (the path crosses a to-many relation: a reducer must say how to
  make one value of it, see :mod:`.values`);
- every model the value depends on, with the ORM lookup from the product model to it, so the
  mirroring can find the products a saved or deleted row of that model belongs to;
- the many-to-many relations crossed, whose ``m2m_changed`` signals change the value too.

The walk stops at the first name that is not a relation (a column, a property, a method): what
comes after it is read from that value at run time and depends on no other row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.db.models import ForeignObjectRel


@dataclass(frozen=True)
class Hop:
    """A model reached by a path: a row of ``model`` is related to the products matching
    ``Product.objects.filter(**{lookup: row})``. ``fk_attname`` is set when the row itself
    holds the product's key (a reverse foreign key from the product model: a stock record's
    ``product_id``), which finds the product without a query, also after a delete."""

    model: type[models.Model]
    lookup: str
    fk_attname: str | None = None


@dataclass(frozen=True)
class M2MHop:
    """A many-to-many relation crossed by a path: its ``through`` model's ``m2m_changed``
    changes the value. ``owner`` is the side the field is declared on, ``owner_lookup`` the ORM
    lookup from the product model to the owner ("" when the owner is the product model)."""

    through: type[models.Model]
    owner: type[models.Model]
    owner_lookup: str
    target_lookup: str
    #: The through model's column holding the owner's key (rows saved directly, as admin
    #: inlines of an explicit through model do, name their owner by it).
    owner_fk_attname: str = ""


def _owner_fk_attname(m2m_field: models.ManyToManyField) -> str:
    through = m2m_field.remote_field.through
    return through._meta.get_field(m2m_field.m2m_field_name()).attname


@dataclass
class PathInfo:
    hops: list[Hop] = field(default_factory=list)
    m2m: list[M2MHop] = field(default_factory=list)
    #: The path crosses a to-many relation (or ends on one): its value is a list.
    plural: bool = False
    #: The names the walk followed as relations (the rest is read from a value).
    relations: tuple[str, ...] = ()
    #: Why the walk stopped early on an unknown name (the path's first name is unknown).
    unknown: str | None = None


def _relation(model: type[models.Model], name: str) -> models.Field | ForeignObjectRel | None:
    """The forward field or reverse relation called ``name`` on ``model`` (a reverse relation
    by its accessor: ``related_name`` or ``<model>_set``), or None."""
    try:
        found = model._meta.get_field(name)
        if isinstance(found, ForeignObjectRel) and found.get_accessor_name() != name:
            found = None  # a reverse relation's query name: not an attribute of instances
        if found is not None:
            return found
    except FieldDoesNotExist:
        pass
    for rel in model._meta.related_objects:
        if rel.get_accessor_name() == name:
            return rel
    return None


def analyse(model: type[models.Model], path: Sequence[str]) -> PathInfo:
    """Walk ``path`` over ``model``'s relations (module docstring)."""
    info = PathInfo()
    current = model
    lookup: list[str] = []
    followed: list[str] = []
    for index, name in enumerate(path):
        rel = _relation(current, name)
        if rel is None:
            if index == 0 and not hasattr(current, name):
                info.unknown = name
            break
        if not rel.is_relation or rel.related_model is None:
            break  # a column: the rest is read from its value
        owner_lookup = "__".join(lookup)
        if isinstance(rel, ForeignObjectRel):
            query_name = rel.name  # the related query name (``related_query_name``)
            many = rel.one_to_many or rel.many_to_many
            fk = rel.field.attname if (rel.one_to_many and index == 0) else None
            if rel.many_to_many:
                info.m2m.append(
                    M2MHop(
                        through=rel.through,
                        owner=rel.related_model,
                        owner_lookup="__".join([*lookup, query_name]),
                        target_lookup=owner_lookup,
                        owner_fk_attname=_owner_fk_attname(rel.field),
                    )
                )
        else:
            query_name = rel.name
            many = rel.many_to_many
            fk = None
            if rel.many_to_many:
                info.m2m.append(
                    M2MHop(
                        through=rel.remote_field.through,
                        owner=current,
                        owner_lookup=owner_lookup,
                        target_lookup="__".join([*lookup, query_name]),
                        owner_fk_attname=_owner_fk_attname(rel),
                    )
                )
        lookup.append(query_name)
        followed.append(name)
        current = rel.related_model
        info.plural = info.plural or many
        info.hops.append(Hop(model=current, lookup="__".join(lookup), fk_attname=fk))
    info.relations = tuple(followed)
    return info


def analyse_lookup(model: type[models.Model], lookup: str) -> Hop | None:
    """The model an ORM lookup (``"stockrecords__partner"``) from ``model`` reaches, as a
    :class:`Hop`; None when a part of it is not a relation."""
    current = model
    fk = None
    for index, name in enumerate(lookup.split("__")):
        try:
            rel = current._meta.get_field(name)
        except FieldDoesNotExist:
            return None
        if not rel.is_relation or rel.related_model is None:
            return None
        if isinstance(rel, ForeignObjectRel) and rel.one_to_many and index == 0:
            fk = rel.field.attname
        elif index == 0:
            fk = None
        current = rel.related_model
    return Hop(model=current, lookup=lookup, fk_attname=fk if "__" not in lookup else None)
