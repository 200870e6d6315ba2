"""requests-cache, imported without the backends rewriter never uses.

requests-cache's package imports the client library of every backend it supports that
happens to be installed: boto3 for DynamoDB, pymongo for MongoDB and GridFS, redis.
That is ~0.2 s of every cold render's start-up for a probe that stores answers in
SQLite, or in Redis through `requests_cache.backends.redis`, imported when asked for.
So those libraries are hidden from requests-cache's first import (its unused backends
become its own placeholders) and visible again right after. Everything rewriter uses
of requests-cache is imported from here, so that this import is the first.
"""

from __future__ import annotations

import sys

_UNUSED = ("boto3", "botocore", "pymongo", "gridfs", "bson", "redis")


def _import_requests_cache() -> None:
    hidden = [name for name in _UNUSED if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # `import name` raises ImportError
    try:
        import requests_cache  # noqa: F401
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


_import_requests_cache()

from requests_cache import json_serializer  # noqa: E402
from requests_cache.backends.base import BaseCache  # noqa: E402
from requests_cache.backends.sqlite import SQLiteCache, SQLiteDict  # noqa: E402
from requests_cache.models.request import CachedRequest  # noqa: E402
from requests_cache.models.response import CachedResponse  # noqa: E402
from requests_cache.policy import get_expiration_datetime  # noqa: E402

__all__ = [
    "BaseCache",
    "CachedRequest",
    "CachedResponse",
    "SQLiteCache",
    "SQLiteDict",
    "get_expiration_datetime",
    "json_serializer",
]
