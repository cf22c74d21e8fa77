#!/usr/bin/env bash
# The project's one install step: Debian packages, then a virtualenv with the Python
# dependencies from pyproject.toml. Idempotent and quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(etcd-server etcd-client docker.io bird iptables ipset iproute2 busybox-static
          openssh-server openssh-client tcpdump util-linux procps curl python3-minimal sudo
          chromium)

if [ "$(id -u)" != 0 ]; then
    echo "install: must run as root (apt-get, and the lab itself needs root): sudo $0" >&2
    exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "install: Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

py=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    if ! "$py" -m venv .venv 2>/dev/null; then
        rm -rf .venv   # Debian's python3 needs python3-venv for this
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
        "$py" -m venv .venv
    fi
fi
stamp=".venv/.deps-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -e "$stamp" ]; then
    echo "install: Python dependencies into .venv"
    deps=$(.venv/bin/python - <<'PY'
import tomllib
print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))
PY
)
    mapfile -t deps <<<"$deps"
    .venv/bin/python -m pip install -q --disable-pip-version-check "${deps[@]}"
    rm -f .venv/.deps-* && touch "$stamp"
fi
