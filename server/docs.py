"""The API's documentation page, served offline.

FastAPI's default ``/docs`` loads Swagger UI from a CDN, so on a machine
without the internet it is a blank page.  Here the same page takes its script
and stylesheet from the ``swagger-ui-bundle`` package, mounted under
``/docs-assets``; ``/redoc`` (CDN-only in FastAPI) is not offered.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

FAVICON = Path(__file__).parent / "static" / "favicon.svg"


def mount(app: FastAPI) -> None:
    """``/docs`` with local assets, and ``/favicon.ico`` (create the app with
    ``docs_url=None, redoc_url=None``)."""
    from swagger_ui_bundle import swagger_ui_path

    app.mount("/docs-assets", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/favicon.ico",
        )

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        return FileResponse(FAVICON, media_type="image/svg+xml")
