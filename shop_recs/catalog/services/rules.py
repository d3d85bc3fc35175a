"""Merchandising rules: validated saves (the rules are applied by ``shop_recs.ranking``)."""

from __future__ import annotations

from typing import Any

from shop_recs.catalog.models import MerchRule


def merch_rule_save(*, rule: MerchRule, user: Any = None) -> MerchRule:
    """Validate and save a merchandising rule (new or changed); a new rule records who made it.
    Raises ValidationError naming the field. Saving clears this process's rule cache
    (``catalog.merchandising``); other processes see the change within RULES_CACHE_SECONDS."""
    if rule.pk is None and rule.created_by_id is None and getattr(user, "is_authenticated", False):
        rule.created_by = user
    rule.full_clean()
    rule.save()
    return rule
