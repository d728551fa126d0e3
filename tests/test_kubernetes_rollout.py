"""A simulated rolling update (no Kubernetes runs here: this test plays the
Service and the kubelet with plain containers), in the order Kubernetes
documents, under load on loopback: the new pod starts, passes its probes
and joins the Service; then the old pod is deleted: it leaves the Service
while its preStop sleep runs, gets SIGTERM after it, and SIGKILL only at
terminationGracePeriodSeconds. The settings are the prod overlay's; not
one request may fail."""

from __future__ import annotations

import http.client
import itertools
import math
import threading
import time
import uuid
from dataclasses import dataclass

import pytest

from containers import Container
from helpers import docker
from manifests import PodSpec, render, start_pod, wait_ready

pytestmark = pytest.mark.slow

# Client threads and the pause between two requests of one thread: about
# 200 requests a second, a steady load that leaves the 2 CPUs room to work.
CLIENTS = 4
PAUSE = 0.02
# Load after the old pod is gone: the new one carries this many requests alone.
AFTER = 100


class Service:
    """The Service as kube-proxy applies it: each new connection goes to one
    of the ready endpoints, in turn."""

    def __init__(self):
        self._lock = threading.Lock()
        self._pods: list[Container] = []
        self._turn = itertools.count()

    def add(self, pod: Container) -> None:
        with self._lock:
            self._pods.append(pod)

    def remove(self, pod: Container) -> None:
        with self._lock:
            self._pods.remove(pod)

    def pick(self) -> Container | None:
        with self._lock:
            return self._pods[next(self._turn) % len(self._pods)] if self._pods else None


@dataclass
class Outcome:
    pod: str
    sent: float
    error: str | None
    done: float = 0.0


def send(pod: Container | None, path: str = "/", timeout: float = 10) -> Outcome:
    """One request on a new connection; ok means 200 and our own request id
    echoed back, which only nginx in front of a working app returns."""
    sent = time.monotonic()
    if pod is None:
        return Outcome("-", sent, "no ready endpoint", sent)
    token = uuid.uuid4().hex
    try:
        resp = pod.request(path, headers={"X-Request-ID": token}, timeout=timeout)
    except (OSError, http.client.HTTPException) as exc:
        return Outcome(pod.name, sent, repr(exc), time.monotonic())
    error = None
    if resp.status != 200 or resp.headers.get("x-request-id") != token:
        error = f"status {resp.status}, id {resp.headers.get('x-request-id')}"
    return Outcome(pod.name, sent, error, time.monotonic())


class Load:
    """CLIENTS threads sending requests through the Service until stopped."""

    def __init__(self, service: Service):
        self.service = service
        self.outcomes: list[Outcome] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(CLIENTS)]

    def _client(self) -> None:
        # Bounded even if the test never stops it.
        deadline = time.monotonic() + 120
        while not self._stop.is_set() and time.monotonic() < deadline:
            self.outcomes.append(send(self.service.pick()))
            self._stop.wait(PAUSE)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)


def delete_pod(pod: Container, spec: PodSpec, service: Service, run_prestop: bool = True) -> dict:
    """`kubectl delete pod`, as Kubernetes carries it out. The endpoint
    controller and every kube-proxy take the pod out of the Service while the
    kubelet runs the preStop hook; their lag is taken as half the sleep.
    Then SIGTERM, and SIGKILL when the grace period is over. Returns the
    moments (time.monotonic()) each step began."""
    steps = {"deleted": time.monotonic()}
    lag = spec.prestop_seconds() / 2
    forget = threading.Timer(lag, service.remove, (pod,))
    forget.start()
    if run_prestop:
        hook = docker("exec", pod.name, *spec.prestop_command(), check=False, timeout=spec.grace_seconds())
        assert hook.returncode == 0, hook.stderr
    steps["sigterm"] = time.monotonic()
    left = spec.grace_seconds() - (steps["sigterm"] - steps["deleted"])
    docker("stop", "--time", str(max(0, math.floor(left))), pod.name, timeout=left + 30)
    steps["exited"] = time.monotonic()
    steps["left"] = left
    forget.join()
    return steps


def failures(outcomes: list[Outcome]) -> list[Outcome]:
    return [outcome for outcome in outcomes if outcome.error]


def test_rolling_update_under_load_fails_no_request(containers, fixture_image):
    spec = PodSpec.of(render("overlays/prod"))
    image = fixture_image["image"]
    service = Service()
    old = start_pod(containers, spec, image=image)
    wait_ready(old, spec)
    service.add(old)
    with Load(service) as load:
        new = start_pod(containers, spec, image=image)
        wait_ready(new, spec)
        service.add(new)
        # A long request that kube-proxy sends to the old pod just before it
        # forgets the pod: still running at SIGTERM, so nginx must drain it.
        seconds = math.ceil(spec.prestop_seconds() / 2) + 2
        slow: list[Outcome] = []
        late = threading.Timer(spec.prestop_seconds() / 2 - 0.5,
                               lambda: slow.append(send(old, f"/sleep/{seconds}", timeout=30)))
        late.start()
        steps = delete_pod(old, spec, service)
        late.join(timeout=30)
        def alone() -> int:
            return sum(o.pod == new.name and o.sent > steps["exited"] for o in load.outcomes)

        new.wait_until(lambda: alone() >= AFTER, f"{AFTER} requests on the new pod alone", timeout=30)
    outcomes = load.outcomes
    lost = failures(outcomes + slow)
    logs = f"--- old ---\n{old.logs()}\n--- new ---\n{new.logs()}"
    assert not lost, f"{len(lost)} of {len(outcomes)} requests failed, e.g. {lost[:5]}\n{logs}"
    # The test proved something only if each pod carried load in its part.
    served_old_while_deleted = [o for o in outcomes if o.pod == old.name and o.sent > steps["deleted"]]
    assert served_old_while_deleted, "no request reached the old pod during its preStop"
    assert any(o.pod == new.name and o.sent > steps["exited"] for o in outcomes), "none reached the new pod"
    assert slow and slow[0].sent < steps["sigterm"] < slow[0].done, (slow, steps)
    # Drained, not killed: it ended well before the kubelet's SIGKILL.
    assert steps["exited"] - steps["sigterm"] < steps["left"] - 1, logs
    assert old.exit_code() == 0, logs


def test_without_the_prestop_sleep_requests_are_lost(containers, fixture_image):
    # The same deletion with the preStop hook left out: SIGTERM closes the
    # port while the Service still sends to the pod. That is what the sleep
    # is for, and it shows that this harness does see lost requests.
    spec = PodSpec.of(render("overlays/prod"))
    image = fixture_image["image"]
    service = Service()
    old, new = start_pod(containers, spec, image=image), start_pod(containers, spec, image=image)
    wait_ready(old, spec)
    wait_ready(new, spec)
    service.add(old)
    service.add(new)
    with Load(service) as load:
        steps = delete_pod(old, spec, service, run_prestop=False)
    lost = [o for o in failures(load.outcomes) if o.pod == old.name]
    assert lost, f"no request failed in {len(load.outcomes)}"
    assert all(steps["sigterm"] <= o.sent for o in lost), lost[:5]
