"""The API's documentation: the OpenAPI document and Swagger UI, whose assets are served from this
process (the ``swagger-ui-bundle-v2`` package), so ``/docs`` works on a machine without internet.
No API key needed. Declared as routes, not FastAPI's built-ins, so metrics label them by path."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

OPENAPI_PATH = "/openapi.json"
ASSETS_PATH = "/docs/assets"

router = APIRouter(include_in_schema=False)


@router.get(OPENAPI_PATH)
async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "").rstrip("/")
    assets = root + ASSETS_PATH
    return get_swagger_ui_html(
        openapi_url=root + OPENAPI_PATH,
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=f"{assets}/swagger-ui-bundle.js",
        swagger_css_url=f"{assets}/swagger-ui.css",
        swagger_favicon_url=f"{assets}/favicon-32x32.png",
        oauth2_redirect_url=None,
    )


def mount_assets(app: FastAPI) -> None:
    """Swagger UI's JavaScript, CSS and icons under ``ASSETS_PATH``."""
    app.mount(ASSETS_PATH, StaticFiles(directory=swagger_ui_path), name="swagger-ui-assets")
