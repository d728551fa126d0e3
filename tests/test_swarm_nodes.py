"""Docker Swarm on three nodes, as docs/swarm.md's walkthrough runs it:
three Docker engines, each in a network namespace of its own (its node's
host network, 198.18.0.1-3) with its own data root, exec root, socket, pid
file, /run/containerd (a mount namespace of its own) and cgroup parent,
made three managers of one swarm. A fourth namespace (198.18.0.254) holds
the bridge between them, the load balancer (Debian's nginx, with the
configuration docs/swarm.md gives), the clients and Prometheus (with the
docs' scrape configs). The image under test is loaded into each engine with
`docker save | docker load`; no registry.

deploy/swarm/stack.host.yaml runs one task per node. Under steady load
through the load balancer, every request checked for its own answer:
- a rolling update loses no request, and the tasks stay one per node;
- a drained node's task stops and comes back, losing no request;
- a node killed -9 (every process of it, and its link) loses at most the
  requests it was answering (reported), and gets its task back when it
  returns;
- Prometheus finds every task on every node exactly once, for both stack
  files (stack.yaml's tasks from a Prometheus on the stack's own network).
Everything is removed afterwards: engines, their processes, mounts and
cgroups, the namespaces and the directories."""

from __future__ import annotations

import json
import re
import shutil
import time
import urllib.parse
import urllib.request

import pytest
import yaml

from engines import in_netns, poll, require, run
from helpers import REPO
from swarm_cluster import NODES, TASKS_READY, Cluster, Service, deploy
from swarm_traffic import Traffic, served_since

pytestmark = pytest.mark.slow

DOCS = REPO / "docs/swarm.md"
HOST_STACK = REPO / "deploy/swarm/stack.host.yaml"
INGRESS_STACK = REPO / "deploy/swarm/stack.yaml"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

PORT, INGRESS_PORT, METRICS_PORT = 8080, 8081, 9100
STACK = "flaskbox"
# Bounds on every wait, in seconds.
UPDATE_DONE = 240
NODE_DOWN = 60


def docs_block(language: str, marker: str) -> str:
    """The fenced block of docs/swarm.md in that language that holds marker."""
    blocks = re.findall(rf"```{language}\n(.*?)```", DOCS.read_text(), re.S)
    found = [block for block in blocks if marker in block]
    assert len(found) == 1, f"docs/swarm.md: expected one {language} block with {marker!r}"
    return found[0]


class Prometheus:
    """Prometheus in the balancer's namespace with docs/swarm.md's scrape
    config for stack.host.yaml, asking the first node's engine."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        config = yaml.safe_load(docs_block("yaml", "role: nodes"))
        job = config["scrape_configs"][0]
        job["dockerswarm_sd_configs"][0]["host"] = f"unix://{cluster.manager.socket}"
        job["dockerswarm_sd_configs"][0]["refresh_interval"] = "2s"
        config["global"] = {"scrape_interval": "1s", "scrape_timeout": "1s"}
        path = cluster.root / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        cluster.spawn("prometheus", PROMETHEUS, f"--config.file={path}",
                      f"--storage.tsdb.path={cluster.root / 'prometheus'}",
                      "--web.listen-address=127.0.0.1:9090", "--log.level=warn")

    def api(self, path: str, **query: str) -> dict:
        url = f"http://127.0.0.1:9090/api/v1/{path}?{urllib.parse.urlencode(query)}"

        def fetch():
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.load(response)["data"]
        return in_netns(self.cluster.netns_path, fetch)

    def targets_up(self, addresses: list[str]):
        """The active targets, when they are exactly addresses, all up."""
        try:
            active = self.api("targets", state="active")["activeTargets"]
        except OSError:
            return None
        found = sorted(t["labels"]["instance"] for t in active)
        return active if found == sorted(addresses) and all(t["health"] == "up" for t in active) else None


@pytest.fixture(scope="module")
def cluster(image):
    started = time.monotonic()
    cluster = Cluster()
    try:
        require(NGINX, PROMETHEUS)
        cluster.start(image)
        deploy(cluster, HOST_STACK, STACK, image, PORT=str(PORT))
        service = Service(cluster, f"{STACK}_web")
        service.wait_spread(cluster.machines, image)
        balancer(cluster)
        cluster.setup_seconds = time.monotonic() - started
        cluster.image = image
        cluster.service = service
        yield cluster
    finally:
        problems = cluster.teardown()
        # Nothing of the swarm's may reach this machine's own network.
        assert run("ip", "link", "show", "docker_gwbridge", check=False).returncode != 0, \
            "docker_gwbridge exists outside the namespaces"
        assert not problems, problems


def balancer(cluster: Cluster) -> None:
    """Debian's nginx with docs/swarm.md's configuration, listing the
    three nodes, on port 80 of the balancer's namespace."""
    site = docs_block("nginx", "upstream flaskbox")
    servers = "".join(f"    server {m.address}:{PORT} max_fails=1 fail_timeout=5s;\n"
                      for m in cluster.machines)
    site, count = re.subn(r"(?:    server \S+:8080 [^\n]*\n)+", servers, site)
    assert count == 1, "docs/swarm.md's upstream block lists no servers on port 8080"
    prefix = cluster.root / "lb"
    prefix.mkdir()
    temp = " ".join(f"{kind}_temp_path {prefix}/{kind};" for kind in
                    ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (prefix / "nginx.conf").write_text(
        f"worker_processes 1;\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log warn;\n"
        f"events {{}}\nhttp {{\n access_log off;\n {temp}\n{site}\n}}\n")
    process = cluster.spawn("nginx", NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf"),
                            "-g", "daemon off;")

    def answers():
        if process.poll() is not None:
            raise AssertionError((cluster.root / "nginx.log").read_text() +
                                 (prefix / "error.log").read_text())
        with Traffic(cluster.netns_path, 80, seconds=2) as probe:
            time.sleep(0.5)
        return probe.results and all(r.status == 200 for r in probe.results)
    poll(answers, "the load balancer answering", 30)


def balancer_log(cluster: Cluster, lines: int = 20) -> str:
    """The balancer's error log's last lines: which node it waited on."""
    log = cluster.root / "lb" / "error.log"
    return "\n".join(log.read_text().splitlines()[-lines:]) if log.exists() else "(no balancer log)"


def no_failures(traffic: Traffic, service: Service) -> None:
    failures = traffic.failures()
    assert not failures, f"{traffic.summary()}; first failures: {failures[:5]}\n{service.explain()}"


def test_prometheus_finds_each_task_once_on_the_host_network(cluster):
    """docs/swarm.md's config for stack.host.yaml: one target per node, the
    task's METRICS_PORT at the node's address, each up."""
    prometheus = Prometheus(cluster)
    addresses = [f"{m.address}:{METRICS_PORT}" for m in cluster.machines]
    poll(lambda: prometheus.targets_up(addresses), "Prometheus scraping the three tasks", 60,
         explain=lambda: json.dumps(prometheus.api("targets"), indent=1)[:3000])
    # Each answers with flaskbox's own series.
    def scraped():
        query = "count by (instance) (flaskbox_http_requests_total)"
        result = prometheus.api("query", query=query)["result"]
        return sorted(r["metric"]["instance"] for r in result) == sorted(addresses)
    poll(scraped, "flaskbox's series from each node", 30)
    cluster.prometheus = prometheus


def test_the_files_cpu_limit_gives_what_the_docs_say(cluster):
    """The stack's 1-CPU limit, as a task's own start log reports the pool
    it sized from it, and as docs/swarm.md quotes that line."""
    machine = cluster.manager
    task = machine.docker("ps", "-q", "--filter",
                          f"label=com.docker.swarm.service.name={cluster.service.name}").stdout.split()[0]
    line = ("1 CPU(s) available: uWSGI 2 processes x up to 32 threads (ADAPTIVE_THREADS: as many at once as "
            "run in their time alone, and headroom), nginx 1 workers")
    assert line in machine.docker("logs", task).stderr
    assert line in DOCS.read_text()


def test_rolling_update_keeps_one_task_per_node_and_loses_no_request(cluster, figure):
    figure("3 engines, swarm of 3 managers, image loads, deploy and load balancer",
           f"{cluster.setup_seconds:.0f} s")
    service = cluster.service
    new = "flaskbox-nodes:next"
    for machine in cluster.machines:
        machine.variant(cluster.image, new, "LABEL org.flaskbox.test=next")
    before = service.update_status()
    with Traffic(cluster.netns_path, 80) as traffic:
        served_since(traffic, traffic.started, "before the update")
        began = time.monotonic()
        deploy(cluster, HOST_STACK, STACK, new, PORT=str(PORT))

        def finished():
            status = service.update_status()
            if status.get("StartedAt") == before.get("StartedAt"):
                return None
            if status.get("State") in {"paused", "rollback_started", "rollback_completed"}:
                raise AssertionError(f"the update failed: {status}\n{service.explain()}")
            return status if status.get("State") == "completed" else None
        poll(finished, "the update completed", UPDATE_DONE, explain=service.explain)
        took = time.monotonic() - began
        service.wait_spread(cluster.machines, new)
        served_since(traffic, time.monotonic(), "after the update")
    no_failures(traffic, service)
    cluster.image = new
    figure("rolling update of 3 nodes behind the load balancer",
           f"{took:.0f} s, {len(traffic.results)} requests, {len(traffic.failures())} failed")


def test_drained_node_stops_its_task_and_gets_it_back(cluster, figure):
    service, drained = cluster.service, cluster.machines[1]
    others = [m for m in cluster.machines if m is not drained]
    with Traffic(cluster.netns_path, 80) as traffic:
        served_since(traffic, traffic.started, "before the drain")
        began = time.monotonic()
        service.docker("node", "update", "--availability", "drain", drained.node_id)
        service.wait_spread(others)
        # Stopped for good: drained in the image's ordered stop, and gone.
        poll(lambda: not drained.docker("ps", "-q", "--filter",
                                        f"label=com.docker.swarm.service.name={service.name}").stdout.strip(),
             "the drained node's task gone", 60, explain=service.explain)
        gone = time.monotonic() - began
        served_since(traffic, time.monotonic(), "with the node drained")
        back = time.monotonic()
        service.docker("node", "update", "--availability", "active", drained.node_id)
        service.wait_spread(cluster.machines)
        returned = time.monotonic() - back
        served_since(traffic, time.monotonic(), "with the node back")
    no_failures(traffic, service)
    figure("drain: the node's task stopped, then back on --availability active",
           f"{gone:.0f} s, then {returned:.0f} s; {len(traffic.results)} requests, "
           f"{len(traffic.failures())} failed")


def test_killed_node_loses_at_most_its_requests_in_flight(cluster, figure):
    service, victim = cluster.service, cluster.machines[2]
    others = [m for m in cluster.machines if m is not victim]
    with Traffic(cluster.netns_path, 80) as traffic:
        served_since(traffic, traffic.started, "before the kill")
        # The node is gone once its link is: a request the balancer sent it
        # while `ip` was still running may have been taken and never answered.
        killed_at, processes = victim.kill()
        served_since(traffic, killed_at, "after the kill")

        def marked_down():
            nodes = service.docker("node", "ls", "--format", "{{.ID}} {{.Status}}").stdout.split("\n")
            return f"{victim.node_id} Down" in nodes
        poll(marked_down, "the swarm marking the node down", NODE_DOWN, explain=service.explain)
        down = time.monotonic() - killed_at
        service.wait_spread(others)
        # The machine comes back with its disks: a new engine process,
        # fresh /run/containerd, the same data root.
        victim.plug()
        plugged_at = time.monotonic()
        victim.start()
        service.wait_spread(cluster.machines)
        returned = time.monotonic() - killed_at
        served_since(traffic, time.monotonic(), "with the node back")
    after = traffic.since(killed_at)
    slowest = max(r.took for r in after if r.status == 200)
    # Only requests already sent when the node died may fail: those it was
    # answering, which the load balancer waited for in vain.
    lost = [r for r in traffic.failures() if r.sent < killed_at]
    late = [r for r in traffic.failures() if r.sent >= killed_at]
    assert not late, (f"{service.explain()}\n{balancer_log(cluster)}\n{traffic.summary()}; "
                      f"unplugged at {killed_at:.3f}, plugged again at {plugged_at:.3f}; failed after:")
    assert len(lost) <= 5, f"{traffic.summary()}; {lost}"
    figure(f"a node killed -9 (its {processes} processes, and its link)",
           f"{len(traffic.results)} requests, {len(lost)} lost (in flight on it); new requests answered "
           f"within {slowest:.1f} s; marked down after {down:.0f} s; "
           f"back with its task after {returned:.0f} s")


def test_prometheus_still_finds_each_task_once(cluster):
    addresses = [f"{m.address}:{METRICS_PORT}" for m in cluster.machines]
    poll(lambda: cluster.prometheus.targets_up(addresses), "Prometheus scraping the three tasks again", 60)


def test_prometheus_finds_each_ingress_task_once(cluster):
    """stack.yaml, three replicas, with docs/swarm.md's `tasks` config in a
    Prometheus on the stack's network (Debian's prometheus binary, run in
    the image under test as a swarm service on the first node): one target
    per task, on every node, at its address on the stack's network, each
    up. The routing mesh itself carries no traffic here (no IPVS)."""
    name = "flaskbox-ingress"
    deploy(cluster, INGRESS_STACK, name, cluster.image, PORT=str(INGRESS_PORT), REPLICAS=str(NODES))
    service = Service(cluster, f"{name}_web")
    tasks = service.wait_spread(cluster.machines)
    config = yaml.safe_load(docs_block("yaml", "role: tasks"))
    config["scrape_configs"][0]["dockerswarm_sd_configs"][0]["refresh_interval"] = "2s"
    config["global"] = {"scrape_interval": "1s", "scrape_timeout": "1s"}
    path = cluster.root / "prometheus-tasks.yml"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o644)
    manager = cluster.manager
    manager.docker("service", "create", "--detach", "--name", "flaskbox-prometheus",
                   "--network", f"{name}_default", "--constraint", f"node.id=={manager.node_id}",
                   "--user", "root", "--mount", "type=tmpfs,dst=/data",
                   "--mount", f"type=bind,src={PROMETHEUS},dst=/usr/local/bin/prometheus,ro",
                   "--mount", f"type=bind,src={manager.socket},dst=/var/run/docker.sock",
                   "--mount", f"type=bind,src={path},dst=/etc/prometheus.yml,ro",
                   "--entrypoint", "/usr/local/bin/prometheus", "--no-healthcheck", cluster.image,
                   "--config.file=/etc/prometheus.yml", "--storage.tsdb.path=/data",
                   "--web.listen-address=127.0.0.1:9090", "--log.level=warn")
    addresses = {}
    for task in tasks:
        for attachment in task["NetworksAttachments"]:
            if attachment["Network"]["Spec"]["Name"] == f"{name}_default":
                addresses[task["ID"]] = attachment["Addresses"][0].split("/")[0] + f":{METRICS_PORT}"
    assert len(addresses) == NODES

    def container():
        found = manager.docker("ps", "-q", "--filter", "status=running", "--filter",
                               "label=com.docker.swarm.service.name=flaskbox-prometheus").stdout.split()
        return found[0] if found else None
    prometheus = poll(container, "Prometheus's task running", TASKS_READY,
                      explain=lambda: manager.docker("service", "ps", "--no-trunc", "flaskbox-prometheus",
                                                     check=False).stdout)
    probe = ("import json, urllib.request\n"
             "url = 'http://127.0.0.1:9090/api/v1/targets?state=active'\n"
             "r = json.load(urllib.request.urlopen(url))\n"
             "print(json.dumps([(t['labels']['instance'],"
             " t['discoveredLabels']['__meta_dockerswarm_task_id'], t['health'])"
             " for t in r['data']['activeTargets']]))\n")

    def found():
        result = manager.docker("exec", prometheus, "python3", "-c", probe, check=False)
        if result.returncode != 0:
            return None
        targets = json.loads(result.stdout)
        by_task = {task: instance for instance, task, _ in targets}
        healthy = all(health == "up" for _, _, health in targets)
        return targets if len(targets) == NODES and by_task == addresses and healthy else None
    poll(found, "one target per task, each up", 60,
         explain=lambda: manager.docker("exec", prometheus, "python3", "-c", probe, check=False).stdout)
