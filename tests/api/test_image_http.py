"""GET /fractal/U and its thumbnail speak HTTP properly: HEAD, If-None-Match, Cache-Control."""

from __future__ import annotations

import httpx
import pytest

from api.conftest import png_bytes, sha, task


def done_fractal(client, width: int = 32, height: int = 24) -> tuple[str, bytes]:
    uuid = client.post("/v1/fractal", json=task(width=width, height=height)).json()["uuid"]
    png = png_bytes(width, height)
    query = {"checksum": sha(png), "duration": 0.5, "generated_by": "tester"}
    response = client.put(
        f"/v1/fractal/{uuid}", params=query, content=png, headers={"content-type": "image/png"}
    )
    assert response.json()["result"] == "stored"
    return uuid, png


@pytest.mark.parametrize("suffix", ["", "/thumbnail"])
def test_head_answers_the_headers_of_get_without_a_body(client, suffix):
    uuid, _ = done_fractal(client, 400, 300)  # big enough for a thumbnail of its own
    got = client.get(f"/fractal/{uuid}{suffix}")
    head = client.head(f"/fractal/{uuid}{suffix}")
    assert got.status_code == head.status_code == 200
    assert head.content == b""
    for name in ("content-type", "content-length", "etag", "cache-control"):
        assert head.headers[name] == got.headers[name], name
    assert int(head.headers["content-length"]) == len(got.content)


def test_head_of_a_pending_or_unknown_fractal_is_404(client):
    uuid = client.post("/v1/fractal", json=task()).json()["uuid"]
    assert client.head(f"/fractal/{uuid}").status_code == 404
    assert client.head(f"/fractal/{uuid}/thumbnail").status_code == 404
    assert client.head("/fractal/00000000-0000-4000-8000-000000000000").status_code == 404


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        ("{etag}", True),
        ("*", True),
        (" * ", True),
        ("W/{etag}", True),
        ('"other", {etag}', True),
        ('"other",W/{etag} , "third"', True),
        ('"other"', False),
        ('W/"other", "more"', False),
        ("{bare}", False),  # an unquoted tag is no entity tag
        ('"a,b", {etag}', True),  # a comma inside a tag does not split it
        ("", False),
    ],
)
def test_if_none_match_lists_star_and_weak_tags(client, header, matches):
    uuid, png = done_fractal(client)
    etag = client.get(f"/fractal/{uuid}").headers["etag"]
    value = header.format(etag=etag, bare=etag.strip('"'))
    for method in ("GET", "HEAD"):
        response = client.request(method, f"/fractal/{uuid}", headers={"if-none-match": value})
        assert response.status_code == (304 if matches else 200), (method, value)
        assert response.headers["etag"] == etag
        if matches:
            assert response.content == b""
        elif method == "GET":
            assert response.content == png


def test_if_none_match_on_thumbnails(client):
    uuid, _ = done_fractal(client, 400, 300)
    etag = client.get(f"/fractal/{uuid}/thumbnail").headers["etag"]
    assert etag.startswith('"t-')
    weak = client.get(f"/fractal/{uuid}/thumbnail", headers={"if-none-match": f'"x", W/{etag}'})
    assert weak.status_code == 304
    star = client.head(f"/fractal/{uuid}/thumbnail", headers={"if-none-match": "*"})
    assert star.status_code == 304


def test_etag_matching_rules():
    from faafo.api.routes.fractals import etag_matches

    assert etag_matches('W/"abc"', '"abc"')
    assert etag_matches('"x", "abc"', '"abc"')
    assert not etag_matches('"abcd"', '"abc"')
    assert not etag_matches(None, '"abc"')
    assert not etag_matches("abc", '"abc"')


@pytest.mark.parametrize("private", [False, True])
def test_cache_control_is_private_when_reads_are(client, services, private):
    uuid, _ = done_fractal(client, 400, 300)
    services.settings.private_reads = private
    expected = "private, max-age=86400" if private else "public, max-age=86400"
    for path in (f"/fractal/{uuid}", f"/fractal/{uuid}/thumbnail"):
        for method in ("GET", "HEAD"):
            response = client.request(method, path)
            assert response.headers["cache-control"] == expected, (path, method)
        etag = client.get(path).headers["etag"]
        unchanged = client.get(path, headers={"if-none-match": etag})
        assert unchanged.status_code == 304 and unchanged.headers["cache-control"] == expected


def test_head_over_a_real_server(tmp_path):
    """uvicorn, not only the test client, answers HEAD with the length and no body."""
    from support.processes import start_api

    service, _port, url = start_api("api-head", tmp_path)
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            uuid, png = done_fractal(client)
            head = client.head(f"/fractal/{uuid}")
            assert head.status_code == 200 and head.content == b""
            assert head.headers["content-length"] == str(len(png))
            again = client.get(f"/fractal/{uuid}")  # the connection is still usable
            assert again.content == png
    finally:
        service.stop()
