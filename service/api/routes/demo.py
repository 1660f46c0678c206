"""GET /demo: a page to try ShopRank in a browser (plain HTML and one small script, no build step).

Search (``/v1/retrieve`` → ``/v1/rank``), weight sliders that re-rank live, per-item bars for the heads and
the phase that scored it, an item view with recommended keyphrases and their relevance floor, and a write
panel shown only when no API key is configured (the page never holds a key). The page calls the public
endpoints only, so it shows exactly what a client gets.
"""

import json
from importlib import resources

from fastapi import APIRouter
from starlette.responses import HTMLResponse, Response

from service.api.deps import SettingsDep

STATIC = resources.files("service.api") / "static"


def router() -> APIRouter:
    api = APIRouter(tags=["demo"], include_in_schema=False)
    page = (STATIC / "demo.html").read_text(encoding="utf-8")
    script = (STATIC / "demo.js").read_text(encoding="utf-8")

    @api.get("/demo", response_class=HTMLResponse)
    def demo(settings: SettingsDep) -> HTMLResponse:
        config = {"writes": settings.api_key is None, "mode": settings.retrieval_mode,
                  "weights": settings.profiles["default"].model_dump() if "default" in settings.profiles
                  else {"relevance": 1.0, "ctr": 0.0, "cvr": 0.0}}
        # "</" cannot end the inline script early: JSON of settings only, "<" escaped anyway
        return HTMLResponse(page.replace("__CONFIG__", json.dumps(config).replace("<", "\\u003c")))

    @api.get("/demo/demo.js")
    def demo_script() -> Response:
        return Response(script, media_type="text/javascript; charset=utf-8")

    return api
