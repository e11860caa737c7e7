"""Every route of kiosk/web/openapi.json fuzzed with hypothesis through Flask's test client: never a 500.

Issue 12, item 7. For each path and method the spec lists, hypothesis draws
path values, query strings (the spec's parameters and random ones, with
non-ASCII digits and huge numbers), a CSRF token (the session's own, none, or
junk), a content type and a body (random bytes, deeply nested or odd JSON,
multipart with and without a boundary). Every answer must be below 500, and
an error must be one line without a traceback. The examples are bounded and
there is no deadline (the tiny model screens some of them); no network.
"""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from kiosk.web.api import OPENAPI_FILE
from tests.web_conftest import (
    PIN,
    csrf_of,
    rig,  # noqa: F401
)

SPEC = json.loads(OPENAPI_FILE.read_text(encoding="utf-8"))
OPERATIONS = sorted((path, method.upper()) for path, item in SPEC["paths"].items() for method in item)
STREAMS = {"/stream.mjpg"}  # endless: only its refusals are read whole

ODD_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "\u00b2",
            "\u0663",
            "9" * 30,
            "-1",
            "0",
            "1e9",
            "",
            " ",
            "%00",
            "last",
            "..",
            "/\t/evil",
            "\udcff".encode("utf-8", "surrogatepass").decode("latin-1"),
        ]
    ),
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
)
ODD_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _params(path: str, method: str) -> list[dict]:
    op = SPEC["paths"][path][method.lower()]
    resolved = []
    for param in op.get("parameters", []):
        if "$ref" in param:
            param = SPEC["components"]["parameters"][param["$ref"].rsplit("/", 1)[1]]
        resolved.append(param)
    return resolved


@st.composite
def requests(draw, path: str, method: str):
    params = _params(path, method)
    url = path
    for name in re.findall(r"\{(\w+)\}", path):
        value = draw(
            st.one_of(
                ODD_TEXT.filter(lambda v: "/" not in v and "?" not in v and "#" not in v),
                st.just("last"),
                st.just("20250101-000000-0000"),
            )
        )
        url = url.replace("{" + name + "}", value or "x")
    query = {p["name"]: draw(ODD_TEXT) for p in params if p["in"] == "query" and draw(st.booleans())}
    query.update(
        draw(
            st.dictionaries(
                st.sampled_from(["limit", "offset", "page", "lang", "next", "paper", "x"]), ODD_TEXT, max_size=3
            )
        )
    )
    token = draw(st.sampled_from(["session", "none", "junk", "unicode"]))
    body_kind = draw(st.sampled_from(["none", "bytes", "json", "nested", "multipart", "no-boundary", "form"]))
    kwargs: dict = {}
    if body_kind == "bytes":
        kwargs = {
            "data": draw(st.binary(max_size=300)),
            "content_type": draw(
                st.sampled_from(
                    [
                        "image/jpeg",
                        "text/plain",
                        "application/octet-stream",
                        "application/json",
                        "multipart/form-data; boundary=z",
                        "application/x-www-form-urlencoded",
                        "x/\u00e9",
                    ]
                )
            ),
        }
    elif body_kind == "json":
        kwargs = {"data": json.dumps(draw(ODD_JSON)), "content_type": "application/json"}
    elif body_kind == "nested":
        depth = draw(st.integers(min_value=50, max_value=50_000))
        kwargs = {"data": draw(st.sampled_from(["[", '{"patient":'])) * depth, "content_type": "application/json"}
    elif body_kind == "multipart":
        field = draw(st.sampled_from(["image", "photo", "age", "csrf_token"]))
        kwargs = {
            "data": {field: (__import__("io").BytesIO(draw(st.binary(max_size=200))), draw(ODD_TEXT) or "f")},
            "content_type": "multipart/form-data",
        }
    elif body_kind == "no-boundary":
        kwargs = {"data": draw(st.binary(max_size=200)), "content_type": "multipart/form-data"}
    elif body_kind == "form":
        kwargs = {
            "data": draw(
                st.dictionaries(
                    st.sampled_from(
                        ["pin", "next", "age", "sex", "body_site", "age_band", "skin_type", "image", "csrf_token", "x"]
                    ),
                    ODD_TEXT,
                    max_size=4,
                )
            ),
            "content_type": "application/x-www-form-urlencoded",
        }
    return url, query, token, kwargs


@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m} {p}" for p, m in OPERATIONS])
def test_no_request_to_any_route_gives_a_500(app, path, method):
    client = app.test_client()
    session_token = csrf_of(client)
    if path in ("/history", "/settings", "/api/screenings") and method == "GET":
        client.post("/pin", data={"pin": PIN, "next": "/history", "csrf_token": session_token})

    @hsettings(
        max_examples=25,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    )
    @given(requests(path, method))
    def check(drawn):
        url, query, token_kind, kwargs = drawn
        token = {"session": session_token, "none": None, "junk": "x" * 43, "unicode": "\u00e9\u00b2"}[token_kind]
        headers = {"X-CSRF-Token": token} if token else {}
        if path in STREAMS:
            headers["Host"] = "evil.example"  # the endless stream is only read when refused
        response = client.open(url, method=method, query_string=query, headers=headers, **kwargs)
        try:
            if path in STREAMS and response.status_code < 400:  # bounded even if the Host check let it through
                assert response.status_code < 500
                return
            assert response.status_code < 500, (
                url,
                query,
                kwargs.get("content_type"),
                response.status_code,
                response.get_data(as_text=True)[:300],
            )
            if response.status_code >= 400 and response.mimetype == "application/json":
                body = response.get_json()
                assert body["status"] == "error" and "\n" not in body["message"]
            assert b"Traceback" not in response.get_data()
        finally:
            response.close()

    check()
