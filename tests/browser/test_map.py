"""The spot on a map: with the city's tile server set, the staff appeal page draws its tiles and a pin
(Leaflet from our own origin); the tiles come from that server and nothing from anywhere else."""

from __future__ import annotations

import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image
from sqlalchemy import update

from appealflow.models.appeals.appeal import Appeal
from appealflow.models.storage.db import session_scope
from appealflow.runtime.services import free_port
from appealflow.settings import get_settings
from tests.browser.steps import sign_in
from tests.conftest import on_sqlite
from tests.test_position import LAMP


class TileServer:
    """A city tile server of one grey tile, counting what it was asked for."""

    def __init__(self):
        self.port = free_port()
        self.asked: list[str] = []
        out = io.BytesIO()
        Image.new("RGB", (256, 256), (220, 220, 220)).save(out, "PNG")
        tile, server = out.getvalue(), self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's hook name
                server.asked.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(tile)))
                self.end_headers()
                self.wfile.write(tile)

            def log_message(self, *_):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)

    def __enter__(self) -> TileServer:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_):
        self._server.shutdown()
        self._server.server_close()


@on_sqlite
def test_the_staff_page_draws_the_spot_on_the_citys_tiles_with_a_pin(browser, stack):
    with TileServer() as tiles:
        stack.env["APPEALFLOW_MAP_TILE_URL"] = f"http://127.0.0.1:{tiles.port}/{{z}}/{{x}}/{{y}}.png"
        stack.env["APPEALFLOW_MAP_TILE_ATTRIBUTION"] = "市规划局"
        base = stack.start_api()
        import httpx

        code = httpx.post(f"{base}/appeals", json=LAMP, timeout=30).json()["code"]
        with session_scope(get_settings().sqlalchemy_url) as session:
            session.execute(update(Appeal).where(Appeal.code == code).values(status="triage"))
        context = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai", base_url=base)
        context.set_default_timeout(20_000)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        elsewhere: list[str] = []
        page.on("request", lambda r: None if r.url.startswith((base, f"http://127.0.0.1:{tiles.port}/", "data:"))
                else elsewhere.append(r.url))
        sign_in(page, "dispatcher")
        page.goto(f"/work/appeals/{code}")
        page.wait_for_selector("#position-pin-map .leaflet-marker-icon")
        page.wait_for_function("document.querySelectorAll('#position-pin-map img.leaflet-tile-loaded').length > 0")
        assert any(path.startswith("/17/") and path.endswith(".png") for path in tiles.asked), tiles.asked
        assert "市规划局" in page.inner_text("#position-pin-map .leaflet-control-attribution")
        assert not elsewhere and not errors, (elsewhere, errors)
