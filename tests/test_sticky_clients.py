"""Apps that keep state in one process (a login in a module-level dict, as
many admin apps keep theirs) work on the default pool of several processes
with STICKY_CLIENTS=1: each client, by its address or the one a trusted
proxy reports, is always served by the same process. Without it, the
failure users report shows: logged out at random."""

import threading
from collections import Counter

import pytest

CLIENTS, REQUESTS = 20, 20


def session(container, client: int, outcomes: list) -> None:
    """One user behind the trusted proxy: logs in, then makes REQUESTS."""
    forwarded = {"X-Forwarded-For": f"198.51.100.{client + 1}"}
    login = container.request("/login", method="POST", body=b"user=someone", headers={
        **forwarded, "Content-Type": "application/x-www-form-urlencoded"})
    assert login.status == 200, login.text
    key = login.json()["key"]
    for _ in range(REQUESTS):
        outcomes.append(container.request(f"/me?key={key}", headers=forwarded).status)


def sessions(container) -> Counter:
    outcomes: list[int] = []
    threads = [threading.Thread(target=session, args=(container, client, outcomes))
               for client in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return Counter(outcomes)


@pytest.mark.parametrize("sticky", ["1", "0"], ids=["sticky", "not-sticky"])
def test_a_login_kept_in_one_process_holds_only_with_sticky_clients(containers, fixture_image, sticky,
                                                                    figure):
    # Four processes (twice the default on 2 CPUs: more places for a login to
    # be lost), the proxy in front trusted.
    env = {"UWSGI_PROCESSES": "4", "STICKY_CLIENTS": sticky, "TRUSTED_PROXIES": "127.0.0.1"}
    c = containers.serving(image=fixture_image["image"], env=env)
    outcomes = sessions(c)
    figure(f"STICKY_CLIENTS={sticky}: {CLIENTS} users x {REQUESTS} requests", dict(outcomes))
    if sticky == "1":
        assert outcomes == Counter({200: CLIENTS * REQUESTS}), outcomes
    else:
        # What users of such apps see on any pool of several processes.
        assert outcomes[401] > 0, outcomes
