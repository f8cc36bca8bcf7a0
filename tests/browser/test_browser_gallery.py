"""The gallery in a real browser against a real ``faafo up``: create, watch, explore, delete."""

from __future__ import annotations

import json
import re

import pytest

from browser.conftest import all_images_loaded, screenshot
from support.processes import wait_until

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips, or fails under FAAFO_REQUIRE_SERVERS, saying why
    expect = None

pytestmark = pytest.mark.slow

# 401/403 answers are part of the token flow; Chromium logs each as a failed resource.
AUTH_ANSWERS = ("status of 401", "status of 403")


def demo_tasks() -> list[dict]:
    """A small, colourful set: every palette, both kinds, Julia constants worth looking at."""
    constants = [(-0.8, 0.156), (0.285, 0.01), (-0.4, 0.6), (-0.70176, -0.3842), (0.355, 0.355),
                 (-0.835, -0.2321), (-0.1, 0.651), (0.37, 0.1)]
    palettes = ["ultra", "fire", "ocean", "faafo"]
    tasks = [
        {"width": 400, "height": 300, "iterations": 300, "xa": -1.6, "xb": 1.6, "ya": -1.2,
         "yb": 1.2, "kind": "julia", "palette": palettes[i % 4], "c_real": cr, "c_imag": ci}
        for i, (cr, ci) in enumerate(constants)
    ]
    for palette in ("fire", "ultra"):
        tasks.append({"width": 400, "height": 300, "iterations": 200, "xa": -2.4, "xb": 0.9,
                      "ya": -1.24, "yb": 1.24, "kind": "mandelbrot", "palette": palette})
    return tasks


@pytest.fixture(scope="module")
def demo(server) -> list[dict]:
    created = server.create(demo_tasks())
    server.wait_done([f["uuid"] for f in created])
    return created


def done_cards(page) -> int:  # type: ignore[no-untyped-def]
    return page.locator('[data-grid] li[data-status="done"]').count()


def test_create_from_the_form_asks_for_the_token_and_cards_appear_live(page, console, server, demo):
    server.wait_done([f["uuid"] for f in demo])
    before = server.api.get("/v1/stats").json()["counts"]["done"]
    page.goto("/")
    expect(page.locator('[data-count="done"]')).to_have_text(str(before))
    assert done_cards(page) == min(before, 24)

    page.get_by_role("button", name="Create fractals").click()
    expect(page.locator("#create-panel")).to_be_visible()
    expect(page.locator("#create-tasks")).to_be_focused()
    page.fill("#create-tasks", "3")
    page.fill("#create-width", "240")
    page.fill("#create-height", "180")
    page.fill("#create-iterations", "250")
    for name, value in (("xa", "-1.6"), ("xb", "1.6"), ("ya", "-1.2"), ("yb", "1.2")):
        page.fill(f"#create-{name}", value)  # c stays empty: chosen from a random seed
    page.select_option("#create-palette", "ocean")
    screenshot(page, "create-form")
    page.get_by_role("button", name="Create", exact=True).click()

    # The API wants a token: the page asks for it instead of failing silently.
    dialog = page.locator("#token-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#token-input")).to_be_focused()
    expect(dialog).to_contain_text("needs a client token")
    screenshot(page, "token-dialog")
    page.fill("#token-input", server.token)
    page.get_by_role("button", name="Use this token").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("[data-create-status]")).to_contain_text("Created 3 fractals")
    assert page.evaluate("localStorage.getItem('faafo.token')") == server.token

    # Without a reload: the three cards arrive, then turn into images as the worker finishes.
    new_cards = page.locator('[data-grid] li[data-status="done"]').filter(
        has_text=re.compile("240\\s*\u00d7\\s*180")
    )
    expect(new_cards).to_have_count(3, timeout=90_000)
    expect(page.locator('[data-count="done"]')).to_have_text(str(before + 3), timeout=10_000)
    expect(new_cards.first).to_contain_text("250")  # iterations
    worker = server.record(new_cards.first.get_attribute("data-uuid"))["generated_by"]
    expect(new_cards.first).to_contain_text(worker)
    expect(page.locator("[data-workers]")).to_contain_text(worker)
    all_images_loaded(page)
    page.locator("#create-panel [type=reset]").click()
    page.get_by_role("button", name="Create fractals").click()  # close the panel
    page.wait_for_timeout(1000)  # let the arrival highlight fade
    screenshot(page, "gallery")
    assert console.unexpected(*AUTH_ANSWERS) == []
    console.errors.clear()


def test_filters_pages_and_a_phone_sized_screen(page, server, demo, signed_in):
    page.goto("/?status=done")
    expect(page.locator("#filter-status")).to_have_value("done")
    cards = page.locator("[data-grid] li")
    statuses = cards.evaluate_all("cards => cards.map(c => c.dataset.status)")
    assert statuses and set(statuses) == {"done"}
    page.select_option("#filter-status", "failed")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("[data-grid-empty]")).to_be_visible()
    worker = server.record(demo[0]["uuid"])["generated_by"]
    page.goto("/")
    page.select_option("#filter-worker", worker)
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"worker="))
    assert page.locator("[data-grid] li").count() >= len(demo)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/index/1")
    all_images_loaded(page)
    overflow = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    assert not overflow, "no sideways scrolling on a phone"
    screenshot(page, "gallery-phone", full_page=False)


def test_keyboard_reaches_the_cards_with_a_visible_focus(page, demo):
    page.goto("/")
    page.keyboard.press("Tab")
    expect(page.locator(".skip")).to_be_focused()
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.closest('[data-grid]') !== null"):
            break
    focused = page.locator(":focus")
    expect(focused).to_have_attribute("href", re.compile(r"^/fractal/[0-9a-f-]{36}/view$"))
    outline = focused.evaluate("a => getComputedStyle(a, '::after').outlineStyle")
    assert outline == "solid", "the focused card shows a focus ring"
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/fractal/[0-9a-f-]{36}/view$"))


def test_detail_page_shows_every_field_and_zooms_where_clicked(page, server, demo, signed_in):
    parent = server.record(demo[0]["uuid"])
    page.goto(f"/fractal/{parent['uuid']}/view")
    for label in ("UUID", "Duration", "Dimensions", "Iterations", "Parameters", "Filesize",
                  "Checksum", "Generated by", "Status", "Seed", "Attempts", "Started", "Finished"):
        expect(page.locator("th", has_text=label).first).to_be_visible()
    expect(page.locator("table").first).to_contain_text(parent["checksum"])
    expect(page.get_by_role("link", name=re.compile("Download PNG"))).to_have_attribute(
        "href", f"/fractal/{parent['uuid']}"
    )
    expect(page.get_by_role("link", name="JSON record")).to_have_attribute(
        "href", f"/v1/fractal/{parent['uuid']}"
    )
    all_images_loaded(page)
    screenshot(page, "detail")

    # Click at 25% across, 75% down: a 4x zoom centred there, same c and kind.
    image = page.locator("[data-explore-image]")
    box = image.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.75)
    page.wait_for_url(re.compile(r"/fractal/(?!" + parent["uuid"] + r")[0-9a-f-]{36}/view$"))
    child_uuid = page.url.rsplit("/", 2)[-2]
    expect(page.locator("[data-explore-image]")).to_be_visible(timeout=90_000)
    all_images_loaded(page)
    child = server.record(child_uuid)
    assert child["status"] == "done"
    assert (child["kind"], child["c_real"], child["c_imag"]) == (
        parent["kind"], parent["c_real"], parent["c_imag"]
    )
    width, height = parent["xb"] - parent["xa"], parent["yb"] - parent["ya"]
    assert child["xb"] - child["xa"] == pytest.approx(width / 4)
    assert child["yb"] - child["ya"] == pytest.approx(height / 4)
    centre = ((child["xa"] + child["xb"]) / 2, (child["ya"] + child["yb"]) / 2)
    expected = (parent["xa"] + 0.25 * width, parent["ya"] + 0.75 * height)
    assert centre == pytest.approx(expected, abs=width / 100)

    # The keyboard does the same: focus the image, move the marker right, press Enter.
    page.select_option("#zoom", "2")
    page.locator("[data-explore-target]").focus()
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    expect(page.locator("[data-explore-coords]")).to_contain_text("Marker at")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/fractal/(?!" + child_uuid + r")[0-9a-f-]{36}/view$"))
    grandchild = server.record(page.url.rsplit("/", 2)[-2])
    child_width = child["xb"] - child["xa"]
    assert grandchild["xb"] - grandchild["xa"] == pytest.approx(child_width / 2)
    assert (grandchild["xa"] + grandchild["xb"]) / 2 == pytest.approx(
        child["xa"] + 0.6 * child_width
    )
    expect(page.locator("[data-explore-image]")).to_be_visible(timeout=90_000)


def test_delete_asks_for_confirmation(page, server, signed_in):
    (victim,) = server.create([{"width": 120, "height": 90, "iterations": 64, "xa": -2, "xb": 2,
                                "ya": -1.5, "yb": 1.5}])
    server.wait_done([victim["uuid"]])
    page.goto(f"/fractal/{victim['uuid']}/view")
    page.get_by_role("button", name="Delete…").click()
    dialog = page.locator("#delete-dialog")
    expect(dialog).to_be_visible()
    expect(page.get_by_role("button", name="Keep it")).to_be_focused()
    page.get_by_role("button", name="Keep it").click()
    expect(dialog).to_be_hidden()
    assert server.api.get(f"/v1/fractal/{victim['uuid']}").status_code == 200

    page.get_by_role("button", name="Delete…").click()
    page.get_by_role("button", name="Delete", exact=True).click()
    page.wait_for_url(re.compile(r"/$"))
    expect(page.locator(".flash")).to_contain_text(f"Deleted fractal {victim['uuid']}")
    assert server.api.get(f"/v1/fractal/{victim['uuid']}").status_code == 404
    expect(page.locator(f'[data-uuid="{victim["uuid"]}"]')).to_have_count(0)


def test_a_refused_token_asks_again_and_cancelling_says_so(context, page, console, server):
    context.add_init_script("localStorage.setItem('faafo.token', 'not-the-token')")
    page.goto("/")
    page.get_by_role("button", name="Create fractals").click()
    page.fill("#create-tasks", "1")
    page.fill("#create-width", "64")
    page.fill("#create-height", "64")
    page.get_by_role("button", name="Create", exact=True).click()
    dialog = page.locator("#token-dialog")
    expect(dialog).to_contain_text("The saved token was refused")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    status = page.locator("[data-create-status]")
    expect(status).to_contain_text("Not created")
    expect(status).to_contain_text("needs an API token")

    page.get_by_role("button", name="Create", exact=True).click()
    page.fill("#token-input", server.token)
    page.keyboard.press("Enter")
    expect(status).to_contain_text("Created 1 fractal")
    assert page.evaluate("localStorage.getItem('faafo.token')") == server.token
    expect(page.locator("[data-forget-token]")).to_be_visible()
    assert console.unexpected(*AUTH_ANSWERS) == []
    console.errors.clear()


def test_live_stats_match_the_api(page, server, demo):
    wait_until(lambda: server.api.get("/v1/stats").json()["backlog"]["tasks"] == 0, 90,
               message="an idle system")
    page.goto("/")
    stats = server.api.get("/v1/stats").json()
    for status, n in stats["counts"].items():
        expect(page.locator(f'[data-count="{status}"]')).to_have_text(str(n))
    expect(page.locator('[data-stat="queue_depth"]')).to_have_text(re.compile(r"^\d+$"))
    for worker in stats["workers"]:
        expect(page.locator("[data-workers]")).to_contain_text(worker["name"])
    assert json.loads(page.locator("#faafo-paths").text_content())["stats"] == "/v1/stats"


# -- live updates: bugs are reported, the worker summary really updates --------------------


def test_a_bug_in_the_live_updates_reaches_the_console(page, console, demo):
    """A broken stats document makes the redraw throw: that must not pass silently."""
    page.route(
        "**/v1/stats",
        lambda route: route.fulfill(status=200, content_type="application/json", body="{}"),
    )
    with page.expect_console_message(
        lambda m: m.type == "error" and "live update failed: TypeError" in m.text, timeout=20_000
    ):
        page.goto("/")
    expect(page.locator("[data-live-stats]")).to_have_class(re.compile("live-stale"))
    console.errors.clear()


def worker_facts(page, name: str):  # type: ignore[no-untyped-def]
    return page.locator("[data-workers] li.worker").filter(has_text=name).locator(".worker-facts")


def test_the_worker_summary_updates_without_a_reload(page, server, demo):
    page.goto("/")
    worker = server.record(demo[0]["uuid"])["generated_by"]
    page.evaluate("window.__same_page = true")
    before = int(re.search(r"(\d+) done", worker_facts(page, worker).inner_text()).group(1))
    created = server.create([{"width": 96, "height": 72, "iterations": 64, "xa": -2, "xb": 2,
                               "ya": -1.5, "yb": 1.5} for _ in range(2)])
    server.wait_done([f["uuid"] for f in created])
    expect(worker_facts(page, worker)).to_contain_text(f"{before + 2} done", timeout=20_000)
    expect(worker_facts(page, worker).locator("time")).to_have_attribute(
        "title", re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$")
    )
    assert page.evaluate("window.__same_page === true"), "updated in place, not reloaded"


def test_the_not_found_page_keeps_its_counters_live(page, console, server, demo):
    page.goto("/fractal/00000000-0000-4000-8000-000000000000/view")
    expect(page.get_by_role("heading", name="No such fractal")).to_be_visible()
    done = server.api.get("/v1/stats").json()["counts"]["done"]
    expect(page.locator('[data-count="done"]')).to_have_text(str(done))
    (extra,) = server.create([{"width": 64, "height": 48, "iterations": 64, "xa": -2, "xb": 2,
                               "ya": -1.5, "yb": 1.5}])
    server.wait_done([extra["uuid"]])
    expect(page.locator('[data-count="done"]')).to_have_text(str(done + 1), timeout=20_000)
    assert console.unexpected("status of 404") == [], "the page itself answers 404"
    console.errors.clear()


# -- the create form ------------------------------------------------------------------------


def test_an_empty_form_makes_random_tasks_within_the_cli_ranges(page, server, signed_in):
    from faafo.client.random_tasks import INTEGER_PARAMETERS, RANDOM_RANGES, TASK_COUNT_RANGE

    page.goto("/")
    page.get_by_role("button", name="Create fractals").click()
    with page.expect_response(
        lambda r: r.url.endswith("/v1/fractal") and r.request.method == "POST"
    ) as answer:
        page.get_by_role("button", name="Create", exact=True).click()
    assert answer.value.status == 201
    tasks = answer.value.request.post_data_json
    try:
        low, high = TASK_COUNT_RANGE
        assert low <= len(tasks) <= high
        assert len({t["batch"] for t in tasks}) == 1, "one batch for the request"
        for t in tasks:
            for name, bounds in RANDOM_RANGES.items():
                assert min(bounds) <= t[name] <= max(bounds), (name, t[name])
                if name in INTEGER_PARAMETERS:
                    assert isinstance(t[name], int), name
            assert "c_real" not in t and "seed" not in t, "c comes from the API's random seed"
        assert len({(t["width"], t["xa"]) for t in tasks}) == len(tasks), "each task its own"
        expect(page.locator("[data-create-status]")).to_contain_text(f"Created {len(tasks)}")
    finally:
        for created in answer.value.json()["objects"]:  # spare the worker the big renders
            server.api.delete(f"/v1/fractal/{created['uuid']}")


def test_the_form_enforces_the_task_count_limit(page, signed_in):
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.goto("/")
    page.get_by_role("button", name="Create fractals").click()
    limit = page.locator("#create-tasks").get_attribute("max")
    assert limit == "10000"
    page.fill("#create-tasks", str(int(limit) + 1))
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.locator("[data-create-status]")).to_have_text(f"Number of tasks: at most {limit}")
    expect(page.locator("#create-tasks")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#create-tasks")).to_be_focused()
    page.locator(".ranges > summary").click()
    page.fill("#create-max_tasks", "20000")
    page.fill("#create-tasks", "")
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.locator("[data-create-status]")).to_have_text(f"Max tasks: at most {limit}")
    assert posts == [], "nothing was sent"


def test_delete_asks_for_the_token_when_none_is_saved(page, console, server):
    (victim,) = server.create([{"width": 80, "height": 60, "iterations": 64, "xa": -2, "xb": 2,
                                "ya": -1.5, "yb": 1.5}])
    server.wait_done([victim["uuid"]])
    page.goto(f"/fractal/{victim['uuid']}/view")
    assert page.evaluate("localStorage.getItem('faafo.token')") is None
    page.get_by_role("button", name="Delete…").click()
    page.get_by_role("button", name="Delete", exact=True).click()
    dialog = page.locator("#token-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("needs a client token")
    assert server.api.get(f"/v1/fractal/{victim['uuid']}").status_code == 200, "not yet"
    page.fill("#token-input", server.token)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/$"))
    expect(page.locator(".flash")).to_contain_text(f"Deleted fractal {victim['uuid']}")
    assert server.api.get(f"/v1/fractal/{victim['uuid']}").status_code == 404
    assert console.unexpected(*AUTH_ANSWERS) == []
    console.errors.clear()


# -- what the page looks like ------------------------------------------------------------------


def luminance(rgb: str) -> float:
    channels = [int(c) / 255 for c in re.findall(r"\d+", rgb)[:3]]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    light, dark = sorted((luminance(a), luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_form_fields_have_visible_edges(page, demo):
    """WCAG 1.4.11: a field's border needs 3:1 against the field and what surrounds it."""
    page.goto("/")
    page.get_by_role("button", name="Create fractals").click()
    for selector in ("#create-width", "#create-kind", "#filter-status"):
        colours = page.locator(selector).evaluate(
            """(el) => {
                const own = getComputedStyle(el);
                let around = el.parentElement;
                while (getComputedStyle(around).backgroundColor === "rgba(0, 0, 0, 0)") {
                    around = around.parentElement;
                }
                return [own.borderTopColor, own.backgroundColor,
                        getComputedStyle(around).backgroundColor];
            }"""
        )
        border, inside, outside = colours
        assert contrast(border, inside) >= 3, (selector, colours)
        assert contrast(border, outside) >= 3, (selector, colours)


def test_card_titles_keep_the_dimensions_on_one_line(page, server, demo):
    (wide,) = server.create([{"width": 1600, "height": 1200, "iterations": 16, "xa": -2, "xb": 2,
                              "ya": -1.5, "yb": 1.5, "kind": "mandelbrot", "palette": "ultra"}])
    server.wait_done([wide["uuid"]])
    dims = page.locator(f'[data-uuid="{wide["uuid"]}"] .dims')
    for width in (1440, 1280, 1180, 1100, 1000, 860, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto("/")
        expect(dims).to_have_text(re.compile("1600\\s*\u00d7\\s*1200"))
        lines = dims.evaluate("(el) => el.getClientRects().length")
        assert lines == 1, f"at {width} px the dimensions break over {lines} lines"


def test_one_tab_stop_per_worker_before_the_cards(page, server, demo):
    page.goto("/")
    workers = server.api.get("/v1/stats").json()["workers"]
    in_summary = 0
    page.keyboard.press("Tab")
    for _ in range(60):
        page.keyboard.press("Tab")
        where = page.evaluate(
            "(() => { const a = document.activeElement; return a.closest('[data-grid]')"
            " ? 'grid' : a.closest('[data-workers]') ? 'w' : ''; })()"
        )
        if where == "grid":
            break
        in_summary += where == "w"
    assert where == "grid"
    assert in_summary == len(workers), "one stop per worker, not one per thumbnail"


def test_the_phone_shows_cards_at_once_and_folds_the_rest(page, server, demo):
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/")
    first = page.locator("[data-grid] li").first.bounding_box()
    assert first is not None and first["y"] < 360, f"the first card starts at {first['y']} px"
    expect(page.locator("#filter-status")).to_be_hidden()
    expect(page.locator("[data-workers]")).to_be_hidden()
    page.locator(".fold-workers > summary").click()
    expect(page.locator("[data-workers]")).to_be_visible()
    worker = server.record(demo[0]["uuid"])["generated_by"]
    expect(page.locator("[data-workers]")).to_contain_text(worker)
    page.locator(".fold-filters > summary").click()
    expect(page.locator("#filter-status")).to_be_visible()
    overflow = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    assert not overflow, "no sideways scrolling on a phone"
    screenshot(page, "gallery-phone-open", full_page=False)


def test_the_zoom_frame_follows_the_pointer(page, server, demo, signed_in):
    page.goto(f"/fractal/{demo[0]['uuid']}/view")
    image = page.locator("[data-explore-image]")
    frame = page.locator("[data-explore-frame]")
    expect(image).to_be_visible()
    box = image.bounding_box()
    assert box is not None
    expect(frame).to_be_hidden()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.6)
    expect(frame).to_be_visible()
    seen = frame.bounding_box()
    assert seen is not None
    assert seen["width"] == pytest.approx(box["width"] / 4, abs=3), "4x: a quarter of the width"
    centre = (seen["x"] + seen["width"] / 2, seen["y"] + seen["height"] / 2)
    assert centre == pytest.approx((box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.6),
                                   abs=3)
    page.select_option("#zoom", "16")
    assert frame.bounding_box()["width"] == pytest.approx(box["width"] / 16, abs=3)
    title = page.locator("h1#title").bounding_box()
    assert title is not None and title["y"] < box["y"], "the title comes first"
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.locator("h1#title").bounding_box()["y"] < image.bounding_box()["y"]
    screenshot(page, "detail-phone", full_page=False)


def test_the_api_reference_is_served_by_the_api_itself(page, server):
    outside: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(server.url) else outside.append(r.url))
    page.goto("/docs")
    expect(page.get_by_role("heading", name=re.compile("REST API"))).to_be_visible()
    expect(page.locator("#post-v1-fractal")).to_contain_text("Create one task")
    page.get_by_role("link", name=re.compile("TaskCreate")).first.click()
    expect(page.locator("#schema-TaskCreate")).to_be_in_viewport()
    assert outside == [], "nothing from any other host"
    screenshot(page, "api-docs", full_page=False)
