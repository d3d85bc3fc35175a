"""Reads are public by default (widgets call them from the browser); writes need an
authenticated user holding the model permission for the change (DjangoModelPermissions style),
so a shopper logged in to the storefront cannot edit the catalog."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from shop_recs.conf import recs_settings

METHOD_ACTIONS = {"POST": "add", "PUT": "change", "PATCH": "change", "DELETE": "delete"}


class ReadPublicWriteAuthenticated(BasePermission):
    """``view.write_model`` names the model whose add/change/delete permission a write needs;
    ``view.private_reads = True`` makes reads need authentication too (personal data)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        authenticated = bool(user and user.is_authenticated)
        if request.method in SAFE_METHODS:
            if recs_settings.READ_REQUIRES_AUTH or getattr(view, "private_reads", False):
                return authenticated and _can_view(user, view)
            return True
        if not authenticated:
            return False
        model = getattr(view, "write_model", None)
        action = METHOD_ACTIONS.get(request.method or "")
        if model is None or action is None:
            return bool(user.is_staff)
        write_action = getattr(view, "write_action", None) or action
        return user.has_perm(f"{model._meta.app_label}.{write_action}_{model._meta.model_name}")


def _can_view(user: Any, view: Any) -> bool:
    model = getattr(view, "write_model", None)
    if not getattr(view, "private_reads", False) or model is None:
        return True
    return user.has_perm(f"{model._meta.app_label}.view_{model._meta.model_name}")
