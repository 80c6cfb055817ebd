"""The HTTP surface: security headers, the Host allow-list, HEAD, the admin key,
and uvicorn's size limits.

``install(app, settings)`` adds, outermost first:

- security headers on every response, errors included: a CSP that allows only
  the page's own assets (plus the YouTube no-cookie player as a frame), and
  ``frame-ancestors 'none'`` / ``X-Frame-Options: DENY``, ``nosniff``,
  ``Referrer-Policy``;
- Starlette's ``TrustedHostMiddleware``: a request whose ``Host`` is not a
  localhost name (or one of ``allowed_hosts``) gets 400, which stops a
  DNS-rebinding page from reading the API through the user's browser;
- the admin guard: when the server listens beyond localhost, ``/metrics`` and
  ``/admin/*`` need ``PODCITE_ADMIN_KEY`` (``Authorization: Bearer KEY``), and
  are refused outright when no key is set;
- request size: a request line or headers past ``max_header_bytes`` get 414 or
  431 (h11's own limit only applies to a request still arriving in pieces);
- HEAD answered wherever GET is (FastAPI routes declare GET only): the request
  runs as a GET and its body is dropped.

Written as small ASGI wrappers rather than taken from a package: each is a few
lines, and the header and HEAD packages on PyPI pull in far more than this.
"""

from __future__ import annotations

import hmac
from typing import Any

from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.settings import Settings

LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
# testserver: the Host of Starlette's TestClient.
DEFAULT_HOSTS = ("localhost", "127.0.0.1", "[::1]", "testserver")
PLAYER = "https://www.youtube-nocookie.com"
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    f"frame-src {PLAYER}; media-src 'self' https: http:; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# FastAPI's /docs page loads Swagger UI from a CDN with an inline script.
DOCS_CSP = (
    "default-src 'self'; img-src 'self' data: https://fastapi.tiangolo.com; "
    "style-src 'self' https://cdn.jsdelivr.net; "
    "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; frame-ancestors 'none'"
)
HEADERS = {
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"strict-origin-when-cross-origin",
    b"x-frame-options": b"DENY",
    b"cross-origin-opener-policy": b"same-origin",
}
ADMIN_PATHS = ("/metrics", "/admin/")


def is_local(host: str) -> bool:
    return host in LOCAL_NAMES or host.startswith("127.")


def exposure_warning(settings: Settings) -> str | None:
    """What ``serve --host 0.0.0.0`` without a key exposes, in one line."""
    if is_local(settings.host) or settings.admin_key:
        return None
    return (
        f"listening on {settings.host} without PODCITE_ADMIN_KEY: the search page and API "
        "answer anyone who can reach this address; /metrics and /admin/reload are refused "
        "until a key is set; add your host name to PODCITE_ALLOWED_HOSTS"
    )


def uvicorn_limits(settings: Settings) -> dict[str, Any]:
    """uvicorn options bounding a request's line and headers (h11 refuses larger with 400)."""
    return {"http": "h11", "h11_max_incomplete_event_size": settings.max_header_bytes}


def install(app: Any, settings: Settings) -> None:
    """Wrap ``app`` (a FastAPI app) in the middlewares above."""
    app.add_middleware(HeadAsGet)
    app.add_middleware(SizeLimit, limit=settings.max_header_bytes)
    if not is_local(settings.host):
        app.add_middleware(AdminGuard, key=settings.admin_key)
    hosts = [*DEFAULT_HOSTS, *settings.allowed_hosts]
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=hosts)
    app.add_middleware(SecurityHeaders)


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = scope["path"] in ("/docs", "/redoc")
        csp = (DOCS_CSP if docs else CSP).encode()

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in HEADERS.items() if k not in names]
                if b"content-security-policy" not in names:
                    extra.append((b"content-security-policy", csp))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)


class AdminGuard:
    """``/metrics`` and ``/admin/*`` only with the admin key (none set: refused)."""

    def __init__(self, app: ASGIApp, key: str | None) -> None:
        self.app = app
        self.key = key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path.startswith(ADMIN_PATHS):
            given = dict(scope.get("headers", [])).get(b"authorization", b"").decode("latin-1")
            ok = self.key is not None and hmac.compare_digest(given, f"Bearer {self.key}")
            if not ok:
                from starlette.responses import JSONResponse

                msg = "needs the admin key" if self.key else "disabled: no PODCITE_ADMIN_KEY set"
                await JSONResponse({"detail": f"{path} {msg}"}, status_code=403)(
                    scope, receive, send
                )
                return
        await self.app(scope, receive, send)


class SizeLimit:
    """414 for a request target, 431 for headers, larger than ``limit`` bytes."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            from starlette.responses import PlainTextResponse

            target = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
            headers = sum(len(k) + len(v) + 4 for k, v in scope.get("headers", []))
            if target > self.limit or headers > self.limit:
                status = 414 if target > self.limit else 431
                msg = f"request {'line' if status == 414 else 'headers'} over {self.limit} bytes"
                await PlainTextResponse(msg, status_code=status)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class HeadAsGet:
    """Answer HEAD like GET, without the body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def no_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, no_body)
