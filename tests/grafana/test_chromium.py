"""The screenshot driver the Docker test uses for Grafana, against a loopback page that needs a header."""

from __future__ import annotations

import pytest
from PIL import Image

from tests.grafana.chromium import Chromium
from tests.support.recorder import RecordingServer, Reply

TOKEN = "Bearer glsa_test-token"
PAGE = """<!doctype html><html><body style="margin:0;background:rgb(200,0,0)"><p id="state">waiting</p>
<script>
setTimeout(() => fetch('/api/colour').then(r => r.json()).then(d => {
  document.body.style.background = d.colour; document.getElementById('state').textContent = 'drawn';
}), 500);
</script></body></html>"""


def respond(request):
    if request.header("Authorization") != TOKEN:
        return Reply(401, {"message": "Unauthorized"})
    if request.path == "/api/colour":
        return Reply(200, {"colour": "rgb(0, 128, 0)"})
    return Reply(200, PAGE.encode(), {"Content-Type": "text/html; charset=utf-8"})


@pytest.mark.slow
def test_header_reaches_every_request_and_the_shot_waits_for_late_data(tmp_path):
    with RecordingServer(respond) as server, Chromium(width=800, height=600) as browser:
        shot = browser.screenshot(f"{server.url}/d/page", tmp_path / "page.png", {"Authorization": TOKEN})
        assert browser.evaluate("document.getElementById('state').textContent") == "drawn"
    paths = [request.path for request in server.requests]
    assert "/d/page" in paths and "/api/colour" in paths
    assert all(request.header("Authorization") == TOKEN for request in server.requests
               if request.path != "/favicon.ico")
    image = Image.open(shot).convert("RGB")
    assert image.size == (800, 600)
    assert image.getpixel((400, 500)) == (0, 128, 0), "the data fetched after load is in the picture"
