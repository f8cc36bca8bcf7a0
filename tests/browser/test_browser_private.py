"""``--private-reads`` in a real browser: the gallery asks for the token, then shows its images.

A plain ``<img>`` cannot send an ``Authorization`` header; the page trades the
token for an HttpOnly reading-session cookie, so thumbnails, full images and
the live cards load. Its own ``faafo up`` (private reads from the environment,
as an operator would set them), starting empty.
"""

from __future__ import annotations

import pytest

from browser.conftest import DESKTOP, all_images_loaded, faafo_up, screenshot

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips, or fails under FAAFO_REQUIRE_SERVERS, saying why
    expect = None

pytestmark = pytest.mark.slow

# The refused page itself, and the refused token, answer 401/403: Chromium logs each.
AUTH_ANSWERS = ("status of 401", "status of 403")


@pytest.fixture(scope="module")
def server(browser, tmp_path_factory):
    with faafo_up(tmp_path_factory.mktemp("faafo-private"), {"FAAFO_PRIVATE_READS": "1"}) as up:
        yield up


def small_tasks(n: int) -> list[dict]:
    palettes = ["ultra", "fire", "ocean", "faafo"]
    return [{"width": 200, "height": 150, "iterations": 200, "xa": -1.6, "xb": 1.6, "ya": -1.2,
             "yb": 1.2, "c_real": -0.8 + 0.05 * i, "c_imag": 0.156, "palette": palettes[i % 4]}
            for i in range(n)]


def test_the_private_gallery_asks_for_the_token_then_shows_its_images(page, console, server):
    assert server.api.get("/v1/stats").status_code == 200
    refused = page.goto("/")
    assert refused is not None and refused.status == 401
    dialog = page.locator("#token-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#token-input")).to_be_focused()
    expect(page.get_by_role("heading", name="This gallery is private")).to_be_visible()
    expect(page.locator("[data-count]")).to_have_count(0)
    screenshot(page, "private-token")

    page.fill("#token-input", "not-the-token")
    page.keyboard.press("Enter")
    expect(dialog).to_contain_text("That token was refused")
    page.fill("#token-input", server.token)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Fractal gallery")).to_be_visible()
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["faafo_reader"]["httpOnly"] and cookies["faafo_reader"]["sameSite"] == "Strict"
    assert server.token not in cookies["faafo_reader"]["value"]

    # An empty gallery: no pager, and a button that opens the form.
    expect(page.locator("[data-grid-empty]")).to_be_visible()
    expect(page.locator(".pager")).to_have_count(0)
    screenshot(page, "gallery-empty")
    page.get_by_role("button", name="Create some").click()
    expect(page.locator("#create-panel")).to_be_visible()
    expect(page.locator("#create-tasks")).to_be_focused()
    page.get_by_role("button", name="Create fractals").click()

    # Fractals made meanwhile arrive live, and their thumbnails load through the cookie.
    created = server.create(small_tasks(6))
    server.wait_done([f["uuid"] for f in created])
    expect(page.locator('[data-grid] li[data-status="done"]')).to_have_count(6, timeout=30_000)
    all_images_loaded(page)
    expect(page.locator(".worker-recent img").first).to_be_visible()
    screenshot(page, "gallery-private")

    page.locator("[data-grid] li a").first.click()
    expect(page.locator("[data-explore-image]")).to_be_visible()
    all_images_loaded(page)
    assert console.unexpected(*AUTH_ANSWERS) == []
    console.errors.clear()


def test_a_saved_token_opens_the_session_by_itself(browser, server):
    context = browser.new_context(viewport=DESKTOP, base_url=server.url)
    try:
        # Saved once, as after an earlier visit (an init script runs again on every load).
        context.add_init_script(
            "if (!sessionStorage.getItem('seeded')) {"
            f" localStorage.setItem('faafo.token', {server.token!r});"
            " sessionStorage.setItem('seeded', '1'); }"
        )
        page = context.new_page()
        page.goto("/")
        expect(page.get_by_role("heading", name="Fractal gallery")).to_be_visible()
        expect(page.locator("#token-dialog")).to_be_hidden()
        server.wait_done([f["uuid"] for f in server.create(small_tasks(1))])
        page.reload()
        all_images_loaded(page)

        # The session ends (12 hours later, or the cookie is spoilt) while the page stays
        # open: the live cards renew it from the saved token, and new images still load.
        context.add_cookies([{"name": "faafo_reader", "value": "1.spoilt", "url": server.url}])
        shown = page.locator('[data-grid] li[data-status="done"]').count()
        (late,) = server.create(small_tasks(1))
        server.wait_done([late["uuid"]])
        expect(page.locator(f'[data-uuid="{late["uuid"]}"] img')).to_be_visible(timeout=20_000)
        assert page.locator('[data-grid] li[data-status="done"]').count() == shown + 1
        all_images_loaded(page)

        page.get_by_role("button", name="Forget the saved API token").click()
        page.wait_for_function("!localStorage.getItem('faafo.token')")
        for _ in range(100):  # the DELETE /v1/session answer removes the HttpOnly cookie
            if "faafo_reader" not in {c["name"] for c in context.cookies()}:
                break
            page.wait_for_timeout(100)
        assert "faafo_reader" not in {c["name"] for c in context.cookies()}
        page.reload()
        expect(page.get_by_role("heading", name="This gallery is private")).to_be_visible()
        expect(page.locator("#token-dialog")).to_contain_text("enter the API's client token")
    finally:
        context.close()
