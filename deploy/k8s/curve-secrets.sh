#!/usr/bin/env bash
# Makes the CURVE keys of an imsplit cluster and the three Secrets the base
# mounts (deploy/k8s/README.md, "CURVE keys"):
#
#   deploy/k8s/curve-secrets.sh OUTDIR
#   kubectl apply -f OUTDIR/secrets/
#
# In OUTDIR (created 0700 if absent) it makes, with `imsplit-ctl keygen`,
# each keypair that is not there yet:
#   cp.key  cp.pub    the CP's keypair
#   up.key  up.pub    the keypair every worker shares
#   ops.key ops.pub   the operators' keypair for imsplit-ctl (ops.key never
#                     goes into the cluster)
# and writes one Secret manifest per file in OUTDIR/secrets/ (0600):
#   imsplit-cp-curve.yaml      cp.key                    (CP only)
#   imsplit-up-curve.yaml      up.key, cp.pub            (workers)
#   imsplit-curve-allow.yaml   up.pub, ops.pub and every OUTDIR/allow/*.pub
#                              (the CP's --curve-allow directory)
# Existing keys are kept, so running it again after adding a key to
# OUTDIR/allow/ or moving one pair away (a rotation, README.md) changes only
# that much; one file per Secret lets a rotation apply them one at a time.
# OUTDIR holds secret keys: keep it out of the repository and off shared
# disks, or delete it once the Secrets are applied (ops.key excepted).
#
# imsplit-ctl is taken from IMSPLIT_CTL_BIN, PATH, or build/tools/ of this
# repository; failing those, from the image IMSPLIT_IMAGE (imsplit:latest)
# run with podman or docker.
set -euo pipefail

die() { printf 'curve-secrets: %s\n' "$*" >&2; exit 1; }

[[ $# -eq 1 && $1 != -* ]] || { sed -n '2,27p' "$0" >&2; exit 64; }
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
out=$(realpath -m -- "$1")
case $out/ in
    "$repo"/*) die "$out is inside the repository; keep secret keys elsewhere" ;;
esac
mkdir -p "$out"
chmod 700 "$out"

keygen() {
    local prefix=$1 bin=${IMSPLIT_CTL_BIN:-}
    if [[ -z $bin ]]; then
        bin=$(command -v imsplit-ctl || true)
    fi
    if [[ -z $bin && -x $repo/build/tools/imsplit-ctl ]]; then
        bin=$repo/build/tools/imsplit-ctl
    fi
    if [[ -n $bin ]]; then
        "$bin" keygen "$prefix" >/dev/null
        return
    fi
    local engine
    engine=$(command -v podman || command -v docker || true)
    [[ -n $engine ]] || die "no imsplit-ctl (set IMSPLIT_CTL_BIN) and no podman or docker"
    "$engine" run --rm --network none --user "$(id -u):$(id -g)" \
        -v "$out:/keys" "${IMSPLIT_IMAGE:-imsplit:latest}" \
        ctl keygen "/keys/${prefix##*/}" >/dev/null
}

# The key line of a key file (a Z85 key never starts with '#': its first
# character encodes at most 0xffffffff / 85^4 = 82, and '#' is 84).
key_of() { grep -v '^#' "$1" | head -n1; }

make_pair() {
    local name=$1
    [[ -f $out/$name.key && -f $out/$name.pub ]] && return
    [[ ! -e $out/$name.key && ! -e $out/$name.pub ]] ||
        die "$out: $name.key and $name.pub must both be there or both be absent"
    keygen "$out/$name"
    printf 'curve-secrets: made %s.key, %s.pub\n' "$name" "$name"
}

for name in cp up ops; do
    make_pair "$name"
done

# secret NAME: the head of Secret NAME.
secret() {
    printf '# CURVE keys of imsplit, made by deploy/k8s/curve-secrets.sh. Secret: do not commit.\n'
    printf 'apiVersion: v1\nkind: Secret\nmetadata:\n'
    printf '  name: %s\n  namespace: imsplit\n' "$1"
    printf '  labels:\n    app.kubernetes.io/part-of: imsplit\n'
    printf 'type: Opaque\nstringData:\n'
}

# entry KEY FILE: one data entry, the key file verbatim as a literal block.
entry() {
    printf '  %s: |\n' "$1"
    sed 's/^/    /' "$2"
}

umask 077
mkdir -p "$out/secrets"
{
    secret imsplit-cp-curve
    entry cp.key "$out/cp.key"
} >"$out/secrets/imsplit-cp-curve.yaml"
{
    secret imsplit-up-curve
    entry up.key "$out/up.key"
    entry cp.pub "$out/cp.pub"
} >"$out/secrets/imsplit-up-curve.yaml"
{
    secret imsplit-curve-allow
    entry up.pub "$out/up.pub"
    entry ops.pub "$out/ops.pub"
    if [[ -d $out/allow ]]; then
        for f in "$out"/allow/*.pub; do
            [[ -f $f ]] || continue
            base=${f##*/}
            [[ $base =~ ^[A-Za-z0-9][-._A-Za-z0-9]*\.pub$ ]] ||
                die "$f: a Secret key name allows only letters, digits, - . _"
            [[ $base != up.pub && $base != ops.pub ]] ||
                die "$f: the name $base is taken by the current key"
            [[ -n $(key_of "$f") ]] || die "$f: no key line"
            entry "$base" "$f"
        done
    fi
} >"$out/secrets/imsplit-curve-allow.yaml"

cat <<EOF
curve-secrets: wrote $out/secrets/
  kubectl apply -f $out/secrets/
then restart what reads the keys at start (the CP restart ends live sessions):
  kubectl -n imsplit rollout restart deployment/imsplit-cp deployment/imsplit-up
imsplit-ctl from outside the cluster:
  kubectl -n imsplit port-forward service/imsplit-cp 5600 &
  imsplit-ctl --ctl tcp://127.0.0.1:5600 --curve-server-key $out/cp.pub --curve-secret $out/ops.key workers
EOF
