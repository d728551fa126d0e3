"""A reload's log says a request was cut only when one was. The old code's
uWSGI master may be slow to stop once its requests have ended (a loaded
machine; here, a master stopped with SIGSTOP): that is said as slow, its
idle workers and then itself are killed, and nothing is called a cut. A
download the old code was sending meanwhile arrives whole."""

from downloads import MB, Download
from helpers import docker

CUT_CLAIMS = ("their requests are cut", "ended before its requests did", "were cut", "started again",
              "after RELOAD_GRACE")


def test_a_master_slow_to_stop_after_its_requests_is_not_reported_as_a_cut(containers, fixture_image):
    # The old code's idle workers have what RELOAD_GRACE leaves (their
    # exit's budget) before they are killed: 15 s, not the default 300.
    c = containers.serving(image=fixture_image["image"], env={"RELOAD_GRACE": "15"})
    old = c.pids("flaskbox uWSGI master")
    assert len(old) == 1, c.processes()
    # 16 MB at 4 MB/s from the old code: under way across the reload.
    download = Download(f"http://127.0.0.1:{c.port}/blob/16", rate=4 * MB).start()
    c.wait_until(lambda: download.received() > 0, "the download under way")
    # The old master will not act on anything from now on, as one that is
    # slow to stop; its workers go on serving what they hold.
    c.signal("STOP", old[0])
    docker("kill", "-s", "HUP", c.name)
    c.wait_until(lambda: "the old code (generation 1) has finished its requests" in c.logs(),
                 "the old code's end", timeout=60)
    assert download.wait().whole, download
    logs = c.logs()
    assert "uWSGI master" in logs and "is slow to stop its idle workers" in logs, logs
    assert "its master, slow to stop, was killed" in logs, logs
    for claim in CUT_CLAIMS:
        assert claim not in logs, (claim, logs)
    # The new code serves, and only its master is left.
    assert c.request("/").status == 200
    c.wait_until(lambda: len(c.pids("flaskbox uWSGI master")) == 1, "one uWSGI master left")

