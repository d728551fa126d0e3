"""ALLOWED_HOSTS: nginx refuses a request for any other Host before it
reaches Python; empty (the default) serves any host."""

import pytest

# The longest name DNS allows (253 characters): nginx's map of host names
# refused anything past 46 at its default bucket size, and the container
# would not start.
LONGEST = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 53, "example"])


@pytest.fixture(scope="module")
def server(module_containers):
    assert len(LONGEST) == 253
    c = module_containers.run(env={"ALLOWED_HOSTS": f".example.com, api.example.org, {LONGEST}"})
    # Ready when the probe passes: "GET /" with Host 127.0.0.1 is refused.
    c.wait_http("/-/healthy")
    return c


@pytest.mark.parametrize("host", ["example.com", "www.example.com", "a.b.example.com", "api.example.org:8091",
                                  "API.Example.Org", LONGEST])
def test_listed_hosts_are_served(server, host):
    resp = server.request("/echo", headers={"Host": host})
    assert resp.status == 200
    assert resp.json()["host"] == host


@pytest.mark.parametrize("host", ["evil.example", "example.com.evil.example", "www.example.org", "127.0.0.1"])
def test_other_hosts_get_400_from_nginx(server, host):
    resp = server.request("/echo", headers={"Host": host})
    assert resp.status == 400
    assert "<center>nginx</center>" in resp.text


@pytest.mark.parametrize("path", ["/-/healthy", "/-/alive"])
def test_probes_are_exempt_but_only_exactly(server, path):
    # Kubernetes and Docker probe by IP address.
    assert server.request(path, headers={"Host": "10.1.2.3:8080"}).status == 200
    assert server.request(path + "?x", headers={"Host": "10.1.2.3:8080"}).status == 400


def test_any_host_by_default(containers, fixture_image):
    c = containers.serving(image=fixture_image["image"])
    assert c.request("/echo", headers={"Host": "anything.example"}).status == 200
