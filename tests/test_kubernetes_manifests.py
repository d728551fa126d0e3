"""deploy/kubernetes: every kustomization renders, every object it renders
validates strictly against Kubernetes' own schemas (offline, from the
kubernetes-validate package), and the objects fit together."""

import copy
import functools

import kubernetes_validate
import pytest

from manifests import KUSTOMIZATIONS, PodSpec, render, the

# The oldest Kubernetes the manifests are for (the HPA's autoscaling/v2 is
# there from 1.23, Pod Security admission from 1.25) and the newest the
# pinned kubernetes-validate carries schemas for.
KUBERNETES_VERSIONS = ("1.25.0", "1.37.0")
# What `kubectl apply -k` of any overlay must create.
REQUIRED_KINDS = {"Namespace", "ConfigMap", "Service", "Deployment", "HorizontalPodAutoscaler",
                  "PodDisruptionBudget"}


@functools.cache
def rendered(kustomization: str) -> tuple[dict, ...]:
    return tuple(render(kustomization))


def validation_errors(objects, version: str) -> list[str]:
    errors = []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError) as exc:
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {getattr(exc, 'message', exc)}")
    return errors


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_rendered_object_validates_strictly(kustomization, version):
    objects = rendered(kustomization)
    assert REQUIRED_KINDS <= {obj["kind"] for obj in objects}
    errors = validation_errors(objects, version)
    assert not errors, f"{kustomization} against Kubernetes {version}:\n" + "\n".join(errors)


def test_strict_validation_catches_a_misplaced_field():
    # The validator must not accept what the API server would reject: a
    # setting one level off (here a container setting on the pod) and a
    # number given as a string.
    deployment = copy.deepcopy(the(list(rendered("overlays/prod")), "Deployment"))
    pod = deployment["spec"]["template"]["spec"]
    pod["readOnlyRootFilesystem"] = True
    assert validation_errors([deployment], KUBERNETES_VERSIONS[0])
    del pod["readOnlyRootFilesystem"]
    pod["containers"][0]["ports"][0]["containerPort"] = "8080"
    assert validation_errors([deployment], KUBERNETES_VERSIONS[0])


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_everything_lands_in_the_overlays_restricted_namespace(kustomization):
    objects = rendered(kustomization)
    namespace = the(list(objects), "Namespace")
    name = namespace["metadata"]["name"]
    # The API server then refuses any pod that loosens the securityContext.
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    stray = [f"{obj['kind']}/{obj['metadata']['name']}" for obj in objects
             if obj["kind"] != "Namespace" and obj["metadata"].get("namespace") != name]
    assert not stray, f"not in namespace {name}: {stray}"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_service_autoscaler_and_budget_find_the_pods(kustomization):
    objects = list(rendered(kustomization))
    spec = PodSpec.of(objects)
    deployment = spec.deployment
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    service = the(objects, "Service")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    for port in service["spec"]["ports"]:
        spec.port(port["targetPort"])
    hpa = the(objects, "HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert {m["resource"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Resource"} == {"cpu"}
    # The HPA owns the count: a `replicas` here would reset it on each apply.
    assert "replicas" not in deployment["spec"]
    pdb = the(objects, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    for ingress in (obj for obj in objects if obj["kind"] == "Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                assert backend["name"] == service["metadata"]["name"]
                assert backend["port"]["name"] in {port["name"] for port in service["spec"]["ports"]}


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_rollouts_never_drop_capacity(kustomization):
    strategy = the(list(rendered(kustomization)), "Deployment")["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0
    assert strategy["rollingUpdate"]["maxSurge"] not in (0, "0%")


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_pod_is_locked_down(kustomization):
    spec = PodSpec.of(list(rendered(kustomization)))
    assert spec.security("runAsNonRoot") is True
    assert spec.security("readOnlyRootFilesystem") is True
    assert spec.security("allowPrivilegeEscalation") is False
    assert spec.security("capabilities") == {"drop": ["ALL"]}
    assert spec.security("seccompProfile") == {"type": "RuntimeDefault"}
    assert "/tmp" in spec.emptydir_mounts()
    assert spec.pod["automountServiceAccountToken"] is False


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_pod_declares_resources_probes_and_a_prestop_sleep(kustomization):
    spec = PodSpec.of(list(rendered(kustomization)))
    resources = spec.container["resources"]
    for kind in ("requests", "limits"):
        assert set(resources[kind]) == {"cpu", "memory"}, resources
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert probe in spec.container
    assert spec.prestop_seconds() > 0
    assert spec.grace_seconds() > spec.prestop_seconds()
