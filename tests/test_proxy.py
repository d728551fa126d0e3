"""Behind another proxy: X-Forwarded-For is trusted only from TRUSTED_PROXIES."""

import pytest

CLIENT = "203.0.113.7"


def whoami(containers, image, env=None):
    c = containers.run(image=image, env=env)
    c.wait_http("/")
    return c, c.request("/whoami", headers={"X-Forwarded-For": CLIENT}).json()


def test_forwarded_for_is_not_trusted_by_default(containers, fixture_image):
    _, seen = whoami(containers, fixture_image["image"])
    assert seen["remote_addr"] == "127.0.0.1"


@pytest.mark.parametrize("proxies", ["127.0.0.1", "127.0.0.0/8", "10.0.0.0/8, 127.0.0.1/32"])
def test_trusted_proxies_pass_the_real_client_address(containers, fixture_image, proxies):
    c, seen = whoami(containers, fixture_image["image"], env={"TRUSTED_PROXIES": proxies})
    assert seen["remote_addr"] == CLIENT
    # nginx logs the real client too.
    c.wait_until(lambda: any(line.startswith(CLIENT) and "/whoami" in line for line in c.stdout_lines()),
                 "the access log line with the client address", timeout=5)


def test_untrusted_proxy_list_does_not_cover_loopback(containers, fixture_image):
    _, seen = whoami(containers, fixture_image["image"], env={"TRUSTED_PROXIES": "10.0.0.0/8"})
    assert seen["remote_addr"] == "127.0.0.1"
