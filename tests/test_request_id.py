"""Every request carries an id: passed through, or generated; returned; seen by the app."""

import re
import uuid


def test_incoming_request_id_is_passed_through(containers, fixture_image):
    c = containers.run(image=fixture_image["image"])
    c.wait_http("/")
    given = f"trace-{uuid.uuid4()}"
    resp = c.request("/whoami", headers={"X-Request-ID": given})
    assert resp.headers["x-request-id"] == given
    assert resp.json()["request_id"] == given


def test_missing_request_id_is_generated_and_shared_with_the_app(containers, fixture_image):
    c = containers.run(image=fixture_image["image"])
    c.wait_http("/")
    first, second = c.request("/whoami"), c.request("/whoami")
    rid = first.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", rid)
    assert first.json()["request_id"] == rid
    assert second.headers["x-request-id"] != rid


def test_malformed_request_id_is_replaced(containers, fixture_image):
    c = containers.run(image=fixture_image["image"])
    c.wait_http("/")
    resp = c.request("/whoami", headers={"X-Request-ID": 'x" injected="1'})
    assert re.fullmatch(r"[0-9a-f]{32}", resp.headers["x-request-id"])


def test_errors_and_static_files_carry_an_id_too(containers, fixture_image):
    c = containers.run(image=fixture_image["image"])
    c.wait_http("/")
    for path in ("/static/proof.txt", "/static/missing.txt", "/boom"):
        assert re.fullmatch(r"[0-9a-f]{32}", c.request(path).headers["x-request-id"]), path
