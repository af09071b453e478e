"""Every overlay in deploy/ renders and validates offline, and agrees with the gateway.

Core objects are checked against the Kubernetes OpenAPI schemas (``kubernetes-validate``,
strict: unknown fields are errors); the custom resources (InferencePool, Gateway,
HTTPRoute, ServiceMonitor, PrometheusRule) against the JSON schemas in deploy/schemas,
written from their upstream API references. Then the pieces are checked against each
other: the gateway's configuration against config/gateway.yaml and the Settings model,
the resolver store and the base model as the engines see them, the router's wiring.
"""

from __future__ import annotations

import json
import re
import shutil
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from deploy.generate import generated
from deploy.render import render, render_here, render_with_kubectl
from gateway.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OVERLAYS = sorted(p.name for p in (DEPLOY / "overlays").iterdir() if p.is_dir())
KUBERNETES = "1.32"
Object = dict[str, Any]


@cache
def objects(overlay: str) -> tuple[Object, ...]:
    return tuple(render(DEPLOY / "overlays" / overlay))


def find(overlay: str, kind: str, name: str) -> Object:
    [found] = [o for o in objects(overlay)
               if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def gateway_config(overlay: str) -> dict[str, Any]:
    text = find(overlay, "ConfigMap", "adapter-gateway-config")["data"]["gateway.yaml"]
    config: dict[str, Any] = yaml.safe_load(text)
    return config


def container(overlay: str, deployment: str) -> Object:
    spec = find(overlay, "Deployment", deployment)["spec"]["template"]["spec"]
    first: Object = spec["containers"][0]
    return first


def flags(args: list[str]) -> dict[str, str]:
    """``--name=value`` and ``--name`` arguments by name."""
    return {name: value for name, _, value in (a[2:].partition("=") for a in args)}


def key_paths(tree: Any, prefix: str = "") -> set[str]:
    if not isinstance(tree, dict):
        return set()
    paths = set()
    for key, value in tree.items():
        path = f"{prefix}{key}"
        paths |= {path} | key_paths(value, path + ".")
    return paths


def test_there_are_the_documented_overlays() -> None:
    assert OVERLAYS == ["cpu-demo", "gpu"]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_fallback_renderer_renders_what_kubectl_renders(overlay: str) -> None:
    def by_name(rendered: list[Object]) -> dict[tuple[str, str], Object]:
        return {(o["kind"], o["metadata"]["name"]): o for o in rendered}

    folder = DEPLOY / "overlays" / overlay
    assert by_name(render_here(folder)) == by_name(render_with_kubectl(folder))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates(overlay: str) -> None:
    schemas = {p.stem: json.loads(p.read_text()) for p in (DEPLOY / "schemas").glob("*.json")}
    checked = []
    for obj in objects(overlay):
        where = f"{overlay}: {obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] in schemas:
            jsonschema.validate(obj, schemas[obj["kind"]])
        else:
            try:
                kubernetes_validate.validate(obj, KUBERNETES, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{where}: {'.'.join(map(str, exc.path))}: {exc.message}")
        checked.append(obj["kind"])
    assert {"InferencePool", "HTTPRoute", "Deployment", "HorizontalPodAutoscaler",
            "PodDisruptionBudget", "PrometheusRule", "ServiceMonitor"} <= set(checked)
    assert all(o["metadata"].get("namespace") == "adapter-gateway" for o in objects(overlay)
               if o["kind"] != "Namespace")


def test_the_validation_can_fail() -> None:
    broken = json.loads(json.dumps(find("gpu", "Deployment", "adapter-gateway")))
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)
    pool = json.loads(json.dumps(find("gpu", "InferencePool", "vllm-pool")))
    pool["spec"]["targetPortNumber"] = 8000  # the retired v1alpha2 field
    schema = json.loads((DEPLOY / "schemas" / "InferencePool.json").read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(pool, schema)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_gateway_configuration_is_valid_and_uses_only_documented_keys(overlay: str) -> None:
    config = gateway_config(overlay)
    settings = Settings.model_validate(config)
    documented = key_paths(yaml.safe_load((ROOT / "config" / "gateway.yaml").read_text()))
    assert key_paths(config) - documented == set()
    assert settings.engine.mode == "remote" and settings.adapters.publish == "resolver"
    base = ROOT / settings.adapters.base_model_config.relative_to("/app")  # type: ignore[union-attr]
    assert base.is_file(), f"{base} is not shipped in the image"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_engines_load_what_the_gateway_publishes(overlay: str) -> None:
    settings = Settings.model_validate(gateway_config(overlay))
    vllm = container(overlay, "vllm")
    args, env = flags(vllm["args"]), {e["name"]: e.get("value") for e in vllm["env"]}
    # The resolver loads only adapters whose config names the servers' --model exactly.
    assert args["model"] == settings.adapters.resolver.base_model
    assert args["served-model-name"] == settings.engine.model
    assert env["VLLM_PLUGINS"] == "lora_filesystem_resolver"
    assert env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    assert "enable-lora" in args
    assert int(args["max-lora-rank"]) == settings.engine.max_lora_rank
    assert int(args["max-loras"]) == settings.engine.max_loras
    assert int(args["max-model-len"]) == settings.engine.max_model_len
    # One volume, seen by both at the paths each is told.
    gateway = container(overlay, "adapter-gateway")
    mounts = {m["mountPath"]: m["name"] for m in gateway["volumeMounts"]}
    engine_mounts = {m["mountPath"]: m["name"] for m in vllm["volumeMounts"]}
    resolver_dir = str(settings.adapters.resolver.dir)
    assert env["VLLM_LORA_RESOLVER_CACHE_DIR"] == resolver_dir
    assert mounts[resolver_dir] == engine_mounts[resolver_dir] == "lora-resolver"
    assert {str(r) for r in settings.adapters.roots} <= set(mounts)
    assert mounts[str(settings.adapters.roots[0])] == "adapter-store"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_router_is_wired_to_the_pool(overlay: str) -> None:
    pool = find(overlay, "InferencePool", "vllm-pool")["spec"]
    engine = find(overlay, "Deployment", "vllm")["spec"]["template"]
    assert pool["selector"]["matchLabels"].items() <= engine["metadata"]["labels"].items()
    ports = {p["containerPort"] for p in engine["spec"]["containers"][0]["ports"]}
    assert {p["number"] for p in pool["targetPorts"]} <= ports
    picker = find(overlay, "Service", pool["endpointPickerRef"]["name"])
    assert pool["endpointPickerRef"]["port"]["number"] in {p["port"] for p in
                                                           picker["spec"]["ports"]}
    epp = flags(container(overlay, "vllm-pool-epp")["args"])
    assert epp["pool-name"] == "vllm-pool"
    config = yaml.safe_load(find(overlay, "ConfigMap", "vllm-pool-epp-config")["data"]
                            ["epp-config.yaml"])
    scorers = {p["pluginRef"] for p in config["schedulingProfiles"][0]["plugins"]}
    assert "lora-affinity-scorer" in scorers
    route = find(overlay, "HTTPRoute", "vllm-pool")["spec"]
    [backend] = [b for rule in route["rules"] for b in rule.get("backendRefs", ())]
    assert (backend["kind"], backend["name"]) == ("InferencePool", "vllm-pool")
    # The gateway sends every engine request, retries included, to the router.
    [gateway_name] = [p["name"] for p in route["parentRefs"]]
    [url] = Settings.model_validate(gateway_config(overlay)).engine.urls
    assert re.fullmatch(rf"http://{gateway_name}-istio(:\d+)?/?", url)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_gateway_drains_before_it_is_killed(overlay: str) -> None:
    settings = Settings.model_validate(gateway_config(overlay))
    pod = find(overlay, "Deployment", "adapter-gateway")["spec"]["template"]["spec"]
    gateway = pod["containers"][0]
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/health"
    pre_stop = gateway["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > pre_stop + settings.drain_deadline_s()
    budget = find(overlay, "PodDisruptionBudget", "adapter-gateway")["spec"]
    scaler = find(overlay, "HorizontalPodAutoscaler", "adapter-gateway")["spec"]
    assert budget["minAvailable"] < scaler["minReplicas"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rollout_notices_are_shared_and_books_are_not(overlay: str) -> None:
    """A replica that starts during a rollout learns of it from the notices: they live on
    a volume every replica mounts; each replica's own book stays on its pod."""
    adapters = Settings.model_validate(gateway_config(overlay)).adapters
    pod = find(overlay, "Deployment", "adapter-gateway")["spec"]["template"]["spec"]
    mounts = pod["containers"][0]["volumeMounts"]
    volumes = {v["name"]: v for v in pod["volumes"]}

    def volume_of(path: Path) -> dict[str, Any]:
        (mount,) = [m for m in mounts if path.is_relative_to(m["mountPath"])]
        assert not mount.get("readOnly")
        return dict(volumes[mount["name"]])

    notices = adapters.notices_folder()
    assert notices is not None
    assert "persistentVolumeClaim" in volume_of(notices)
    assert "emptyDir" in volume_of(adapters.rollouts_file)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_captured_examples_go_to_a_mounted_volume_a_folder_per_replica(overlay: str) -> None:
    """The root filesystem is read-only, and capture's default folder is relative to it."""
    pod = find(overlay, "Deployment", "adapter-gateway")["spec"]["template"]["spec"]
    gateway = pod["containers"][0]
    env = {e["name"]: e for e in gateway["env"]}
    folder = env["GATEWAY_STRUCTURED__CAPTURE__DIR"]["value"]
    assert folder.endswith("/$(POD_NAME)")
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    (mount,) = [m for m in gateway["volumeMounts"]
                if Path(folder).is_relative_to(m["mountPath"])]
    assert not mount.get("readOnly")
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    claim = find(overlay, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    assert "ReadWriteMany" in claim["spec"]["accessModes"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_prometheus_scrapes_the_gateway_with_a_metrics_key(overlay: str) -> None:
    """/metrics needs a key once keys exist: the ServiceMonitor brings the one the gateway
    gives the `metrics` scope, from the same secret."""
    settings = Settings.model_validate(gateway_config(overlay))
    assert "/metrics" not in settings.auth.public_paths
    scrapers = {k.key_env for k in settings.auth.keys if k.scope == "metrics"}
    env = {e["name"]: e for e in container(overlay, "adapter-gateway")["env"]}
    (endpoint,) = find(overlay, "ServiceMonitor", "adapter-gateway")["spec"]["endpoints"]
    secret = endpoint["authorization"]["credentials"]
    assert endpoint["authorization"]["type"] == "Bearer"
    assert any(env[name]["valueFrom"]["secretKeyRef"] == secret for name in scrapers)


WORKLOADS = ("adapter-gateway", "vllm", "vllm-pool-epp")


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("name", WORKLOADS)
def test_every_pod_is_hardened(overlay: str, name: str) -> None:
    """Not root, no privilege escalation, no capabilities, a read-only root filesystem
    (writable mounts where needed), and requests and a memory limit."""
    pod = find(overlay, "Deployment", name)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    for each in pod["containers"]:
        context = each["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"]["drop"] == ["ALL"]
        assert each["resources"]["requests"] and each["resources"]["limits"]["memory"]
        assert any(m["mountPath"] == "/tmp" for m in each.get("volumeMounts", ())) or (
            name == "vllm-pool-epp")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_engine_pool_is_reachable_only_through_the_gateway(overlay: str) -> None:
    """No LoadBalancer in front of the pool, no runtime LoRA route through the router, and
    network policies that let only the gateway (and the router's own parts) in."""
    annotations = find(overlay, "Gateway", "inference-gateway")["metadata"]["annotations"]
    assert annotations["networking.istio.io/service-type"] == "ClusterIP"
    assert not [o for o in objects(overlay) if o["kind"] == "Service"
                and o["spec"].get("type") in ("LoadBalancer", "NodePort")]
    route = find(overlay, "HTTPRoute", "vllm-pool")["spec"]
    blocked = [rule for rule in route["rules"] if not rule.get("backendRefs")]
    paths = {m["path"]["value"] for rule in blocked for m in rule["matches"]
             if m["path"]["type"] == "Exact"}
    assert paths == {"/v1/load_lora_adapter", "/v1/unload_lora_adapter"}
    envoy = {"gateway.networking.k8s.io/gateway-name": "inference-gateway"}
    gateway = {"app.kubernetes.io/name": "adapter-gateway"}
    allowed = {name: _sources(find(overlay, "NetworkPolicy", name))
               for name in ("vllm-pool", "vllm-pool-epp", "inference-gateway")}
    assert allowed["inference-gateway"] == [gateway]
    assert allowed["vllm-pool-epp"] == [envoy, {"namespace": "monitoring"}]
    assert allowed["vllm-pool"] == [envoy, gateway, {"app": "vllm-pool-epp"},
                                    {"namespace": "monitoring"}]
    for name in ("vllm-pool", "vllm-pool-epp", "inference-gateway"):
        policy = find(overlay, "NetworkPolicy", name)["spec"]
        assert policy["policyTypes"] == ["Ingress"]
        pods = [o for o in objects(overlay) if o["kind"] == "Deployment" and all(
            o["spec"]["template"]["metadata"]["labels"].get(k) == v
            for k, v in policy["podSelector"]["matchLabels"].items())]
        assert pods or name == "inference-gateway"  # Envoy's pods are Istio's own


def _sources(policy: Object) -> list[dict[str, str]]:
    found: list[dict[str, str]] = []
    for rule in policy["spec"]["ingress"]:
        for peer in rule["from"]:
            if "namespaceSelector" in peer:
                found.append({"namespace": peer["namespaceSelector"]["matchLabels"][
                    "kubernetes.io/metadata.name"]})
            else:
                found.append(dict(peer["podSelector"]["matchLabels"]))
    return found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_stored_responses_live_on_a_volume_that_holds_them(overlay: str) -> None:
    """The root filesystem is read-only: the SQLite file needs a writable mounted volume,
    of its own, sized for the retention limit and the write-ahead log beside it."""
    settings = Settings.model_validate(gateway_config(overlay)).responses
    pod = find(overlay, "Deployment", "adapter-gateway")["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
    folder = str(settings.store_file.parent)
    assert folder in mounts and not mounts[folder].get("readOnly")
    (volume,) = [v for v in pod["volumes"] if v["name"] == mounts[folder]["name"]]
    size = volume["emptyDir"]["sizeLimit"]
    assert size.endswith("Gi") and int(size[:-2]) * 1024**3 >= 1.5 * settings.max_bytes


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rules_and_dashboard_are_the_shipped_ones(overlay: str) -> None:
    for path, text in generated().items():
        assert path.read_text() == text, f"{path} is out of date: python -m deploy.generate"
    rules = find(overlay, "PrometheusRule", "adapter-gateway-rules")["spec"]["groups"]
    shipped = [group for name in ("recording.yml", "alerts.yml") for group in yaml.safe_load(
        (ROOT / "config" / "prometheus" / "rules" / name).read_text())["groups"]]
    assert rules == shipped
    board = find(overlay, "ConfigMap", "adapter-gateway-dashboard")["data"]
    assert json.loads(board["adapter-gateway.json"]) == json.loads(
        (ROOT / "config" / "grafana" / "dashboard.json").read_text())


TOOL_PARSERS = {"cpu-demo": "hermes", "gpu": "llama3_json"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_engines_parse_tool_calls_with_the_templates_format(overlay: str) -> None:
    """Tool calling on: a chat template that teaches the call format its parser reads, at a
    path the engine container has (the image's config/, or the mounted ConfigMap)."""
    engine = container(overlay, "vllm")
    args = flags(engine["args"])
    assert "enable-auto-tool-choice" in args
    assert args["tool-call-parser"] == TOOL_PARSERS[overlay]
    template = Path(args["chat-template"])
    if overlay == "cpu-demo":
        assert template.is_relative_to("/app") and (ROOT / template.relative_to("/app")).is_file()
        return
    mounts = {m["mountPath"]: m["name"] for m in engine["volumeMounts"]}
    volume = mounts[str(template.parent)]
    spec = find(overlay, "Deployment", "vllm")["spec"]["template"]["spec"]
    (config_map,) = [v["configMap"]["name"] for v in spec["volumes"] if v["name"] == volume]
    assert template.name in find(overlay, "ConfigMap", config_map)["data"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_grammars_are_checked_with_the_engines_compiler_and_the_served_tokenizer(
        overlay: str) -> None:
    engine = container(overlay, "vllm")
    assert "--structured-outputs-config.backend=xgrammar" in engine["args"]
    check = gateway_config(overlay)["structured"]["grammar_check"]
    served = flags(engine["args"])["model"]
    assert check["tokenizer"] == served
    gateway = container(overlay, "adapter-gateway")
    mounts = [m["mountPath"] for m in gateway.get("volumeMounts", [])]
    # The image holds the bundled model; anything else comes from a mounted volume.
    assert served.startswith("/models/SmolLM2") or any(
        served.startswith(m.rstrip("/") + "/") for m in mounts)
    limit = gateway["resources"]["limits"]["memory"]
    assert limit.endswith("Gi")
    # The gateway and the worker's tokenizer take about 1 GiB each, the compile the rest.
    assert int(limit[:-2]) * 1024 >= 2048 + check["memory_limit_mib"]
