"""The Kubernetes manifests under deploy/kubernetes, rendered the way
`kubectl apply -k` renders them, and turned into the docker settings that
give a container the same conditions as the Deployment's pods.

Kubernetes is not needed: kubectl renders the kustomizations offline, and
the tests start the image with docker the way the kubelet would start it.
"""

from __future__ import annotations

import http.client
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from containers import Container
from helpers import REPO, docker, free_port

KUBERNETES = REPO / "deploy" / "kubernetes"
# What a user applies: the two overlays, and the example built on prod.
KUSTOMIZATIONS = ("overlays/dev", "overlays/prod", "examples/ingress")


def render(kustomization: str) -> list[dict]:
    """The objects `kubectl kustomize deploy/kubernetes/KUSTOMIZATION` prints."""
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is not installed: tests/run.sh installs it (Debian's kubernetes-client)"
    result = subprocess.run([kubectl, "kustomize", str(KUBERNETES / kustomization)],
                            capture_output=True, text=True, timeout=60)
    # Newer kubectl warns on stderr about fields kept for kubectl 1.20; only
    # the exit code says whether rendering failed.
    assert result.returncode == 0, f"kubectl kustomize {kustomization} failed:\n{result.stderr}"
    return [obj for obj in yaml.safe_load_all(result.stdout) if obj]


def the(objects: list[dict], kind: str) -> dict:
    """The one object of KIND among OBJECTS."""
    found = [obj for obj in objects if obj["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


@dataclass
class PodSpec:
    """The Deployment's pod, with the ConfigMap its container reads."""

    deployment: dict
    configmaps: dict[str, dict]

    @classmethod
    def of(cls, objects: list[dict]) -> PodSpec:
        maps = {obj["metadata"]["name"]: obj.get("data", {}) for obj in objects if obj["kind"] == "ConfigMap"}
        return cls(the(objects, "Deployment"), maps)

    @property
    def pod(self) -> dict:
        return self.deployment["spec"]["template"]["spec"]

    @property
    def container(self) -> dict:
        containers = self.pod["containers"]
        assert len(containers) == 1, "one container per pod: nginx and uWSGI share the image"
        return containers[0]

    def security(self, key: str):
        """A securityContext setting as the kubelet resolves it: the
        container's own, else the pod's."""
        for context in (self.container.get("securityContext", {}), self.pod.get("securityContext", {})):
            if key in context:
                return context[key]
        return None

    def env(self) -> dict[str, str]:
        """The environment the container gets: envFrom ConfigMaps, then env."""
        found: dict[str, str] = {}
        for source in self.container.get("envFrom", []):
            name = source["configMapRef"]["name"]
            assert name in self.configmaps, f"envFrom names ConfigMap {name}, which is not rendered"
            found.update(self.configmaps[name])
        for var in self.container.get("env", []):
            assert "value" in var, f"{var['name']}: only plain values are supported here"
            found[var["name"]] = var["value"]
        return found

    def port(self, name_or_number) -> int:
        """A probe's or Service's port, by name or number, as a containerPort."""
        for port in self.container.get("ports", []):
            if name_or_number in (port.get("name"), port["containerPort"]):
                return port["containerPort"]
        raise AssertionError(f"port {name_or_number!r} is not a port of the container")

    def emptydir_mounts(self) -> dict[str, dict]:
        """mountPath -> emptyDir settings, for the container's emptyDir volumes."""
        volumes = {vol["name"]: vol["emptyDir"] for vol in self.pod.get("volumes", []) if "emptyDir" in vol}
        return {mount["mountPath"]: volumes[mount["name"]]
                for mount in self.container.get("volumeMounts", []) if mount["name"] in volumes}

    def prestop_command(self) -> list[str]:
        return self.container["lifecycle"]["preStop"]["exec"]["command"]

    def prestop_seconds(self) -> float:
        """The preStop hook's sleep: `sleep N`, which is all it may be."""
        command = self.prestop_command()
        assert Path(command[0]).name == "sleep" and len(command) == 2, command
        return float(command[1])

    def grace_seconds(self) -> int:
        return self.pod["terminationGracePeriodSeconds"]


def quantity(value: str, units: dict[str, float]) -> float:
    """A Kubernetes quantity ("250m", "1", "256Mi") as a number of base units."""
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value))
    assert match and match.group(2) in units, f"unsupported quantity {value!r}"
    return float(match.group(1)) * units[match.group(2)]


CPU_UNITS = {"": 1, "m": 0.001}
BYTE_UNITS = {"": 1, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def docker_args(spec: PodSpec) -> list[str]:
    """`docker run` arguments giving a container the pod's conditions: its
    user, read-only root with the emptyDirs, dropped capabilities, no
    privilege escalation and its CPU and memory limits. Docker's default
    seccomp profile is what RuntimeDefault means for Docker."""
    args = []
    user, group = spec.security("runAsUser"), spec.security("runAsGroup")
    if user is not None:
        # Without runAsGroup both take the group the image gives that uid.
        args += ["--user", str(user) if group is None else f"{user}:{group}"]
    if spec.security("readOnlyRootFilesystem"):
        args.append("--read-only")
    for path, settings in spec.emptydir_mounts().items():
        size = settings.get("sizeLimit")
        args += ["--tmpfs", f"{path}:size={int(quantity(size, BYTE_UNITS))}" if size else path]
    if "ALL" in (spec.security("capabilities") or {}).get("drop", []):
        args += ["--cap-drop", "ALL"]
    if spec.security("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    limits = spec.container.get("resources", {}).get("limits", {})
    if "cpu" in limits:
        args += ["--cpus", str(quantity(limits["cpu"], CPU_UNITS))]
    if "memory" in limits:
        args += ["--memory", str(int(quantity(limits["memory"], BYTE_UNITS)))]
    return args


def start_pod(containers, spec: PodSpec, image: str | None = None) -> Container:
    """Runs the image as the Deployment's container would run, but on a free
    port: every container here shares the host network, so the ConfigMap's
    PORT would collide (METRICS_PORT too). The probes are sent to that port."""
    env = {k: v for k, v in spec.env().items() if k != "PORT"}
    if env.get("METRICS_PORT"):
        env["METRICS_PORT"] = str(free_port())
    return containers.run(env=env, docker_args=tuple(docker_args(spec)), image=image)


def probe(container: Container, spec: PodSpec, which: str) -> bool:
    """One run of the container's WHICH probe (startupProbe, ...), judged as
    the kubelet judges it: an httpGet passes on a status from 200 to 399
    within timeoutSeconds; an exec probe on exit code 0."""
    settings = spec.container[which]
    timeout = settings.get("timeoutSeconds", 1)
    if "httpGet" in settings:
        get = settings["httpGet"]
        assert spec.port(get["port"]) == int(spec.env()["PORT"]), "the probe's port is not PORT"
        conn = http.client.HTTPConnection("127.0.0.1", container.port, timeout=timeout)
        try:
            conn.request("GET", get["path"], headers={"User-Agent": "kube-probe/flaskbox-test"})
            return 200 <= conn.getresponse().status < 400
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()
    if "exec" in settings:
        command = settings["exec"]["command"]
        return docker("exec", container.name, *command, check=False, timeout=timeout + 5).returncode == 0
    raise AssertionError(f"{which}: only httpGet and exec probes are supported here")


def wait_ready(container: Container, spec: PodSpec) -> None:
    """What the kubelet does before a pod joins the Service: the startup
    probe until it passes, then the readiness probe until it passes, each at
    its own periodSeconds. The startup probe's budget is the time limit."""
    startup = spec.container["startupProbe"]
    budget = startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3)
    for which in ("startupProbe", "readinessProbe"):
        period = spec.container[which].get("periodSeconds", 10)
        container.wait_until(lambda which=which: probe(container, spec, which), f"the {which} to pass",
                             timeout=budget, interval=period)


def image_file(image: str, path: str) -> str:
    """A file as it is inside the image."""
    return docker("run", "--rm", "--network", "host", "--entrypoint", "cat", image, path).stdout
