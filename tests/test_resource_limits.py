"""Resource limits are read and named. The pool is fitted to the cgroup's
pids limit (threads lowered, with a note), or the start exits 2 naming the
limit and the settings; a reload that would not fit keeps the running code.
A worker the kernel's OOM killer ends is named as such in the log and
counted in /metrics; a worker that grows past WORKER_MAX_MEMORY is replaced
gracefully, its request in flight finishing first."""

import http.client
import re
import threading

import pytest

from containers import SlowRequest
from helpers import docker, free_port


def metric(port: int, name: str) -> float:
    """One sample from METRICS_PORT's /metrics (0 when it is not there)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/metrics")
        body = conn.getresponse().read().decode()
    finally:
        conn.close()
    found = re.search(rf"^{re.escape(name)} (\S+)$", body, re.M)
    return float(found.group(1)) if found else 0.0


def test_the_pool_fits_the_pids_limit(containers, fixture_image, figure):
    # 2 CPUs: 157 for the default pool and a reload's second one; 70 fits two of 10 threads.
    c = containers.serving(image=fixture_image["image"], docker_args=("--pids-limit", "70"))
    logs = c.logs()
    lowered = re.search(r"UWSGI_THREADS lowered from 32 to (\d+) so that the pool fits", logs)
    assert lowered, logs
    pool = re.search(r"uWSGI (\d+) processes x (?:up to )?(\d+) threads(?: \(ADAPTIVE_THREADS[^)]*\))?, "
                     r"nginx (\d+) workers", logs)
    assert pool and pool.group(2) == lowered.group(1), logs
    figure("--pids-limit 70: threads per process", lowered.group(1))
    # nginx has every worker it asked for, and each uWSGI thread answers.
    assert len(c.pids("nginx: worker process")) == int(pool.group(3))
    processes, threads = int(pool.group(1)), int(pool.group(2))
    statuses = []
    clients = [threading.Thread(target=lambda: statuses.append(c.request("/sleep/1").status))
               for _ in range(processes * threads)]
    for client in clients:
        client.start()
    for client in clients:
        client.join(30)
    assert statuses == [200] * processes * threads, statuses
    assert c.exec("healthcheck.sh").returncode == 0


def test_a_pool_that_cannot_fit_the_pids_limit_exits_2_naming_it(containers, fixture_image):
    for env, limit, named in (({}, "20", "UWSGI_THREADS or UWSGI_PROCESSES"),
                              ({"UWSGI_THREADS": "16"}, "50", "UWSGI_THREADS=16")):
        result = containers.run_once(env=env, docker_args=("--pids-limit", limit),
                                     image=fixture_image["image"])
        output = result.stdout + result.stderr
        assert result.returncode == 2, output
        assert f"pids limit ({limit}, --pids-limit)" in output and named in output, output
        assert "serving" not in output


def test_a_reload_without_room_for_a_second_pool_keeps_the_running_code(containers, fixture_image):
    # 2 CPUs: one pool of 4 threads a process takes 30, two pools of 1 thread 33.
    c = containers.serving(image=fixture_image["image"], docker_args=("--pids-limit", "30"))
    assert "a reload's second pool would not fit beside it" in c.logs()
    docker("kill", "-s", "HUP", c.name)
    c.wait_until(lambda: "the pids limit leaves no room for the new code's pool" in c.logs(), "the refusal")
    assert all(c.request("/").status == 200 for _ in range(20))
    assert c.running()


def test_a_worker_the_oom_killer_ends_is_named_and_counted(containers, fixture_image, figure):
    metrics_port = free_port()
    c = containers.serving(image=fixture_image["image"],
                           env={"WORKER_MAX_MEMORY": "0", "METRICS_PORT": str(metrics_port)},
                           docker_args=("--memory", "256m", "--memory-swap", "256m"))
    # Four requests asked to hold 100 MB each in their workers: more than the
    # container has.
    results = []
    clients = [threading.Thread(target=lambda: results.append(c.request("/hold/100", timeout=30).status))
               for _ in range(4)]
    for client in clients:
        client.start()
    for client in clients:
        client.join(60)
    c.wait_until(lambda: "the kernel's OOM killer ended" in c.logs(), "the OOM kill named in the log")
    oom_kills = 'flaskbox_worker_replacements_total{reason="oom_kill"}'
    kills = c.wait_until(lambda: metric(metrics_port, oom_kills), "the OOM kill counted")
    figure("4 x 100 MB held under --memory 256m: statuses, OOM kills", f"{sorted(results)}, {kills:g}")
    assert "memory limit 256 MB" in c.logs()
    c.wait_http("/")
    # A crash afterwards is a crash: the OOM killer sends SIGKILL only, so
    # the last words of a server ended by another signal do not blame it.
    c.signal("SEGV", *c.pids("nginx: master process"))
    c.wait_exit()
    last = [line for line in c.logs().splitlines() if "container stopped" in line]
    assert last and "killed by signal 11" in last[-1] and "OOM" not in last[-1], last


def test_a_worker_past_worker_max_memory_is_replaced_gracefully(containers, fixture_image):
    metrics_port = free_port()
    c = containers.serving(image=fixture_image["image"],
                           env={"UWSGI_PROCESSES": "1", "UWSGI_THREADS": "4", "WORKER_MAX_MEMORY": "100m",
                                "METRICS_PORT": str(metrics_port)})
    first = c.request("/hold/30").json()["pid"]
    in_flight = []
    slow = threading.Thread(target=lambda: in_flight.append(c.request("/sleep/3").status))
    slow.start()
    c.wait_until(lambda: "sleep start 3" in c.logs(), "a request in flight on the worker")
    for _ in range(2):
        assert c.request("/hold/30").json()["pid"] == first
    c.wait_until(lambda: "past WORKER_MAX_MEMORY (100 MB)" in c.logs(), "the worker retiring")
    slow.join(15)
    assert in_flight == [200]
    c.wait_until(lambda: c.request("/count").json()["pid"] != first, "a fresh worker serving")
    assert metric(metrics_port, 'flaskbox_worker_replacements_total{reason="memory"}') == 1


def test_a_reload_while_an_earlier_one_still_finishes_waits_for_room_under_the_pids_limit(containers,
                                                                                          fixture_image):
    # Room for two pools exactly (pids.need: 45 for 2 x 4 threads), so a
    # third, while the first reload's old code still finishes a request,
    # would not fit: the second reload waits for that request to end.
    c = containers.serving(image=fixture_image["image"], env={"UWSGI_PROCESSES": "2", "UWSGI_THREADS": "4"},
                           docker_args=("--pids-limit", "45"))
    assert "would not fit" not in c.logs()
    slow = SlowRequest(c, 12)
    docker("kill", "-s", "HUP", c.name)
    c.wait_until(lambda: "uWSGI serves the app's new code (generation 2)" in c.logs(), "the first reload")
    docker("kill", "-s", "HUP", c.name)
    c.wait_until(lambda: "no room for a third pool" in c.logs(), "the second reload waiting")
    assert c.request("/").status == 200
    c.wait_until(lambda: "uWSGI serves the app's new code (generation 3)" in c.logs(), "the second reload",
                 timeout=40)
    assert slow.join() == 200, c.logs()
    logs = c.logs()
    assert logs.index("the old code (generation 1) has finished") < logs.index("(generation 3)"), logs
    assert "Resource temporarily unavailable" not in logs and "can't start new thread" not in logs, logs


# How /tmp fills up, and what the reload then says of it.
FULL_DISKS = {
    "inodes": ("i=0; while : >/tmp/fill$i; do i=$((i + 1)); done 2>/dev/null", ": >/tmp/one-more",
               "cannot make the new code's folder"),
    "space": ("head -c 100M /dev/zero >/tmp/fill 2>/dev/null; true", "echo more >>/tmp/fill",
              "uWSGI could not write its files in /tmp/flaskbox (message above; a full disk?)"),
}


@pytest.mark.parametrize("full", FULL_DISKS)
def test_a_full_disk_ends_neither_a_reload_nor_a_stop(containers, fixture_image, full):
    # RUNTIME_DIR's file system out of inodes or space (a log or an app
    # filling /tmp): a reload keeps the running code and names the disk, a
    # stop still drains. Before, the supervisor (PID 1, under bash's errexit)
    # died on the first file it could not make, and the container with it,
    # requests in flight cut; and out of space, the reload blamed the app's
    # code ("no longer imports").
    fill, probe, refusal = FULL_DISKS[full]
    c = containers.serving(image=fixture_image["image"],
                           docker_args=("--tmpfs", "/tmp:size=64m,nr_inodes=2000"))
    c.exec("bash", "-c", fill)
    assert c.exec("bash", "-c", probe).returncode != 0, "the disk is not full"
    slow = SlowRequest(c, 3)
    docker("kill", "-s", "HUP", c.name)
    c.wait_until(lambda: refusal in c.logs(), "the reload refused")
    assert "no longer imports" not in c.logs()
    assert slow.join() == 200 and c.running(), c.logs()
    assert c.request("/").status == 200
    # The stop, with a request in flight: drained, exit 0.
    slow = SlowRequest(c, 2)
    docker("stop", c.name)
    assert slow.join() == 200 and c.exit_code() == 0, c.logs()
    if full == "inodes":  # an empty file needs no space, only an inode
        assert "cannot mark the stop" in c.logs()
