"""W3C Trace Context: a traceparent reaches the app as it was sent, and a
well-formed one's trace id is in the access log beside the request id (text
and JSON); a malformed one is passed on but kept out of the log."""

import json
import re
import uuid

import pytest

VALID = "00-{trace}-00f067aa0ba902b7-01"
INVALID = [
    "00-{trace}-00f067aa0ba902b7",  # no flags
    "00-{upper}-00f067aa0ba902b7-01",  # upper-case hex
    "ff-{trace}-00f067aa0ba902b7-01",  # version ff is invalid
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
    "00-{trace}-0000000000000000-01",  # all-zero parent id
    "00-{trace}-00f067aa0ba902b7-01 x=1",  # text after it
]


@pytest.fixture(scope="module", params=["text", "json"])
def served(module_containers, request):
    return module_containers.serving(env={"LOG_FORMAT": request.param}), request.param


def logged(container, request_id: str) -> str:
    return container.wait_until(
        lambda: next((line for line in container.stdout_lines() if request_id in line), None),
        "the request's log line", timeout=5)


def trace_in_log(line: str, log_format: str) -> str:
    if log_format == "json":
        return json.loads(line)["trace_id"]
    found = re.search(r" id=(\S+) trace=(\S+) done=", line)
    return "" if found.group(2) == "-" else found.group(2)


def test_a_valid_traceparent_reaches_the_app_and_the_log(served):
    container, log_format = served
    trace = uuid.uuid4().hex
    header, request_id = VALID.format(trace=trace), f"req-{uuid.uuid4().hex[:12]}"
    response = container.request("/echo", headers={"traceparent": header, "tracestate": "vendor=x",
                                                   "X-Request-ID": request_id})
    assert response.status == 200
    seen = json.loads(response.body)["headers"]
    assert seen["Traceparent"] == header and seen["Tracestate"] == "vendor=x"
    line = logged(container, request_id)
    assert trace_in_log(line, log_format) == trace
    if log_format == "text":
        assert f"id={request_id} trace={trace} done=ok" in line


@pytest.mark.parametrize("form", INVALID)
def test_an_invalid_traceparent_is_passed_on_but_not_logged(served, form):
    container, log_format = served
    trace = uuid.uuid4().hex
    header, request_id = form.format(trace=trace, upper=trace.upper()), f"req-{uuid.uuid4().hex[:12]}"
    response = container.request("/echo", headers={"traceparent": header, "X-Request-ID": request_id})
    assert json.loads(response.body)["headers"]["Traceparent"] == header
    line = logged(container, request_id)
    assert trace_in_log(line, log_format) == ""
    assert trace not in line.lower()
