"""A Python renderer of the kustomize subset `k8s/` uses (the `kustomize` binary is not here).

Supported, with kustomize's meaning: `resources` (files and other kustomization folders),
`namespace`, `labels` (`pairs`, `includeSelectors: false`, `includeTemplates`), `images`
(`newName`, `newTag`) and `patches` with a `path` to strategic-merge patches (one or more
documents, each targeting the resource of its kind and name). Strategic merge: maps merge
recursively; the lists Kubernetes merges by key (containers and volumes by `name`, env by
`name`, ports by `containerPort`, volumeMounts by `mountPath`) merge item by item; every
other list, and every scalar, is replaced. Anything else in a kustomization file is refused,
so a manifest that uses more than this renderer knows fails the test instead of rendering
wrong.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

SUPPORTED_FIELDS = {"apiVersion", "kind", "resources", "namespace", "labels", "images", "patches"}

# patchMergeKey of the list fields the manifests patch (from the Kubernetes API's
# x-kubernetes-patch-merge-key). A list not named here is replaced, as kustomize does for
# lists without a merge key.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "topologySpreadConstraints": "topologyKey",
}

CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume"}

Resource = dict[str, Any]


class UnsupportedKustomizationError(ValueError):
    """The kustomization uses a feature this renderer does not implement."""


def render(folder: Path) -> list[Resource]:
    """The resources `kustomize build folder` prints, in resource order."""
    spec = yaml.safe_load((folder / "kustomization.yaml").read_text())
    unknown = set(spec) - SUPPORTED_FIELDS
    if unknown:
        raise UnsupportedKustomizationError(f"{folder}: unsupported fields {sorted(unknown)}")
    resources: list[Resource] = []
    for entry in spec.get("resources", []):
        path = (folder / entry).resolve()
        if path.is_dir():
            resources.extend(render(path))
        else:
            resources.extend(_documents(path))
    for patch in spec.get("patches", []):
        if set(patch) != {"path"}:
            raise UnsupportedKustomizationError(f"{folder}: only `patches: - path:` is supported")
        for document in _documents(folder / patch["path"]):
            target = _find(resources, document["kind"], document["metadata"]["name"])
            merged = strategic_merge(target, document)
            target.clear()
            target.update(merged)
    for labels in spec.get("labels", []):
        _add_labels(resources, labels)
    for image in spec.get("images", []):
        _set_image(resources, image)
    if "namespace" in spec:
        for resource in resources:
            if resource["kind"] not in CLUSTER_SCOPED:
                resource["metadata"]["namespace"] = spec["namespace"]
    return resources


def strategic_merge(base: Any, patch: Any, field: str | None = None) -> Any:
    """`patch` merged into `base` (a Kubernetes strategic merge, for the subset above)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)  # `key: null` deletes, as in a strategic merge
            elif key in merged:
                merged[key] = strategic_merge(merged[key], value, key)
            else:
                merged[key] = copy.deepcopy(value)
        return merged
    if isinstance(base, list) and isinstance(patch, list) and field in MERGE_KEYS:
        key = MERGE_KEYS[field]
        merged_list = [copy.deepcopy(item) for item in base]
        for item in patch:
            match = next(
                (i for i, old in enumerate(merged_list) if old.get(key) == item[key]), None
            )
            if match is None:
                merged_list.append(copy.deepcopy(item))
            else:
                merged_list[match] = strategic_merge(merged_list[match], item, None)
        return merged_list
    return copy.deepcopy(patch)


def pod_templates(resource: Resource) -> list[Resource]:
    """The pod template(s) of a workload resource (Deployment, Job, CronJob), else []."""
    spec = resource.get("spec", {})
    if resource["kind"] == "CronJob":
        return [spec["jobTemplate"]["spec"]["template"]]
    if "template" in spec:
        return [spec["template"]]
    return []


def _documents(path: Path) -> list[Resource]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _find(resources: list[Resource], kind: str, name: str) -> Resource:
    found = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    if len(found) != 1:
        raise UnsupportedKustomizationError(f"patch target {kind}/{name}: {len(found)} matches")
    return found[0]


def _add_labels(resources: list[Resource], labels: dict[str, Any]) -> None:
    if labels.get("includeSelectors", False):
        raise UnsupportedKustomizationError("labels with includeSelectors: true")
    pairs = labels["pairs"]
    for resource in resources:
        resource["metadata"].setdefault("labels", {}).update(pairs)
        if labels.get("includeTemplates", False):
            for template in pod_templates(resource):
                template.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)


def _set_image(resources: list[Resource], image: dict[str, str]) -> None:
    for resource in resources:
        for template in pod_templates(resource):
            spec = template["spec"]
            for container in spec.get("containers", []) + spec.get("initContainers", []):
                name, tag = _split_image(container["image"])
                if name != image["name"]:
                    continue
                name = image.get("newName", name)
                tag = image.get("newTag", tag)
                container["image"] = f"{name}:{tag}" if tag else name


def _split_image(reference: str) -> tuple[str, str]:
    """`registry:5000/name:tag` → (`registry:5000/name`, `tag`); no tag → (reference, "")."""
    name, colon, tag = reference.rpartition(":")
    if not colon or "/" in tag:
        return reference, ""
    return name, tag
