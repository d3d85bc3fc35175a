from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from PIL import Image
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


@pytest.fixture
def admin_user(db):
    return get_user_model().objects.create_superuser("root", "root@example.com", "pw-123456")


@pytest.fixture
def client_for(db) -> Callable[..., APIClient]:
    """A token-authenticated client for a new user with the given permission codenames."""

    def make(*codenames: str, username: str = "writer") -> APIClient:
        user = get_user_model().objects.create_user(username, password="pw-123456")
        for codename in codenames:
            user.user_permissions.add(Permission.objects.get(codename=codename))
        token = Token.objects.create(user=user)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client

    return make


@pytest.fixture
def api(admin_user) -> APIClient:
    token = Token.objects.create(user=admin_user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def image_bytes(size: tuple[int, int] = (32, 24), fmt: str = "PNG", color: int = 120) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (color, 40, 200)).save(buf, format=fmt)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims a huge size and holds no pixels: a decompression bomb's head."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
        + b"\x00\x00\x00\x00IEND\xaeB`\x82"
    )


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def write_vector(
    item: Any, space: str, values: Any, *, encoder: str = "", content_hash: str = "h"
) -> Any:
    """Store a vector of an item directly (tests that need vectors without the encoders)."""
    from shop_recs.catalog.models import ItemEmbedding

    return ItemEmbedding.objects.create(
        item=item,
        space=space,
        dim=len(values),
        vector=values,
        encoder=encoder or f"test-{space}",
        encoder_version="1",
        content_hash=content_hash,
    )
