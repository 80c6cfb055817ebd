"""The API's documentation page, served offline.

FastAPI's default ``/docs`` loads Swagger UI from a CDN, so on a machine
without the internet it is a blank page.  Here the page takes Swagger UI's
script and stylesheet from the ``swagger-ui-bundle-v2`` package, mounted under
``/docs-assets`` (Swagger UI 5: the 4.x of ``swagger-ui-bundle`` cannot read
the OpenAPI 3.1 that FastAPI writes), and starts it from a static file rather
than an inline script, so a Content-Security-Policy of ``script-src 'self'``
allows it.
``/redoc`` (CDN-only in FastAPI) is not offered.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

FAVICON = Path(__file__).parent / "static" / "favicon.svg"
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>podcite API</title>
<link rel="icon" href="/favicon.ico" type="image/svg+xml">
<link rel="stylesheet" href="/docs-assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi="/openapi.json"></div>
<script src="/docs-assets/swagger-ui-bundle.js"></script>
<script src="/static/docs.js"></script>
</body>
</html>
"""


def mount(app: FastAPI) -> None:
    """``/docs`` with local assets, and ``/favicon.ico`` (create the app with
    ``docs_url=None, redoc_url=None``)."""
    from swagger_ui_bundle import swagger_ui_path

    app.mount("/docs-assets", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(PAGE)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        return FileResponse(FAVICON, media_type="image/svg+xml")
