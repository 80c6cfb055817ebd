"""schemathesis hooks for tests/test_serving.py (SCHEMATHESIS_HOOKS).

One rule of the API spans two fields, which a JSON schema cannot state:
``after`` must not be later than ``before`` (a 422 that says so, tested in
tests/test_serving.py).  Positive cases that break it are left out here, so
"schema-valid request rejected" means what it says."""

from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.hook
def filter_query(ctx: Any, query: dict[str, Any] | None) -> bool:
    if not query:
        return True
    after, before = query.get("after"), query.get("before")
    return not (isinstance(after, str) and isinstance(before, str) and after > before)
