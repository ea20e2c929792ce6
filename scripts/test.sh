#!/usr/bin/env bash
# Sets up what is missing, then runs the linters, the type checker and the whole test
# suite against a real containerd and runc that the suite starts itself.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
.venv/bin/ruff check gardend tests api/generate.py benchmarks
.venv/bin/ruff format --check gardend tests api/generate.py benchmarks
.venv/bin/mypy gardend tests benchmarks api/generate.py
exec .venv/bin/pytest -q -p no:cacheprovider "$@"
