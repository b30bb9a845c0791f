"""The web portal's files: served by the gateway with their security headers, every module a page imports ships
with the package, and nothing is loaded from another origin."""

import re
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from kubevision.gateway import portal

IMPORT = re.compile(r"""(?:from|import)\s+["']([^"']+)["']""")


def client() -> TestClient:
    app = FastAPI()
    portal.mount(app)
    return TestClient(app)


def test_the_gateway_serves_the_portal_with_a_strict_content_policy():
    http = client()
    home = http.get("/", follow_redirects=False)
    assert (home.status_code, home.headers["location"]) == (307, "/portal/")
    page = http.get("/portal/")
    assert page.status_code == 200 and '<script type="module" src="js/app.js">' in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert page.headers["x-content-type-options"] == "nosniff"
    script = http.get("/portal/js/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert http.get("/portal/js/missing.js").status_code == 404


def test_every_imported_module_ships_and_none_comes_from_elsewhere():
    modules = sorted(portal.ASSETS.rglob("*.js"))
    assert len(modules) >= 10
    for module in modules:
        for target in IMPORT.findall(module.read_text()):
            assert target.startswith("."), f"{module.name} imports {target}: only the package's own files"
            assert (module.parent / target).resolve().is_file(), f"{module.name} imports {target}, which is missing"
    index = (portal.ASSETS / "index.html").read_text()
    for reference in re.findall(r'(?:src|href)="([^"#]+)"', index):
        assert reference.startswith("data:") or (portal.ASSETS / reference).is_file(), reference


def test_the_docs_show_every_screen_from_a_committed_screenshot():
    docs = Path(__file__).resolve().parents[2] / "docs"
    shown = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (docs / "portal.md").read_text())
    assert len(shown) == 13
    for picture in shown:
        assert (docs / picture).is_file(), picture
