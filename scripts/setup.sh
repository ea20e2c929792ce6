#!/usr/bin/env bash
# Installs what gardend needs on a Debian machine, as root, and is quick when all is there:
# containerd, runc, CNI plugins and build tools from apt; a venv with gardend (and its test
# tools with --test); the default busybox rootfs, built once from Debian's source package.
set -euo pipefail
cd "$(dirname "$0")/.."

want_tests=0
[ "${1:-}" = "--test" ] && want_tests=1

packages=(containerd runc containernetworking-plugins iptables iproute2 util-linux mount e2fsprogs tar openssl
          build-essential dpkg-dev
          python3 python3-venv ca-certificates)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
extra=""
[ $want_tests = 1 ] && extra="[test]"
stamp=".venv/.gardend-installed$extra"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e ".$extra" >/dev/null
  touch "$stamp"
fi

scripts/build-rootfs.sh "${GARDEND_ROOTFS:-/var/lib/gardend/rootfs/busybox}"
