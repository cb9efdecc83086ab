"""A small Kustomize, for rendering deploy/k8s/ in tests on machines without the kustomize
binary (kubectl's built-in kustomize is used to cross-check it where present).

It implements the subset the manifests use and refuses anything else, so a kustomization
that grows a feature fails here loudly rather than rendering wrong:

- ``resources``: files (multi-document YAML) and directories holding a kustomization;
- ``configMapGenerator`` (``literals``, ``files``; ``behavior`` create, merge, replace) with
  Kustomize's content-hash name suffix, and every reference from a pod spec renamed to match;
- ``patches`` with a ``path`` to a strategic-merge patch, matched by kind and name
  (containers, env, volumes by ``name``, volumeMounts by ``mountPath``, ports by
  ``containerPort``; other lists are replaced, ``null`` deletes a key);
- ``namespace``, ``labels`` (metadata labels only: ``includeSelectors``/``includeTemplates``
  false), ``images`` (``newName``, ``newTag``, ``digest``).

Order as in Kustomize: resources, generators, patches, namespace, labels, images; the
name hashes are applied once, on the final content, at the top level.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

SUPPORTED = {"apiVersion", "kind", "resources", "configMapGenerator", "patches", "namespace",
             "labels", "images", "generatorOptions"}
#: Strategic-merge keys of the lists the patches touch (Kubernetes' patchMergeKey).
MERGE_KEYS = {"containers": "name", "initContainers": "name", "env": "name",
              "volumes": "name", "volumeMounts": "mountPath", "ports": "containerPort"}
#: API groups whose objects have the built-in strategic-merge schema; custom resources
#: (KEDA, the Prometheus operator) are merged with lists replaced, as Kustomize does.
BUILTIN_GROUPS = {"v1", "apps/v1", "batch/v1", "policy/v1", "autoscaling/v2"}
_NEEDS_HASH = "__needs_hash__"


class KustomizeError(ValueError):
    pass


def build(directory: Path) -> list[dict[str, Any]]:
    """Render the kustomization in ``directory``, like ``kustomize build``."""
    objects = _build(directory)
    return _apply_hashes(objects)


def _build(directory: Path) -> list[dict[str, Any]]:
    path = directory / "kustomization.yaml"
    k = yaml.safe_load(path.read_text())
    unknown = set(k) - SUPPORTED
    if unknown:
        raise KustomizeError(f"{path}: kustomize_lite does not implement {sorted(unknown)}")
    objects: list[dict[str, Any]] = []
    for entry in k.get("resources", []):
        target = directory / entry
        objects += _build(target) if target.is_dir() else list(_load(target))
    hashed = not k.get("generatorOptions", {}).get("disableNameSuffixHash", False)
    for gen in k.get("configMapGenerator", []):
        objects = _generate(directory, gen, objects, hashed)
    for patch in k.get("patches", []):
        if set(patch) != {"path"}:
            raise KustomizeError(f"{path}: only `patches: - path:` is implemented")
        for doc in _load(directory / patch["path"]):
            objects = _patch(objects, doc)
    if "namespace" in k:
        for obj in objects:
            obj["metadata"]["namespace"] = k["namespace"]
    for label in k.get("labels", []):
        if label.get("includeSelectors") or label.get("includeTemplates"):
            raise KustomizeError(f"{path}: labels with selectors/templates not implemented")
        for obj in objects:
            obj["metadata"].setdefault("labels", {}).update(label["pairs"])
    for image in k.get("images", []):
        for obj in objects:
            _set_image(obj, image)
    return objects


def _load(path: Path) -> Iterator[dict[str, Any]]:
    for doc in yaml.safe_load_all(path.read_text()):
        if doc:
            yield doc


def _generate(directory: Path, gen: dict[str, Any], objects: list[dict[str, Any]],
              hashed: bool) -> list[dict[str, Any]]:
    unknown = set(gen) - {"name", "literals", "files", "behavior"}
    if unknown:
        raise KustomizeError(f"configMapGenerator {gen['name']}: {sorted(unknown)}")
    data: dict[str, str] = {}
    for literal in gen.get("literals", []):
        key, _, value = literal.partition("=")
        data[key] = value
    for entry in gen.get("files", []):
        key, _, file = entry.rpartition("=")
        data[key or Path(file).name] = (directory / file).read_text()
    behavior = gen.get("behavior", "create")
    existing = [o for o in objects
                if o["kind"] == "ConfigMap" and o["metadata"]["name"] == gen["name"]]
    if behavior == "create":
        if existing:
            raise KustomizeError(f"ConfigMap {gen['name']} already exists")
        objects.append({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": gen["name"]}, "data": data,
                        _NEEDS_HASH: hashed})
        return objects
    if len(existing) != 1:
        raise KustomizeError(f"{behavior}: no ConfigMap {gen['name']} to {behavior}")
    if behavior == "merge":
        existing[0]["data"] = {**existing[0].get("data", {}), **data}
    elif behavior == "replace":
        existing[0]["data"] = data
    else:
        raise KustomizeError(f"behavior {behavior}")
    return objects


def _patch(objects: list[dict[str, Any]], patch: dict[str, Any]) -> list[dict[str, Any]]:
    name = patch["metadata"]["name"]
    targets = [o for o in objects if o["kind"] == patch["kind"]
               and o["metadata"]["name"] == name
               and o["apiVersion"].split("/")[0] == patch["apiVersion"].split("/")[0]]
    if len(targets) != 1:
        raise KustomizeError(f"patch {patch['kind']}/{name}: {len(targets)} targets")
    target = targets[0]
    builtin = target["apiVersion"] in BUILTIN_GROUPS
    merged = _merge(target, patch, builtin)
    return [merged if o is target else o for o in objects]


def _merge(base: Any, patch: Any, builtin: bool, field: str = "") -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            elif key in out:
                out[key] = _merge(out[key], value, builtin, key)
            else:
                out[key] = copy.deepcopy(value)
        return out
    key = MERGE_KEYS.get(field) if builtin else None
    if key and isinstance(base, list) and isinstance(patch, list):
        out = list(base)
        added = []
        for item in patch:
            index = next((i for i, b in enumerate(out) if b.get(key) == item.get(key)), None)
            if index is None:
                added.append(copy.deepcopy(item))
            else:
                out[index] = _merge(out[index], item, builtin)
        # Kustomize puts the patch's new items before the existing ones.
        return added + out
    return copy.deepcopy(patch)


def pod_specs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The pod specs inside a workload object (Deployment, Job, CronJob, ...)."""
    spec = obj.get("spec", {})
    if obj["kind"] == "CronJob":
        return [spec["jobTemplate"]["spec"]["template"]["spec"]]
    if "template" in spec and "spec" in spec["template"]:
        return [spec["template"]["spec"]]
    if obj["kind"] == "Pod":
        return [spec]
    return []


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return pod.get("initContainers", []) + pod.get("containers", [])


def _set_image(obj: dict[str, Any], image: dict[str, Any]) -> None:
    for pod in pod_specs(obj):
        for c in containers(pod):
            name = c["image"].split("@")[0]
            if ":" in name.rsplit("/", 1)[-1]:
                name = name.rsplit(":", 1)[0]
            if name != image["name"]:
                continue
            tag = c["image"][len(name):]
            name = image.get("newName", name)
            if "digest" in image:
                tag = "@" + image["digest"]
            elif "newTag" in image:
                tag = ":" + image["newTag"]
            c["image"] = name + tag


def _apply_hashes(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    renamed: dict[str, str] = {}
    for obj in objects:
        if obj.pop(_NEEDS_HASH, False):
            old = obj["metadata"]["name"]
            obj["metadata"]["name"] = f"{old}-{config_map_hash(old, obj.get('data', {}))}"
            renamed[old] = obj["metadata"]["name"]
    for obj in objects:
        for pod in pod_specs(obj):
            for volume in pod.get("volumes", []):
                if "configMap" in volume:
                    _rename(volume["configMap"], renamed)
                for source in volume.get("projected", {}).get("sources", []):
                    if "configMap" in source:
                        _rename(source["configMap"], renamed)
            for c in containers(pod):
                for env_from in c.get("envFrom", []):
                    if "configMapRef" in env_from:
                        _rename(env_from["configMapRef"], renamed)
                for env in c.get("env", []):
                    ref = env.get("valueFrom", {}).get("configMapKeyRef")
                    if ref is not None:
                        _rename(ref, renamed)
    return objects


def _rename(ref: dict[str, Any], renamed: dict[str, str]) -> None:
    ref["name"] = renamed.get(ref["name"], ref["name"])


def config_map_hash(name: str, data: dict[str, str]) -> str:
    """Kustomize's name suffix: SHA-256 of the Go JSON encoding of kind, name and data, its
    first 10 hex digits with 0, 1, 3, a, e replaced (so no suffix spells a word).

    The name is encoded empty: Kustomize (v5) looks it up with the single path segment
    "metadata/name", which finds nothing, so in practice only the data counts (checked
    against kubectl's kustomize by tests/unit/test_k8s.py)."""
    del name
    encoded = _go_json({"data": data, "kind": "ConfigMap", "name": ""})
    digest = hashlib.sha256(encoded.encode()).hexdigest()[:10]
    return digest.translate(str.maketrans("013ae", "ghkmt"))


def _go_json(value: Any) -> str:
    """``encoding/json.Marshal``: sorted keys, no spaces, HTML characters escaped."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{_go_json(str(k))}:{_go_json(v)}"
                              for k, v in sorted(value.items())) + "}"
    if isinstance(value, str):
        out = ['"']
        for ch in value:
            code = ord(ch)
            if ch == '"':
                out.append('\\"')
            elif ch == "\\":
                out.append("\\\\")
            elif ch == "\n":
                out.append("\\n")
            elif ch == "\r":
                out.append("\\r")
            elif ch == "\t":
                out.append("\\t")
            elif code < 0x20 or ch in "<>&" or code in (0x2028, 0x2029):
                out.append(f"\\u{code:04x}")
            else:
                out.append(ch)
        out.append('"')
        return "".join(out)
    raise KustomizeError(f"cannot encode {type(value).__name__}")
