"""Property-based run of schemathesis against the live /api/v1/schema/ (anonymous and with a
token): no 5xx, and every response matches the published OpenAPI schema."""

from __future__ import annotations

import pytest
import schemathesis
from django.contrib.auth import get_user_model
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from shop_recs.catalog.models import Customer, Item

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
EXAMPLES = 50


@pytest.fixture
def api_schema(live_server):
    return schemathesis.openapi.from_url(f"{live_server.url}/api/v1/schema/")


@pytest.fixture
def seeded(transactional_db) -> str:
    """Some data for the generated requests to find, and a token with every permission.

    The encoders load first: with no broker, a created item is encoded inside its request, and
    the first model load (~10 s) would otherwise look like a hung server.
    """
    from shop_recs.encoding.encoders import warm_up

    warm_up()
    Item.objects.create(external_id="sku-1", title="Shirt", category="Shirts", price=10)
    Customer.objects.create(external_id="c1")
    user = get_user_model().objects.create_superuser("fuzz", "f@example.com", "pw-123456")
    return Token.objects.create(user=user).key


schema = schemathesis.pytest.from_fixture("api_schema")


SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)


@pytest.mark.slow
@schema.parametrize()
@SETTINGS
def test_api_conforms_with_token(case, seeded) -> None:
    case.call_and_validate(headers={"Authorization": f"Token {seeded}"}, checks=CHECKS)


@pytest.mark.slow
@schema.parametrize()
@SETTINGS
def test_api_conforms_anonymous(case, seeded) -> None:
    case.call_and_validate(checks=CHECKS)
