"""headerTags (dd-trace's DD_TRACE_HEADER_TAGS) is opt-in: named request and response headers
become span tags; nothing else does, so Authorization and Cookie never leave the proxy."""

from __future__ import annotations

import json

from clients import http_get
from harness import DD_CONFIG, Route


def test_named_headers_become_tags_and_nothing_else(traefik_factory) -> None:
    t = traefik_factory(
        middlewares={
            "tagged": {**DD_CONFIG, "mode": "log", "headerTags": ["X-Request-Id:http.request_id", "content-type"]},
            "plain": {**DD_CONFIG, "mode": "log"},
        },
        routes=[Route("tagged", ["tagged"]), Route("plain", ["plain"])],
    )
    secret = {"Authorization": "Bearer s3cr3t", "Cookie": "session=s3cr3t", "X-Request-Id": "req-42"}
    status, _, _ = http_get(t.port("tagged"), "/tagged/1?token=s3cr3t", headers={"Host": "a.test", **secret})
    assert status == 200
    status, _, _ = http_get(t.port("plain"), "/plain/1", headers={"Host": "a.test", **secret})
    assert status == 200
    recs = {r.data["RequestPath"]: r for r in t.wait_records(["/tagged/1", "/plain/1"])}
    # The request had no Content-Type; the backend's response did.
    assert recs["/tagged/1"].data["dd.header_tags"] == {
        "http.request_id": "req-42",
        "http.response.headers.content-type": "text/plain",
    }
    assert "dd.header_tags" not in recs["/plain/1"].data
    for r in recs.values():
        assert "s3cr3t" not in r.text, f"a secret left the proxy: {r.text}"
        assert "s3cr3t" not in json.dumps(r.data)
