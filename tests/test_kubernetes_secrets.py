"""deploy/kubernetes/examples/secrets: the production pod with a generic
Secret (the app's SECRET_KEY, as SECRET_KEY_FILE) and a TLS Secret (as
TLS_CERT and TLS_KEY) mounted as volumes. The example renders and validates
strictly; then the image runs as its pod would (manifests.docker_args),
with both volumes laid out as the kubelet lays them out: files reached
through the `..data` link, owned by root and the pod's fsGroup, mode 0440.
The app gets SECRET_KEY, nginx serves the Secret's certificate, and the
value is in neither `docker inspect` nor the log."""

from __future__ import annotations

import http.client
import os
import ssl
import subprocess
import uuid

from test_kubernetes_manifests import KUBERNETES_VERSIONS, validation_errors

from helpers import free_port
from manifests import PodSpec, docker_args, render

EXAMPLE = "examples/secrets"


def secret_volume(folder, files: dict[str, bytes], spec: dict, group: int) -> None:
    """What the kubelet makes of a Secret volume: the files in a dated
    folder, `..data` pointing at it, and each name a link through it."""
    dated = folder / "..2026_01_01_00_00_00.000000000"
    dated.mkdir(parents=True)
    for name, data in files.items():
        (dated / name).write_bytes(data)
        os.chown(dated / name, 0, group)
        (dated / name).chmod(spec["defaultMode"])
        (folder / name).symlink_to(f"..data/{name}")
    (folder / "..data").symlink_to(dated.name)
    for path in (folder, dated):
        os.chown(path, 0, group)
        path.chmod(0o1777 if path == folder else 0o755)


def test_the_example_validates_strictly():
    objects = render(EXAMPLE)
    for version in KUBERNETES_VERSIONS:
        assert not validation_errors(objects, version), version


def test_the_pod_reads_its_secrets_from_the_volumes(containers, fixture_image, tmp_path):
    spec = PodSpec.of(render(EXAMPLE))
    env = spec.env()
    group = spec.pod["securityContext"]["fsGroup"]
    volumes = {v["name"]: v["secret"] for v in spec.pod["volumes"] if "secret" in v}
    mounts = {m["name"]: m["mountPath"] for m in spec.container["volumeMounts"]}
    value = f"secret-{uuid.uuid4().hex}"
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost"],
                   check=True, capture_output=True, timeout=60)
    contents = {"app-secrets": {"secret-key": value.encode()},
                "tls": {"tls.crt": cert.read_bytes(), "tls.key": key.read_bytes()}}
    tmp_path.chmod(0o755)
    args = list(docker_args(spec))
    for name, files in contents.items():
        secret_volume(tmp_path / name, files, volumes[name], group)
        args += ["-v", f"{tmp_path / name}:{mounts[name]}:ro"]
    # The files the settings name are the volumes' (the ConfigMap and the
    # patch agree).
    assert env["SECRET_KEY_FILE"] == f"{mounts['app-secrets']}/secret-key"
    assert (env["TLS_CERT"], env["TLS_KEY"]) == (f"{mounts['tls']}/tls.crt", f"{mounts['tls']}/tls.key")
    assert spec.port("https") == int(env["TLS_PORT"])
    tls_port = free_port()
    env = {**{k: v for k, v in env.items() if k != "PORT"}, "TLS_PORT": str(tls_port),
           "METRICS_PORT": str(free_port())}
    pod = containers.run(env=env, docker_args=tuple(args), image=fixture_image["image"])
    assert pod.wait_http("/env/SECRET_KEY").json() == {"value": value}
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False
    conn = http.client.HTTPSConnection("127.0.0.1", tls_port, timeout=10, context=context)
    try:
        conn.request("GET", "/env/SECRET_KEY")
        response = conn.getresponse()
        assert response.status == 200 and value in response.read().decode()
    finally:
        conn.close()
    assert not [line for line in pod.inspect()["Config"]["Env"] if value in line]
    assert value not in pod.logs()
