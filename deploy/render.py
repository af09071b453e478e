"""Renders a kustomize overlay of ``deploy/`` into its Kubernetes objects, offline.

    .venv/bin/python -m deploy.render deploy/overlays/cpu-demo

With ``kubectl`` on the PATH this is ``kubectl kustomize``. Without it, a small renderer
of the kustomize features ``deploy/`` uses (resources, namespace, configMapGenerator
with files and ``behavior``, strategic-merge ``patches``): no Python library renders
kustomizations (the ``kustomize`` package on PyPI writes them; others need the Go
binary), and the test suite checks that both render the same objects where kubectl is
present, so this one cannot drift from kustomize's meaning.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

Object = dict[str, Any]
KUSTOMIZATION = "kustomization.yaml"
# Lists that strategic merge patches merge item by item (by this key), as Kubernetes does
# for the fields deploy/ patches; other lists are replaced.
MERGE_KEYS = {"containers": "name", "initContainers": "name", "env": "name",
              "volumes": "name", "ports": "containerPort", "volumeMounts": "mountPath"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding",
                  "CustomResourceDefinition", "PersistentVolume", "StorageClass"}


class RenderError(ValueError):
    pass


def render(folder: Path) -> list[Object]:
    """The overlay's objects: kubectl's rendering when it is installed, else this module's."""
    return render_with_kubectl(folder) if shutil.which("kubectl") else render_here(folder)


def render_with_kubectl(folder: Path) -> list[Object]:
    done = subprocess.run(["kubectl", "kustomize", str(folder)], capture_output=True,
                          text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RenderError(f"kubectl kustomize {folder}: {done.stderr.strip()}")
    return [o for o in yaml.safe_load_all(done.stdout) if o]


def render_here(folder: Path) -> list[Object]:
    return _build(folder.resolve())


def _build(folder: Path) -> list[Object]:
    path = folder / KUSTOMIZATION
    if not path.is_file():
        raise RenderError(f"{folder} has no {KUSTOMIZATION}")
    spec = yaml.safe_load(path.read_text()) or {}
    unknown = set(spec) - {"apiVersion", "kind", "namespace", "resources", "patches",
                           "configMapGenerator", "generatorOptions"}
    if unknown:
        raise RenderError(f"{path}: this renderer does not handle {sorted(unknown)}; "
                          "install kubectl")
    objects: list[Object] = []
    for entry in spec.get("resources", []):
        target = (folder / entry).resolve()
        if target.is_dir():
            objects += _build(target)
        else:
            objects += [o for o in yaml.safe_load_all(target.read_text()) if o]
    options = spec.get("generatorOptions", {})
    if options and options != {"disableNameSuffixHash": True}:
        raise RenderError(f"{path}: only generatorOptions.disableNameSuffixHash: true is "
                          "handled")
    for generator in spec.get("configMapGenerator", []):
        _generate(folder, generator, objects, hashed=not options)
    for patch in spec.get("patches", []):
        if set(patch) != {"path"}:
            raise RenderError(f"{path}: only patches with a path are handled")
        _patch(objects, yaml.safe_load((folder / patch["path"]).read_text()))
    if "namespace" in spec:
        for obj in objects:
            _set_namespace(obj, spec["namespace"])
    return objects


def _generate(folder: Path, generator: Object, objects: list[Object], *, hashed: bool) -> None:
    if hashed:
        raise RenderError("configMapGenerator needs generatorOptions.disableNameSuffixHash")
    data = {}
    for name in generator.get("files", []):
        key, _, file = name.rpartition("=") if "=" in name else (Path(name).name, "", name)
        data[key] = (folder / file).read_text()
    behavior = generator.get("behavior", "create")
    found = [o for o in objects if o.get("kind") == "ConfigMap"
             and o["metadata"]["name"] == generator["name"]]
    if behavior == "create":
        if found:
            raise RenderError(f"ConfigMap {generator['name']} exists; use behavior: replace")
        objects.append({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": generator["name"]}, "data": data})
    elif behavior in ("replace", "merge") and found:
        found[0]["data"] = data if behavior == "replace" else {**found[0]["data"], **data}
    else:
        raise RenderError(f"configMapGenerator {generator['name']}: {behavior} needs an "
                          "existing ConfigMap")


def _patch(objects: list[Object], patch: Object) -> None:
    for obj in objects:
        if (obj.get("kind"), obj["metadata"]["name"]) == (patch["kind"],
                                                          patch["metadata"]["name"]):
            merged = _merge(obj, patch)
            obj.clear()
            obj.update(merged)
            return
    raise RenderError(f"patch target {patch['kind']}/{patch['metadata']['name']} not found")


def _merge(base: Any, patch: Any, field: str = "") -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = _merge(base[key], value, key) if key in base else copy.deepcopy(value)
        return merged
    key = MERGE_KEYS.get(field)
    if key and isinstance(base, list) and isinstance(patch, list):
        # As kustomize orders them: the patch's items (merged with their originals)
        # first, then the originals the patch does not name.
        originals = {item.get(key): item for item in base}
        named = {item.get(key) for item in patch}
        merged_list = [_merge(originals[item.get(key)], item) if item.get(key) in originals
                       else copy.deepcopy(item) for item in patch]
        return merged_list + [copy.deepcopy(item) for item in base if item.get(key) not in named]
    return copy.deepcopy(patch)


def _set_namespace(obj: Object, namespace: str) -> None:
    if obj["kind"] == "Namespace":
        obj["metadata"]["name"] = namespace
    elif obj["kind"] not in CLUSTER_SCOPED:
        obj["metadata"]["namespace"] = namespace
    if obj["kind"] in ("RoleBinding", "ClusterRoleBinding"):
        for subject in obj.get("subjects", []):
            if subject.get("kind") == "ServiceAccount":
                subject["namespace"] = namespace


def main() -> int:
    for name in sys.argv[1:] or ["deploy/overlays/cpu-demo"]:
        sys.stdout.write(yaml.safe_dump_all(render(Path(name)), sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
