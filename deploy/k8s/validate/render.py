#!/usr/bin/env python3
"""Renders a kustomization of deploy/k8s without kustomize.

    render.py DIR > rendered.yaml

tests/deploy/test_k8s_validate.sh renders with `kubectl kustomize` where
kubectl is installed and with this script where it is not; when both are
there it renders with both and requires the same objects, so this script
cannot drift from kustomize unnoticed.

Only the part of kustomize that imsplit's kustomizations use is here:
`resources` (YAML files and directories holding a kustomization),
`namespace`, and `patches` given as RFC 6902 JSON patches (`path:` or inline
`patch:`) with a `target` of kind, name and optionally group and version.
Anything else is refused with an error naming it, never silently ignored.
"""

import copy
import os
import sys

import yaml

KNOWN_FIELDS = {"apiVersion", "kind", "namespace", "resources", "patches"}

# Objects that live outside any namespace (those kustomize leaves alone).
CLUSTER_SCOPED = {
    "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
    "PersistentVolume", "StorageClass", "PriorityClass", "IngressClass",
    "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration",
}


class RenderError(Exception):
    pass


def load_kustomization(d):
    for name in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        p = os.path.join(d, name)
        if os.path.isfile(p):
            with open(p, encoding="utf-8") as f:
                k = yaml.safe_load(f) or {}
            unknown = set(k) - KNOWN_FIELDS
            if unknown:
                raise RenderError(f"{p}: unsupported field(s) {sorted(unknown)}; "
                                  "render with kubectl kustomize")
            return p, k
    raise RenderError(f"{d}: no kustomization.yaml")


def load_docs(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise RenderError(f"JSON pointer {path!r} does not start with /")
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def walk(doc, tokens):
    """The container holding the last token of tokens, and that token."""
    cur = doc
    for t in tokens[:-1]:
        if isinstance(cur, list):
            cur = cur[int(t)]
        elif isinstance(cur, dict):
            cur = cur[t]
        else:
            raise KeyError(t)
    return cur, tokens[-1]


def apply_op(doc, op):
    kind = op.get("op")
    tokens = pointer(op.get("path", ""))
    if not tokens:
        raise RenderError(f"op {op!r}: the whole document cannot be patched")
    try:
        parent, last = walk(doc, tokens)
        if kind == "test":
            have = parent[int(last)] if isinstance(parent, list) else parent[last]
            if have != op.get("value"):
                raise RenderError(f"test failed at {op['path']}: "
                                  f"{have!r} != {op.get('value')!r}")
        elif kind == "remove":
            if isinstance(parent, list):
                del parent[int(last)]
            else:
                del parent[last]
        elif kind == "replace":
            if isinstance(parent, list):
                parent[int(last)] = copy.deepcopy(op["value"])
            else:
                if last not in parent:
                    raise KeyError(last)
                parent[last] = copy.deepcopy(op["value"])
        elif kind == "add":
            value = copy.deepcopy(op["value"])
            if isinstance(parent, list):
                if last == "-":
                    parent.append(value)
                else:
                    parent.insert(int(last), value)
            else:
                parent[last] = value
        else:
            raise RenderError(f"unsupported JSON patch op {kind!r}")
    except (KeyError, IndexError, ValueError, TypeError) as e:
        raise RenderError(f"op {kind} {op.get('path')}: no such path ({e})") from e


def matches(obj, target):
    group, _, version = obj.get("apiVersion", "").rpartition("/")
    meta = obj.get("metadata") or {}
    checks = {
        "kind": obj.get("kind"),
        "name": meta.get("name"),
        "group": group,
        "version": version,
        "namespace": meta.get("namespace"),
    }
    unknown = set(target) - set(checks)
    if unknown:
        raise RenderError(f"patch target: unsupported selector(s) {sorted(unknown)}")
    return all(checks[k] == v for k, v in target.items())


def render(d):
    kpath, k = load_kustomization(d)
    objs = []
    for r in k.get("resources") or []:
        p = os.path.normpath(os.path.join(d, r))
        if os.path.isdir(p):
            objs.extend(render(p))
        elif os.path.isfile(p):
            objs.extend(load_docs(p))
        else:
            raise RenderError(f"{kpath}: resource {r} not found")
    for i, patch in enumerate(k.get("patches") or []):
        where = f"{kpath}: patches[{i}]"
        if "path" in patch:
            with open(os.path.join(d, patch["path"]), encoding="utf-8") as f:
                ops = yaml.safe_load(f)
        else:
            ops = yaml.safe_load(patch.get("patch", ""))
        if not isinstance(ops, list):
            raise RenderError(f"{where}: only JSON 6902 patches (a list of ops) "
                              "are supported; render with kubectl kustomize")
        target = patch.get("target")
        if not target:
            raise RenderError(f"{where}: a JSON patch needs a target")
        hits = [o for o in objs if matches(o, target)]
        if not hits:
            raise RenderError(f"{where}: no resource matches {target}")
        for o in hits:
            for op in ops:
                try:
                    apply_op(o, op)
                except RenderError as e:
                    raise RenderError(f"{where}: {e}") from e
    ns = k.get("namespace")
    if ns:
        for o in objs:
            if o.get("kind") not in CLUSTER_SCOPED:
                o.setdefault("metadata", {})["namespace"] = ns
    return objs


def main(argv):
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    try:
        objs = render(argv[1])
    except (RenderError, OSError, yaml.YAMLError) as e:
        print(f"render: {e}", file=sys.stderr)
        return 1
    yaml.safe_dump_all(objs, sys.stdout, sort_keys=True, default_flow_style=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
