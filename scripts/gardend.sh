#!/usr/bin/env bash
# Sets up what is missing, then runs gardend on 127.0.0.1:7777 with a private containerd
# and the default busybox rootfs. Extra arguments go to gardend (see `gardend --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/gardend --default-rootfs "${GARDEND_ROOTFS:-/var/lib/gardend/rootfs/busybox}" "$@"
