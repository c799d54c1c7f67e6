#!/usr/bin/env bash
# deploy/k8s, checked offline (no cluster, no network):
#   1. render the base and overlays/dev with `kubectl kustomize` where kubectl
#      is installed, and always with deploy/k8s/validate/render.py; when both
#      ran they must give the same objects;
#   2. validate every rendered object, the example CURVE Secrets and (when
#      imsplit-ctl is built) Secrets made by deploy/k8s/curve-secrets.sh
#      against the Kubernetes API definitions (deploy/k8s/validate/
#      validate.mjs: schema, then unknown fields and types), together with a
#      deliberately broken copy of the base that must be refused, so a
#      validator that accepts everything fails the test;
#   3. assert what the deployment relies on (deploy/k8s/README.md): one CP
#      with Recreate, probes, resources, security context, HPA and PDB on the
#      workers, IMSPLIT_CP naming the control Service, grace times in order,
#      IMSPLIT_* names that are flags of the daemon (when it is built), CURVE
#      paths inside read-only Secret mounts that match the Secrets.
# Needs node with deploy/k8s/validate/node_modules (scripts/deps.sh installs
# it) and python3 with PyYAML. Fails, never skips, when one is missing.
set -euo pipefail

SRC=${IMSPLIT_SRC_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
K8S=$SRC/deploy/k8s
VALIDATOR=$K8S/validate
BUILD=${IMSPLIT_BUILD_DIR:-$SRC/build}
CTL_BIN=$BUILD/tools/imsplit-ctl

fail() { printf 'test_k8s_validate: FAIL: %s\n' "$*" >&2; exit 1; }
note() { printf 'test_k8s_validate: %s\n' "$*"; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ---- tools ------------------------------------------------------------------
command -v node >/dev/null || fail "node not found (scripts/deps.sh installs it)"
for m in kubernetes-models typescript yaml; do
    [[ -f $VALIDATOR/node_modules/$m/package.json ]] ||
        fail "$VALIDATOR/node_modules/$m missing: run scripts/deps.sh"
done
PY=
for p in python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null && "$p" -c 'import yaml' 2>/dev/null; then
        PY=$p
        break
    fi
done
[[ -n $PY ]] || fail "no python3 with PyYAML (Debian: python3-yaml)"

# ---- 1. render --------------------------------------------------------------
for k in base overlays/dev; do
    out=$tmp/${k//\//-}.yaml
    "$PY" "$VALIDATOR/render.py" "$K8S/$k" >"$tmp/fallback.yaml" ||
        fail "render.py $k"
    if command -v kubectl >/dev/null; then
        kubectl kustomize "$K8S/$k" >"$out" 2>"$tmp/kustomize.err" ||
            fail "kubectl kustomize $k: $(cat "$tmp/kustomize.err")"
        "$PY" - "$out" "$tmp/fallback.yaml" <<'EOF' || fail "render.py and kubectl kustomize disagree on $k"
import sys, yaml
def objs(p):
    with open(p) as f:
        return {(d["apiVersion"], d["kind"], d["metadata"].get("namespace"),
                 d["metadata"]["name"]): d for d in yaml.safe_load_all(f) if d}
a, b = objs(sys.argv[1]), objs(sys.argv[2])
for key in sorted(set(a) | set(b), key=str):
    if a.get(key) != b.get(key):
        print("differs:", key, file=sys.stderr)
        sys.exit(1)
EOF
        note "rendered $k with kubectl kustomize and render.py: same objects"
    else
        mv "$tmp/fallback.yaml" "$out"
        note "rendered $k with render.py (no kubectl)"
    fi
done

# ---- 2. schema --------------------------------------------------------------
secrets=("$K8S/curve-secrets.example.yaml")
if [[ -x $CTL_BIN ]]; then
    IMSPLIT_CTL_BIN=$CTL_BIN bash "$K8S/curve-secrets.sh" "$tmp/keys" >"$tmp/keys.log" ||
        fail "curve-secrets.sh: $(cat "$tmp/keys.log")"
    for f in "$tmp"/keys/secrets/*.yaml; do
        echo ---
        cat "$f"
    done >"$tmp/made-secrets.yaml"
    secrets+=("$tmp/made-secrets.yaml")
else
    note "no $CTL_BIN: curve-secrets.sh not exercised"
fi

# The canary: one unknown field (only the field check sees it) and one
# wrongly typed value (the schema check sees it).
"$PY" - "$tmp/base.yaml" "$tmp/broken.yaml" <<'EOF'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
deployments = [d for d in docs if d["kind"] == "Deployment"]
deployments[0]["spec"]["replicas"] = "1"
deployments[-1]["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {
    "httpGet": {"path": "/readyz", "port": 9100}}
yaml.safe_dump_all(deployments, open(sys.argv[2], "w"))
EOF

rc=0
node "$VALIDATOR/validate.mjs" "$tmp/base.yaml" "$tmp/overlays-dev.yaml" \
    "${secrets[@]}" "$tmp/broken.yaml" >"$tmp/validate.out" 2>"$tmp/validate.err" || rc=$?
((rc == 1)) || { cat "$tmp/validate.err" >&2; fail "validator exit $rc with a broken manifest (want 1)"; }
if grep -v -e "^k8s-validate: $tmp/broken.yaml#" -e '^k8s-validate: [0-9]* error(s) in' \
    "$tmp/validate.err" >"$tmp/real.err"; then
    cat "$tmp/real.err" >&2
    fail "manifests do not validate"
fi
grep -q "broken.yaml#[0-9]* Deployment/[^:]*: schema: /spec/replicas must be integer" "$tmp/validate.err" ||
    { cat "$tmp/validate.err" >&2; fail "the schema check let a string replicas through"; }
grep -q "broken.yaml#[0-9]* Deployment/[^:]*: fields: .*readinesProbe.* does not exist" "$tmp/validate.err" ||
    { cat "$tmp/validate.err" >&2; fail "the field check let an unknown field through"; }
note "schema and fields valid: base, overlays/dev, ${#secrets[@]} Secret file(s); broken copy refused"

# ---- 3. structure -----------------------------------------------------------
# The flags each daemon knows, to check every IMSPLIT_* variable against
# (a misspelt variable is ignored by the daemon, silently).
for d in cp up; do
    bin=$BUILD/$d/imsplit-$d
    if [[ -x $bin ]]; then
        "$bin" --help >"$tmp/help-$d" || fail "$bin --help failed"
        sed -n 's/^ *\(--[a-z0-9-]*\).*/\1/p' "$tmp/help-$d" >"$tmp/flags-$d"
        [[ -s $tmp/flags-$d ]] || fail "$bin --help lists no flags"
    else
        note "no $bin: IMSPLIT_* names of imsplit-$d not checked against its flags"
    fi
done
FLAGS_DIR=$tmp "$PY" - "$tmp/base.yaml" "$tmp/overlays-dev.yaml" "${secrets[@]}" <<'EOF'
import os
import re
import sys
import yaml

errors = []


def check(cond, msg):
    if not cond:
        errors.append(msg)
    return cond


def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def find(docs, kind, name):
    hits = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return hits[0] if len(hits) == 1 else None


def subset(small, big):
    return bool(small) and all(big.get(k) == v for k, v in small.items())


def env_of(c):
    return {e["name"]: e for e in c.get("env") or []}


UNITS = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
         "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def quantity(q):
    m = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(q))
    return float(m.group(1)) * UNITS[m.group(2)] if m and m.group(2) in UNITS else None


def container_port(c, port):
    """The containerPort a probe or Service port (number or name) means."""
    for p in c.get("ports") or []:
        if port in (p.get("name"), p["containerPort"]):
            return p
    return None


def probe_path(c, kind):
    """(path, container port) of an HTTP GET probe; None if it is not one."""
    p = c.get(kind) or {}
    if {"exec", "httpGet", "tcpSocket", "grpc"} & set(p) != {"httpGet"}:
        return None
    get = p["httpGet"]
    port = container_port(c, get.get("port"))
    return get.get("path"), port["containerPort"] if port else None


def metrics_port(c):
    m = env_of(c).get("IMSPLIT_METRICS", {}).get("value", "")
    return int(m.rsplit(":", 1)[1]) if ":" in m else None


def services_to(docs, pod_labels, port, protocol="TCP"):
    """Services that send `port` to a pod with these labels."""
    out = []
    for s in docs:
        if s["kind"] != "Service" or not subset(s["spec"].get("selector"), pod_labels):
            continue
        for p in s["spec"]["ports"]:
            if p["port"] == port and p.get("protocol", "TCP") == protocol:
                out.append((s, p))
    return out


def check_render(name, docs, curve):
    where = name + ": "
    ns_objs = [d for d in docs if d["kind"] != "Namespace"]
    check(find(docs, "Namespace", "imsplit") is not None, where + "no Namespace imsplit")
    for d in ns_objs:
        check(d["metadata"].get("namespace") == "imsplit",
              f"{where}{d['kind']}/{d['metadata']['name']} not in namespace imsplit")
    check(not any(d["kind"] == "Secret" for d in docs),
          where + "a Secret is rendered: keys must never be part of the kustomization")

    cp = find(docs, "Deployment", "imsplit-cp")
    up = find(docs, "Deployment", "imsplit-up")
    if not (check(cp, where + "no Deployment imsplit-cp") and
            check(up, where + "no Deployment imsplit-up")):
        return

    # Every Deployment: selector, resources, security, probes.
    for d in (x for x in docs if x["kind"] == "Deployment"):
        dn = f"{where}Deployment/{d['metadata']['name']}"
        pod = d["spec"]["template"]
        check(subset(d["spec"]["selector"].get("matchLabels"), pod["metadata"].get("labels") or {}),
              dn + ": selector does not match its pod labels")
        ps = pod["spec"]
        psc = ps.get("securityContext") or {}
        check(psc.get("runAsNonRoot") is True, dn + ": pod runAsNonRoot is not true")
        check(psc.get("runAsUser", 0) != 0, dn + ": pod runAsUser is 0 or unset")
        check(ps.get("enableServiceLinks") is False,
              dn + ": enableServiceLinks is not false (IMSPLIT_* variables from Service names)")
        for c in (ps.get("initContainers") or []) + ps["containers"]:
            cn = f"{dn} container {c['name']}"
            res = c.get("resources") or {}
            for part in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    check(quantity((res.get(part) or {}).get(r)) is not None,
                          f"{cn}: no {part}.{r}")
            for r in ("cpu", "memory"):
                req = quantity((res.get("requests") or {}).get(r))
                lim = quantity((res.get("limits") or {}).get(r))
                if req is not None and lim is not None:
                    check(req <= lim, f"{cn}: requests.{r} above limits.{r}")
            sc = c.get("securityContext") or {}
            check(sc.get("allowPrivilegeEscalation") is False, cn + ": allowPrivilegeEscalation is not false")
            check(sc.get("readOnlyRootFilesystem") is True, cn + ": readOnlyRootFilesystem is not true")
            check(sc.get("privileged") is not True, cn + ": privileged")
            caps = sc.get("capabilities") or {}
            check("ALL" in (caps.get("drop") or []), cn + ": capabilities do not drop ALL")
            check(not caps.get("add"), cn + ": capabilities added")
            seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
            check(seccomp in ("RuntimeDefault", "Localhost"), cn + ": no seccomp profile")
            check(str(c.get("image", "")).split(":")[0].split("/")[-1] == "imsplit",
                  cn + ": image is not imsplit")
            mp = metrics_port(c)
            check(mp is not None, cn + ": no IMSPLIT_METRICS")
            check(probe_path(c, "livenessProbe") == ("/healthz", mp),
                  f"{cn}: livenessProbe is not GET /healthz on the metrics port {mp}")
            check(probe_path(c, "readinessProbe") == ("/readyz", mp),
                  f"{cn}: readinessProbe is not GET /readyz on the metrics port {mp}")
            # Secret volumes are mounted read-only wherever they are mounted.
            secret_vols = {v["name"] for v in ps.get("volumes") or [] if "secret" in v}
            for m in c.get("volumeMounts") or []:
                if m["name"] in secret_vols:
                    check(m.get("readOnly") is True,
                          f"{cn}: Secret volume {m['name']} mounted without readOnly: true")

    # Every IMSPLIT_* variable names a flag of the daemon it is given to.
    cms = {d["metadata"]["name"]: d.get("data") or {} for d in docs if d["kind"] == "ConfigMap"}
    for d, daemon in ((cp, "cp"), (up, "up")):
        flags_file = os.path.join(os.environ["FLAGS_DIR"], "flags-" + daemon)
        if not os.path.exists(flags_file):
            continue
        flags = set(open(flags_file).read().split())
        c = d["spec"]["template"]["spec"]["containers"][0]
        names = list(env_of(c))
        for ef in c.get("envFrom") or []:
            ref = (ef.get("configMapRef") or {}).get("name")
            if check(ref in cms, f"{where}{d['metadata']['name']}: no ConfigMap {ref}"):
                names += list(cms[ref])
        for n in names:
            if n.startswith("IMSPLIT_"):
                flag = "--" + n[len("IMSPLIT_"):].lower().replace("_", "-")
                check(flag in flags, f"{where}{d['metadata']['name']}: {n} is no flag of imsplit-{daemon} ({flag})")

    # CP: one replica, Recreate, a grace long enough for its BYE-both-legs stop.
    cps = cp["spec"]
    cpc = cps["template"]["spec"]["containers"][0]
    cpl = cps["template"]["metadata"]["labels"]
    check(cps.get("replicas") == 1, where + "imsplit-cp replicas is not 1")
    check((cps.get("strategy") or {}).get("type") == "Recreate",
          where + "imsplit-cp strategy is not Recreate")
    check(cpc.get("args", [None])[0] == "cp", where + "imsplit-cp does not run `imsplit cp`")
    cpe = env_of(cpc)
    cp_grace = cps["template"]["spec"].get("terminationGracePeriodSeconds", 30)
    cp_stop = cpe.get("IMSPLIT_SHUTDOWN_GRACE_MS", {}).get("value")
    if check(cp_stop is not None, where + "imsplit-cp sets no IMSPLIT_SHUTDOWN_GRACE_MS"):
        check(int(cp_stop) > 0 and int(cp_stop) / 1000 < cp_grace,
              f"{where}imsplit-cp shutdown grace {cp_stop} ms is not below "
              f"terminationGracePeriodSeconds {cp_grace}")
    sip = cpe.get("IMSPLIT_SIP", {}).get("value", "").split(",")
    for proto in ("udp", "tcp"):
        check(any(s.startswith(proto + ":") and s.endswith(":5060") for s in sip),
              f"{where}imsplit-cp IMSPLIT_SIP has no {proto} listener on 5060")
        check(container_port(cpc, f"sip-{proto}") is not None or any(
            p["containerPort"] == 5060 and p.get("protocol", "TCP") == proto.upper()
            for p in cpc.get("ports") or []), f"{where}imsplit-cp declares no {proto} port 5060")
        check(services_to(docs, cpl, 5060, proto.upper()),
              f"{where}no Service sends SIP 5060/{proto} to imsplit-cp")
    check(cpe.get("IMSPLIT_CTL", {}).get("value", "").endswith(":5600"),
          where + "imsplit-cp IMSPLIT_CTL does not listen on 5600")

    # Workers: the CP Service, the stable id, the address they advertise.
    ups = up["spec"]
    upt = ups["template"]
    upc = upt["spec"]["containers"][0]
    upl = upt["metadata"]["labels"]
    check(not subset(cps["selector"]["matchLabels"], upl) and
          not subset(ups["selector"]["matchLabels"], cpl),
          where + "the CP's and the workers' selectors overlap")
    check(upc.get("args", [None])[0] == "up", where + "imsplit-up does not run `imsplit up`")
    check("replicas" not in ups, where + "imsplit-up sets replicas (the HPA owns them)")
    strat = ups.get("strategy") or {}
    ru = strat.get("rollingUpdate") or {}
    check(strat.get("type", "RollingUpdate") == "RollingUpdate" and ru.get("maxUnavailable") == 0
          and ru.get("maxSurge") == 1,
          where + "imsplit-up rolling update is not maxUnavailable 0, maxSurge 1")
    upe = env_of(upc)
    ref = lambda e: ((upe.get(e) or {}).get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath")
    check(ref("IMSPLIT_ID") == "metadata.name", where + "imsplit-up IMSPLIT_ID is not the pod name")
    check(ref("IMSPLIT_ADVERTISE") == "status.podIP", where + "imsplit-up IMSPLIT_ADVERTISE is not the pod IP")
    m = re.fullmatch(r"tcp://([a-z0-9-]+)(?:\.imsplit(?:\.svc(?:\.[a-z0-9.-]+)?)?)?:(\d+)",
                     upe.get("IMSPLIT_CP", {}).get("value", ""))
    if check(m, where + "imsplit-up IMSPLIT_CP is not tcp://SERVICE:PORT"):
        svc = find(docs, "Service", m.group(1))
        port = int(m.group(2))
        if check(svc, f"{where}IMSPLIT_CP names Service {m.group(1)}, which does not exist"):
            hit = [p for s, p in services_to([svc], cpl, port)]
            if check(hit, f"{where}Service {m.group(1)} does not send port {port} to imsplit-cp"):
                target = container_port(cpc, hit[0].get("targetPort", port))
                check(target and target["containerPort"] == 5600,
                      f"{where}Service {m.group(1)}:{port} does not reach the CP's control port 5600")
            check(svc["spec"].get("publishNotReadyAddresses") is True,
                  f"{where}Service {m.group(1)} must publish the CP before it is ready "
                  "(the CP is ready only once a worker registered)")
    grace = upt["spec"].get("terminationGracePeriodSeconds", 30)
    drain = upe.get("IMSPLIT_DRAIN_GRACE_MS", {}).get("value")
    if check(drain is not None, where + "imsplit-up sets no IMSPLIT_DRAIN_GRACE_MS"):
        check(int(drain) > 0 and int(drain) / 1000 < grace,
              f"{where}imsplit-up drain grace {drain} ms is not below terminationGracePeriodSeconds {grace}")

    # HPA on the workers, CPU-based; PDB on the workers only.
    hpa = find(docs, "HorizontalPodAutoscaler", "imsplit-up")
    if check(hpa, where + "no HorizontalPodAutoscaler imsplit-up"):
        hs = hpa["spec"]
        check(hpa["apiVersion"] == "autoscaling/v2", where + "HPA is not autoscaling/v2")
        check(hs["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "imsplit-up"},
              where + "HPA does not target Deployment imsplit-up")
        check(hs.get("minReplicas", 1) >= 2 and hs["maxReplicas"] > hs.get("minReplicas", 1),
              where + "HPA min below 2 or max not above min")
        check(any(x["type"] == "Resource" and x["resource"]["name"] == "cpu" for x in hs.get("metrics") or []),
              where + "HPA does not scale on CPU")
    pdbs = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    up_pdb = [p for p in pdbs if subset(p["spec"]["selector"].get("matchLabels"), upl)]
    check(len(up_pdb) == 1, where + "not exactly one PodDisruptionBudget selects the workers")
    for p in up_pdb:
        check(not subset(p["spec"]["selector"].get("matchLabels"), cpl),
              where + "the workers' PDB also selects the CP")
        check(p["spec"].get("maxUnavailable") == 1, where + "the workers' PDB is not maxUnavailable 1")

    # CURVE: each key path leads into a read-only Secret mount.
    def curve_files(d):
        """IMSPLIT_CURVE_* -> (Secret name, key or None for a directory)."""
        ps = d["spec"]["template"]["spec"]
        c = ps["containers"][0]
        vols = {v["name"]: v for v in ps.get("volumes") or []}
        out = {}
        for n, e in env_of(c).items():
            if not n.startswith("IMSPLIT_CURVE_"):
                continue
            v = e.get("value", "")
            got = None
            for mnt in c.get("volumeMounts") or []:
                sec = vols.get(mnt["name"], {}).get("secret")
                if not sec or not mnt.get("readOnly"):
                    continue
                mp = mnt["mountPath"].rstrip("/")
                if v == mp:
                    got = (sec["secretName"], None, sec)
                elif v.startswith(mp + "/"):
                    rel = v[len(mp) + 1:]
                    items = {i["path"]: i["key"] for i in sec.get("items") or []}
                    key = items.get(rel) if sec.get("items") else rel
                    if key is not None:
                        got = (sec["secretName"], key, sec)
            check(got, f"{where}{d['metadata']['name']} {n}={v} is not in a read-only Secret mount")
            if got:
                out[n] = got
        return out

    if curve:
        cpf, upf = curve_files(cp), curve_files(up)
        check(set(cpf) == {"IMSPLIT_CURVE_SECRET", "IMSPLIT_CURVE_ALLOW"},
              where + "imsplit-cp needs IMSPLIT_CURVE_SECRET and IMSPLIT_CURVE_ALLOW from Secrets")
        check(set(upf) == {"IMSPLIT_CURVE_SECRET", "IMSPLIT_CURVE_SERVER_KEY"},
              where + "imsplit-up needs IMSPLIT_CURVE_SECRET and IMSPLIT_CURVE_SERVER_KEY from Secrets")
        if "IMSPLIT_CURVE_ALLOW" in cpf:
            check(cpf["IMSPLIT_CURVE_ALLOW"][1] is None, where + "the CP's allow-list is not a mounted directory")
        for f in (cpf, upf):
            for n, (_, key, sec) in f.items():
                if key and key.endswith(".key"):
                    check(sec.get("defaultMode", 0o644) & 0o007 == 0,
                          f"{where}{n}: a secret key readable by others (defaultMode)")
        cp_secret = cpf.get("IMSPLIT_CURVE_SECRET", (None,))[0]
        up_vols = [v.get("secret", {}).get("secretName") for v in up["spec"]["template"]["spec"].get("volumes") or []]
        check(cp_secret not in up_vols, where + "the workers mount the CP's secret key")
        return {**{("cp", n): v[:2] for n, v in cpf.items()}, **{("up", n): v[:2] for n, v in upf.items()}}
    for d in (cp, up):
        check(not any(n.startswith("IMSPLIT_CURVE_") for n in env_of(d["spec"]["template"]["spec"]["containers"][0])),
              f"{where}{d['metadata']['name']} still has CURVE settings")
        check(not any("secret" in v for v in d["spec"]["template"]["spec"].get("volumes") or []),
              f"{where}{d['metadata']['name']} still mounts a Secret")
    return {}


def check_secrets(path, wants, real):
    docs = load(path)
    have = {}
    for d in docs:
        check(d["kind"] == "Secret" and d["metadata"].get("namespace") == "imsplit",
              f"{path}: {d['kind']}/{d['metadata']['name']} is not a Secret in imsplit")
        have[d["metadata"]["name"]] = {**(d.get("stringData") or {}), **(d.get("data") or {})}
    for (who, env), (secret, key) in wants.items():
        data = have.get(secret)
        if not check(data is not None, f"{path}: no Secret {secret} ({who} {env})"):
            continue
        if key:
            check(key in data, f"{path}: Secret {secret} has no {key} ({who} {env})")
        else:
            check(any(k.endswith(".pub") for k in data), f"{path}: Secret {secret} has no *.pub")
            check(not any(k.endswith(".key") for k in data), f"{path}: a secret key in the allow-list {secret}")
    if real:
        for name, data in have.items():
            for k, v in data.items():
                keys = [l.strip() for l in v.splitlines() if l.strip() and not l.strip().startswith("#")]
                check(len(keys) == 1 and len(keys[0]) == 40,
                      f"{path}: {name}/{k} does not hold one 40-character Z85 key")


base, dev, secret_files = sys.argv[1], sys.argv[2], sys.argv[3:]
wants = check_render("base", load(base), curve=True)
check_render("overlays/dev", load(dev), curve=False)
# The first file is the example with placeholders; the others hold keys.
for i, f in enumerate(secret_files):
    check_secrets(f, wants, real=i > 0)

for e in errors:
    print("test_k8s_validate: FAIL:", e, file=sys.stderr)
sys.exit(1 if errors else 0)
EOF
note "structure: ok"
