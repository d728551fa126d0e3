"""The Kubernetes manifests agree with the image: the image is started with
the settings the Deployment gives its pods, and answers its probes; the
shutdown timing covers what nginx.conf, app.ini and the entry-point in the
image really do."""

import functools
import http.client
import json
import math
import threading
import time

import pytest

from helpers import docker
from manifests import (
    BYTE_UNITS,
    CPU_UNITS,
    KUSTOMIZATIONS,
    PodSpec,
    probe,
    quantity,
    render,
    start_pod,
    wait_ready,
)


@functools.cache
def pod_spec(kustomization: str) -> PodSpec:
    return PodSpec.of(render(kustomization))


def image_config(image: str) -> dict:
    return json.loads(docker("image", "inspect", image).stdout)[0]["Config"]


@functools.cache
def image_settings(image: str) -> dict:
    """The stop budget and size parser of the image's own settings table
    (lib/flaskbox/layout.py, where they are defined once), as values."""
    script = ("import json; from flaskbox import layout as s; print(json.dumps({"
              "'drain': s.STOP_DRAIN_SECONDS, 'mercy': s.STOP_MERCY_SECONDS, "
              "'kill after': s.STOP_KILL_AFTER_SECONDS}))")
    out = docker("run", "--rm", "--network", "host", "--entrypoint", "python3", image, "-c", script).stdout
    return json.loads(out)


def stop_budget(image: str) -> dict[str, int]:
    """When each server is told to stop and when it is killed, in seconds."""
    values = image_settings(image)
    return {"nginx drain": values["drain"], "nginx kill": values["drain"] + values["kill after"],
            "uWSGI mercy": values["mercy"], "uWSGI kill": values["mercy"] + values["kill after"]}


def image_default(image: str, name: str) -> str:
    """A setting's production default, as the image's settings table has it."""
    result = docker("run", "--rm", "--network", "host", "--entrypoint", "python3", image,
                    "-m", "flaskbox", "default", name)
    return result.stdout.strip()


# --- Read together: manifests and image ------------------------------------

@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_port_is_the_configmaps_port(kustomization):
    spec = pod_spec(kustomization)
    port = int(spec.env()["PORT"])
    # Not below 1024: the pod runs as non-root without the sysctl that
    # would let it bind a privileged port.
    assert port >= 1024
    metrics = int(spec.env()["METRICS_PORT"])
    assert [p["containerPort"] for p in spec.container["ports"]] == [port, metrics]
    # Prometheus's pod discovery scrapes the port the annotation names.
    annotations = spec.deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == metrics
    assert annotations["prometheus.io/path"] == "/metrics"
    for which in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert spec.port(spec.container[which]["httpGet"]["port"]) == port, which


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_pod_runs_as_the_images_user(kustomization, image):
    spec = pod_spec(kustomization)
    assert f"{spec.security('runAsUser')}:{spec.security('runAsGroup')}" == image_config(image)["User"]


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_runtime_dir_is_on_a_writable_volume(kustomization, image):
    spec = pod_spec(kustomization)
    runtime_dir = spec.env().get("RUNTIME_DIR") or image_default(image, "RUNTIME_DIR")
    # With a read-only root, the image can write only to its emptyDirs.
    assert spec.security("readOnlyRootFilesystem") is True
    assert any(runtime_dir == path or runtime_dir.startswith(path.rstrip("/") + "/")
               for path in spec.emptydir_mounts()), (runtime_dir, spec.emptydir_mounts())


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_grace_period_covers_prestop_and_the_ordered_stop(kustomization, image):
    spec = pod_spec(kustomization)
    budget = stop_budget(image)
    # Each server's hard limit is at least its own graceful one...
    assert budget["nginx kill"] >= budget["nginx drain"], budget
    assert budget["uWSGI kill"] >= budget["uWSGI mercy"], budget
    # ...and the kubelet's SIGKILL comes only after both, after the preStop.
    needed = spec.prestop_seconds() + budget["nginx kill"] + budget["uWSGI kill"]
    assert spec.grace_seconds() >= needed, f"grace {spec.grace_seconds()} s < {needed} s ({budget})"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_liveness_outlasts_a_stuck_request(kustomization, image):
    # A pod whose workers are all busy fails its probes; uWSGI's harakiri
    # frees a stuck worker after REQUEST_TIMEOUT, so the kubelet must wait
    # longer than that before it restarts the pod.
    spec = pod_spec(kustomization)
    liveness = spec.container["livenessProbe"]
    window = liveness["periodSeconds"] * liveness["failureThreshold"]
    timeout = spec.env().get("REQUEST_TIMEOUT") or image_default(image, "REQUEST_TIMEOUT")
    assert window > int(timeout), f"liveness gives up after {window} s, REQUEST_TIMEOUT is {timeout} s"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_liveness_is_nginx_and_readiness_a_worker(kustomization):
    # Busy may fail readiness (out of the Service), never liveness (restart).
    spec = pod_spec(kustomization)
    paths = {which: spec.container[which]["httpGet"]["path"]
             for which in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert paths == {"startupProbe": "/-/alive", "readinessProbe": "/-/healthy", "livenessProbe": "/-/alive"}


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_upload_space_fits_the_tmp_volume(kustomization):
    # The kubelet evicts a pod whose emptyDir passes its sizeLimit; buffered
    # uploads (UPLOAD_SPACE) must leave room in it for the rest of /tmp.
    spec = pod_spec(kustomization)
    limit = quantity(spec.emptydir_mounts()["/tmp"]["sizeLimit"], BYTE_UNITS)
    space = quantity(spec.env()["UPLOAD_SPACE"].replace("m", "Mi").replace("g", "Gi"), BYTE_UNITS)
    assert space <= limit / 2, (space, limit)


# --- Started with the Deployment's settings --------------------------------

@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_image_started_as_the_pod_passes_every_probe(containers, kustomization):
    spec = pod_spec(kustomization)
    c = start_pod(containers, spec)
    wait_ready(c, spec)
    for which in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert probe(c, spec, which), f"{which} failed\n{c.logs()}"
    assert c.request("/").status == 200, c.logs()
    # The entry-point sized its workers from the pod's CPU limit (how many
    # per CPU is test_workers.py's business).
    cpus = math.ceil(quantity(spec.container["resources"]["limits"]["cpu"], CPU_UNITS))
    assert f"{cpus} CPU(s) available: uWSGI " in c.logs()
    # Every process, tini included, is the pod's user: none is root.
    assert {uid for _, uid, _ in c.processes()} == {str(spec.security("runAsUser"))}, c.processes()


def test_readiness_fails_as_soon_as_the_stop_starts(containers, fixture_image):
    spec = pod_spec("overlays/prod")
    c = start_pod(containers, spec, image=fixture_image["image"])
    wait_ready(c, spec)
    results = {}

    def slow_request():
        try:
            results["response"] = c.request("/sleep/3", timeout=15)
        except (OSError, http.client.HTTPException) as exc:
            results["error"] = exc

    client = threading.Thread(target=slow_request)
    client.start()
    c.wait_until(lambda: "sleep start 3" in c.logs(), "the slow request to reach a worker")
    docker("kill", "--signal", "TERM", c.name)
    stopped = time.monotonic()
    # Long before the slow request is done, the probe fails: nginx has
    # closed its port, so the kubelet takes the pod out of the Service.
    c.wait_until(lambda: not probe(c, spec, "readinessProbe"), "the readiness probe to fail", timeout=2,
                 interval=0.05)
    failed_after = time.monotonic() - stopped
    client.join(timeout=20)
    assert "response" in results and results["response"].status == 200, f"{results}\n{c.logs()}"
    assert failed_after < 1, f"readiness still passed {failed_after:.1f} s into the stop"


def test_stop_with_a_stuck_request_ends_within_the_grace_period(containers, fixture_image):
    # The worst case: a request that outlives every drain. The container
    # must still exit on its own before the kubelet's SIGKILL, which comes
    # at terminationGracePeriodSeconds, of which the preStop took its part.
    spec = pod_spec("overlays/prod")
    c = start_pod(containers, spec, image=fixture_image["image"])
    wait_ready(c, spec)
    def stuck_request():
        try:
            c.request("/sleep/120", timeout=130)
        except (OSError, http.client.HTTPException):
            pass  # cut off by the stop, as it must be

    client = threading.Thread(target=stuck_request, daemon=True)
    client.start()
    c.wait_until(lambda: "sleep start 120" in c.logs(), "the stuck request to reach a worker")
    left = spec.grace_seconds() - spec.prestop_seconds()
    started = time.monotonic()
    docker("stop", "--time", str(int(left)), c.name, timeout=left + 30)
    elapsed = time.monotonic() - started
    # docker stop would SIGKILL at `left` seconds; ending a second earlier
    # means the entry-point ended the servers itself.
    assert elapsed < left - 1, f"stop took {elapsed:.1f} s of the {left:.0f} s left after preStop\n{c.logs()}"
