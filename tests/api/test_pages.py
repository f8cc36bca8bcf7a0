"""The HTML pages, in-process: gallery cards, anchored pagination, filters, the detail page."""

from __future__ import annotations

import html
import json
import random
import re
import uuid as uuidlib
from urllib.parse import parse_qs, urlsplit

from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import create_engine, event, insert, select

from api.conftest import png_bytes, sha, task
from faafo.store import stats as queries
from faafo.store.models import Fractal

CARD = re.compile(r'<li class="card card-(\w+)" data-uuid="([0-9a-f-]{36})"')


def create(client, n=1, **overrides):
    body = [task(**overrides) for _ in range(n)]
    response = client.post("/v1/fractal", json=body)
    assert response.status_code == 201, response.text
    return [o["uuid"] for o in response.json()["objects"]]


def claim(client, uuid, worker):
    response = client.post("/v1/worker/claim", json={"worker": worker, "uuids": [uuid]})
    assert response.status_code == 200 and response.json()[0]["render"], response.text


def deliver(client, uuid, worker="w-beta", duration=0.5):
    png = png_bytes()
    query = {"checksum": sha(png), "duration": duration, "generated_by": worker}
    response = client.put(
        f"/v1/fractal/{uuid}", params=query, content=png, headers={"content-type": "image/png"}
    )
    assert response.status_code == 200, response.text


def cards(page_html: str) -> list[tuple[str, str]]:
    """(status, uuid) of each card, in page order."""
    return CARD.findall(page_html)


def older_link(page_html: str) -> str:
    found = re.search(r'rel="next" href="([^"]+)"', page_html)
    assert found, "no link to older fractals"
    return html.unescape(found.group(1))


def test_empty_gallery_has_counters_form_and_original_routes(client):
    for path in ("/", "/index", "/index/1"):
        response = client.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
    page = client.get("/").text
    assert "No fractals here yet" in page
    for status in ("queued", "running", "done", "failed"):
        assert f'data-count="{status}">0<' in page
    for name in ("tasks", "width", "height", "iterations", "xa", "xb", "ya", "yb", "kind",
                 "palette", "c_real", "c_imag", "seed", "min_width", "max_yb", "min_tasks"):
        assert f'name="{name}"' in page, name
    assert 'placeholder="random 256 … 1024"' in page
    assert '<dialog class="dialog" id="token-dialog"' in page


def test_every_address_in_the_pages_is_local(client):
    """No CDN, no absolute URLs: behind a TLS proxy http:// URLs would be mixed content."""
    uuid = create(client)[0]
    deliver(client, uuid)
    for path in ("/", f"/fractal/{uuid}/view", "/index/1?status=done", "/docs",
                 f"/fractal/{uuidlib.uuid4()}/view"):
        page = client.get(path).text
        addresses = re.findall(r'(?:src|href|action)="([^"]*)"', page)
        assert addresses
        for address in addresses:
            assert address.startswith(("/", "#", "?")), f"{path}: {address}"
    for asset in ("faafo.css", "api.js", "live.js", "gallery.js", "create.js", "detail.js",
                  "live-page.js", "signin.js", "favicon.svg"):
        response = client.get(f"/static/{asset}")
        assert response.status_code == 200, asset
        assert "http://" not in response.text.replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert "https://" not in response.text


def test_cards_show_size_iterations_duration_worker_and_state(client):
    queued, running, done = create(client, 3, iterations=77)
    claim(client, running, "w-alpha")
    deliver(client, done, worker="w-beta", duration=0.25)
    page = client.get("/").text
    assert {(s, u) for s, u in cards(page)} == {
        ("queued", queued), ("running", running), ("done", done)
    }
    assert f'src="/fractal/{done}/thumbnail"' in page, "cards show the small cached thumbnail"
    assert f'src="/fractal/{done}"' not in page, "never the full image in the grid"
    assert f'src="/fractal/{queued}/thumbnail"' not in page, "no broken image for unfinished tasks"
    assert 'alt="Julia set fractal, faafo palette, 32 by 24 pixels"' in page
    assert "32&thinsp;\u00d7&thinsp;24" in page and "<dd>77</dd>" in page
    assert "<dd>250 ms</dd>" in page and "<dd>w-beta</dd>" in page
    assert "<dd>w-alpha</dd>" in page and "rendering…" in page
    assert 'badge-queued">Queued<' in page and 'badge-running">Rendering<' in page
    assert 'data-count="done">1<' in page and 'data-count="running">1<' in page


def test_newest_first_and_pages_never_overlap(client):
    older = create(client, 30)  # one request: one created_at, ordered by uuid
    newest = create(client)[0]
    first = client.get("/").text
    assert cards(first)[0][1] == newest
    assert len(cards(first)) == 24 and "Page <strong>1</strong> of 2" in first
    second = client.get(older_link(first)).text
    shown = [u for _, u in cards(first)] + [u for _, u in cards(second)]
    assert len(shown) == 31 and set(shown) == set(older) | {newest}
    assert "Page <strong>2</strong> of 2" in second
    within_batch = [u for u in shown if u != newest]
    assert within_batch == sorted(older, reverse=True)


def test_anchored_pages_stay_put_while_tasks_arrive(client):
    create(client, 30)
    first = client.get("/").text
    link = older_link(first)
    assert "at=" in link, "the pager carries the anchor"
    before = cards(client.get(link).text)
    arrived = create(client, 5)
    after_page = client.get(link).text
    assert cards(after_page) == before, "page 2 shows the same fractals"
    assert "5 newer fractals" in after_page
    assert not set(arrived) & {u for _, u in cards(after_page)}
    live_first = cards(client.get("/").text)
    assert {u for _, u in live_first[:5]} == set(arrived), "the unanchored first page is live"


def test_filters_by_status_and_worker(client):
    a, b, c = create(client, 3)
    deliver(client, a, worker="w-one")
    deliver(client, b, worker="w-two")
    claim(client, c, "w-one")
    assert {u for _, u in cards(client.get("/?status=done").text)} == {a, b}
    assert {u for _, u in cards(client.get("/?worker=w-one").text)} == {a, c}
    assert {u for _, u in cards(client.get("/index/1?status=running&worker=w-one").text)} == {c}
    assert {u for _, u in cards(client.get("/?status=done&worker=w-one").text)} == {a}
    assert cards(client.get("/?status=queued&worker=w-one").text) == []
    assert cards(client.get("/?status=failed").text) == []
    page = client.get("/?worker=w-two").text
    assert '<option value="w-two" selected>' in page and '<option value="w-one" >' in page
    assert {u for _, u in cards(client.get("/?status=bogus").text)} == {a, b, c}


def test_page_numbers_past_the_end_and_invalid(client):
    create(client, 3)
    assert "Page <strong>1</strong> of 1" in client.get("/index/99").text
    response = client.get("/index/0")
    assert response.status_code == 422 and response.json()["code"] == 422
    assert client.get("/?at=garbage").status_code == 200, "a bad anchor means: newest"


def test_detail_page_shows_every_field_and_links(client):
    uuid = create(client, c_real=0.25, c_imag=-0.5, batch="b-1")[0]
    claim(client, uuid, "w-beta")
    deliver(client, uuid, worker="w-beta", duration=1.5)
    response = client.get(f"/fractal/{uuid}/view")
    assert response.status_code == 200
    page = response.text
    for label in ("UUID", "Duration", "Dimensions", "Iterations", "Parameters", "Filesize",
                  "Checksum", "Generated by", "Status", "Kind", "Palette", "<i>c</i>", "Seed",
                  "Attempts", "Worker", "Batch", "Created", "Started", "Finished",
                  "Waited in the queue", "Rendering", "Created to finished"):
        assert f'<th scope="row">{label}</th>' in page, label
    record = client.get(f"/v1/fractal/{uuid}").json()
    assert "1.500000 seconds" in page and "32 x 24 pixels" in page
    assert "xa = -2.0<br>xb = 2.0<br>ya = -1.5<br>yb = 1.5" in page
    assert f"{record['size']} bytes" in page and record["checksum"] in page
    assert "0.25 \u2212 0.5i" in page
    assert f'href="/fractal/{uuid}" download="{uuid}.png"' in page
    assert f'href="/v1/fractal/{uuid}"' in page
    assert f'<img src="/fractal/{uuid}" alt="Julia set fractal' in page
    embedded = re.search(r'id="fractal-record">(.*?)</script>', page)
    assert embedded and json.loads(embedded.group(1))["uuid"] == uuid
    assert "data-delete" in page and 'id="delete-dialog"' in page


def test_detail_page_of_unfinished_and_unknown_fractals(client):
    uuid = create(client)[0]
    page = client.get(f"/fractal/{uuid}/view").text
    assert "Queued — waiting for a worker" in page and f'src="/fractal/{uuid}"' not in page
    claim(client, uuid, "w-alpha")
    assert "Rendering on <strong>w-alpha</strong>" in client.get(f"/fractal/{uuid}/view").text
    shouted = client.get(f"/fractal/{uuid.upper()}/view")  # as /v1/fractal/<UUID> finds it
    assert shouted.status_code == 200 and "Rendering on <strong>w-alpha</strong>" in shouted.text
    missing = client.get(f"/fractal/{uuidlib.uuid4()}/view")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/html")
    assert "No such fractal" in missing.text


def test_cards_fragment_is_the_live_first_page(client):
    a, b = create(client, 2)
    deliver(client, a)
    fragment = client.get("/gallery/cards")
    assert fragment.status_code == 200 and fragment.headers["cache-control"] == "no-store"
    assert "<html" not in fragment.text and "data-results" in fragment.text
    assert {u for _, u in cards(fragment.text)} == {a, b}
    assert {u for _, u in cards(client.get("/gallery/cards?status=done").text)} == {a}


def test_names_from_workers_are_escaped(client):
    uuid = create(client)[0]
    deliver(client, uuid, worker="<script>alert(1)</script>")
    for path in ("/", f"/fractal/{uuid}/view"):
        page = client.get(path).text
        assert "<script>alert(1)</script>" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_every_page_in_every_filter_matches_a_plain_sort(client, services):
    """Seeking past ties (tasks of one request share created_at) never skips or repeats a row."""
    rng = random.Random(3)
    for size in (5, 1, 9, 3, 7, 2):
        uuids = create(client, size)
        for uuid in uuids:
            if rng.random() < 0.6:
                deliver(client, uuid, worker=rng.choice(["w-a", "w-b"]))
    with services.database.reading() as session:
        rows = session.execute(
            select(Fractal.uuid, Fractal.created_at, Fractal.status, Fractal.generated_by)
        ).all()
        everything = sorted(rows, key=lambda r: (r.created_at, r.uuid), reverse=True)
        for filters in (queries.GalleryFilters(), queries.GalleryFilters(status="done"),
                        queries.GalleryFilters(status="queued"),
                        queries.GalleryFilters(worker="w-a"),
                        queries.GalleryFilters(status="done", worker="w-b")):
            expected = [
                r.uuid for r in everything
                if (filters.status is None or r.status == filters.status)
                and (filters.worker is None or r.generated_by == filters.worker)
            ]
            anchor = queries.newest(session, filters)
            for per_page in (1, 2, 4, 7):
                shown = []
                for number in range(1, len(expected) // per_page + 3):
                    page = queries.page_from(session, filters, anchor, number, per_page)
                    shown += [f.uuid for f in page]
                assert shown == expected, (filters, per_page)


# -- the API reference: our own page, nothing from a CDN ---------------------------------


def test_docs_page_describes_every_operation_without_any_script(client):
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    document = client.get("/openapi.json").json()
    for path, operations in document["paths"].items():
        for method in operations:
            assert f'{method.upper()}</span> <code>{html.escape(path)}</code>' in page.text, path
    for name in document["components"]["schemas"]:
        assert f'id="schema-{name}"' in page.text, name
    assert 'href="/openapi.json"' in page.text
    assert "<script" not in page.text.replace('<script type="application/json"', ""), (
        "no script: it works wherever the API does"
    )
    assert "width (query)" not in page.text and "results_per_page (query)" in page.text
    assert client.get("/redoc").status_code == 404, "ReDoc loads from a CDN: not served"


# -- private reads: the page that asks for the token ---------------------------------------


def test_private_pages_answer_a_page_that_asks_for_the_token(client, settings):
    uuid = create(client)[0]
    deliver(client, uuid)
    settings.client_token = SecretStr("page-token")
    settings.worker_token = SecretStr("worker-token")
    settings.private_reads = True
    for path in ("/", "/index/1", "/gallery/cards", f"/fractal/{uuid}/view"):
        refused = client.get(path)
        assert refused.status_code == 401 and refused.headers["cache-control"] == "no-store"
        page = refused.text
        assert "This gallery is private" in page and 'id="token-dialog"' in page
        assert "/static/signin.js" in page and '"session": "/v1/session"' in page
        assert uuid not in page and "data-count" not in page, "no data before the token"
    client.post("/v1/session", headers={"Authorization": "Bearer page-token"})
    assert f'data-uuid="{uuid}"' in client.get("/").text


# -- what the gallery says about workers and tasks in hand --------------------------------


def test_tasks_claimed_in_a_bundle_are_claimed_not_rendering(client):
    """A worker claims a bundle's tasks at once and renders them in turn."""
    uuids = create(client, 3)
    bundled_a, bundled_b, alone = uuids
    response = client.post(
        "/v1/worker/claim", json={"worker": "w-bundle", "uuids": [bundled_a, bundled_b]}
    )
    assert response.status_code == 200
    claim(client, alone, "w-solo")
    page = client.get("/").text
    card = {u: page.split(f'data-uuid="{u}"')[1].split("</li>")[0] for u in uuids}
    for uuid in (bundled_a, bundled_b):
        assert 'badge-running">Claimed<' in card[uuid] and "Rendering" not in card[uuid]
        assert "in a bundle of 2" in card[uuid] and "claimed by w-bundle" in card[uuid]
    assert 'badge-running">Rendering<' in card[alone] and "rendering…" in card[alone]
    detail = client.get(f"/fractal/{bundled_a}/view").text
    assert "Claimed by <strong>w-bundle</strong> with 1 other task" in detail
    assert "Rendering on <strong>w-solo</strong>" in client.get(f"/fractal/{alone}/view").text


def test_the_worker_filter_lists_every_worker(client):
    """The live summary shows the 50 latest workers; the filter must offer all of them."""
    uuids = create(client, 50) + create(client, 10)
    names = [f"w-{i:02d}" for i in range(len(uuids))]
    for uuid, name in zip(uuids, names, strict=True):
        deliver(client, uuid, worker=name)
    claim(client, create(client)[0], "w-holding")  # running: named by its claimant only
    page = client.get("/").text
    start = page.index('id="filter-worker"')
    offered = re.findall(r'<option value="([^"]+)"', page[start:page.index("</select>", start)])
    assert offered == sorted([*names, "w-holding"])


def test_one_tab_stop_per_worker_and_last_seen_relative_from_the_first_paint(client):
    for worker in ("w-one", "w-two"):
        for uuid in create(client, 3):
            deliver(client, uuid, worker=worker)
    page = client.get("/").text
    workers = page[page.index("data-workers"):page.index("</section>", page.index("data-workers"))]
    links = re.findall(r"<a [^>]*>", workers)
    reachable = [a for a in links if 'tabindex="-1"' not in a]
    hrefs = sorted(re.search(r'href="([^"]+)"', a).group(1) for a in reachable)
    assert hrefs == ["/?worker=w-one", "/?worker=w-two"], (
        "one link per worker (to its fractals), its thumbnails out of the tab order"
    )
    assert len(links) == 2 + 6, "each worker's three thumbnails still link for the pointer"
    assert workers.count('class="worker-recent" aria-hidden="true"') == 2
    seen = re.findall(
        r'last seen <time datetime="([^"]+)" title="(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC">'
        r"(just now|\d+ s ago)</time>",
        workers,
    )
    assert len(seen) == 2, "relative on the first paint, the absolute time in the title"


def test_an_empty_gallery_has_no_pager_and_a_create_button(client):
    page = client.get("/").text
    assert "No fractals here yet" in page and "Page <strong>" not in page
    assert 'data-create-open aria-controls="create-panel">Create some</button>' in page
    assert "No worker has taken a task yet" not in page, "the API cannot know of idle workers"
    assert "Workers appear here once they take a task" in page
    filtered = client.get("/?status=failed").text
    assert "No fractals match these filters" in filtered
    assert 'href="/">Show all fractals' in filtered


# -- typed /index/N pages on PostgreSQL: the anchor first, then the page ------------------


def test_a_typed_page_is_counted_from_its_own_anchor_while_tasks_arrive(postgres_url, tmp_path):
    """At READ COMMITTED each statement sees new commits: the anchor must come first.

    Before each query of the page a new task is committed by another connection, as
    a busy system does. The rows shown and the anchor the page's links carry must
    still agree: the page is the second 24 of the rows at or older than its anchor.
    """
    from faafo.api.app import create_app
    from faafo.config import ApiSettings, load_settings
    from faafo.store import fractals as store

    settings = load_settings(ApiSettings, {
        "data_dir": tmp_path, "database_url": postgres_url,
        "transport_url": f"memory://{uuidlib.uuid4().hex}", "reconcile_interval": 3600,
        "max_tasks_per_request": 60,
    })
    app = create_app(settings)
    other = create_engine(postgres_url)
    arriving = {"on": False, "left": 8}

    def a_task_arrives(conn, cursor, statement, parameters, context, executemany):
        if not arriving["on"] or arriving["left"] <= 0:
            return
        if statement.lstrip().upper().startswith("SELECT") and "fractals" in statement:
            arriving["left"] -= 1
            with other.begin() as connection:
                connection.execute(insert(Fractal), [{
                    **task(), "uuid": str(uuidlib.uuid4()), "status": "queued", "attempts": 0,
                    "kind": "julia", "palette": "faafo", "created_at": store.utcnow(),
                }])

    try:
        with TestClient(app) as client:
            create(client, 60)
            services = app.state.services
            event.listen(services.database.engine, "before_cursor_execute", a_task_arrives)
            arriving["on"] = True
            page = client.get("/index/2").text
            arriving["on"] = False
            assert arriving["left"] < 8, "tasks arrived while the page was read"
            anchor = queries.Anchor.decode(parse_qs(urlsplit(older_link(page)).query)["at"][0])
            with services.database.reading() as session:
                order = session.execute(
                    select(Fractal.uuid, Fractal.created_at)
                    .order_by(Fractal.created_at.desc(), Fractal.uuid.desc())
                ).all()
            as_of_anchor = [
                r.uuid for r in order if (r.created_at, r.uuid) <= (anchor.created_at, anchor.uuid)
            ]
            assert [u for _, u in cards(page)] == as_of_anchor[24:48]
    finally:
        other.dispose()
