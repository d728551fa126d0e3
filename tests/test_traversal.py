"""Static paths can never climb out of the static folder: no app source, no
system file, whatever the encoding."""

import pytest

ATTEMPTS = [
    "/static/../app.py",
    "/static/%2e%2e/app.py",
    "/static/%2E%2E/app.py",
    "/static/..%2fapp.py",
    "/static/%2e%2e%2fapp.py",
    "/static/%252e%252e/app.py",
    "/static/..%5capp.py",
    "/static/..\\app.py",
    "/static../app.py",
    "/static..%2fapp.py",
    "/static//../app.py",
    "/static/./../app.py",
    "/static/....//app.py",
    "/static/%2e%2e/%2e%2e/etc/passwd",
    "/static/../../etc/passwd",
    "/static/..%2f..%2f..%2fetc%2fpasswd",
    "/static/%c0%ae%c0%ae/app.py",
]
# Text that exists only in the fixture app's source and in /etc/passwd.
SECRETS = (b"deliberately unlike the sample", b"root:x:0:0")


@pytest.fixture(scope="module")
def server(module_containers):
    c = module_containers.serving()
    # The fixture app's source really holds the marker, so its absence below
    # means something.
    assert SECRETS[0] in c.exec("cat", "/app/app.py").stdout.encode()
    return c


@pytest.mark.parametrize("path", ATTEMPTS)
def test_traversal_never_returns_source_or_system_files(server, path, figure):
    raw = server.raw(f"GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".encode())
    assert raw.startswith(b"HTTP/1.1 "), raw[:200]
    for secret in SECRETS:
        assert secret not in raw, f"{path} leaked {secret!r}"
    status = int(raw.split(b" ", 2)[1])
    figure(f"{path}", str(status))
    assert status in (400, 403, 404), f"{path} -> {status}"
