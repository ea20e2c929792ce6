"""Regenerates the Python stubs next to each .proto file under api/.

Run from anywhere: ``python api/generate.py``. With ``--check`` it regenerates into a
temporary directory and exits 1 when the committed stubs differ, so a test can prove
they are fresh.
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
API = ROOT / "api"
SERVICES_DIR = "services"


def proto_files() -> list[Path]:
    return sorted(p.relative_to(ROOT) for p in API.rglob("*.proto"))


def generate(out: Path) -> None:
    include = Path(grpc_tools.__file__).parent / "_proto"
    for proto in proto_files():
        args = [
            "grpc_tools.protoc",
            f"-I{ROOT}",
            f"-I{include}",
            f"--python_out={out}",
            f"--pyi_out={out}",
        ]
        if SERVICES_DIR in proto.parts:
            args.append(f"--grpc_python_out={out}")
        if protoc.main([*args, str(proto)]) != 0:
            raise SystemExit(f"protoc failed on {proto}")


def generated_files(base: Path) -> set[Path]:
    return {
        p.relative_to(base)
        for pattern in ("*_pb2.py", "*_pb2.pyi", "*_pb2_grpc.py")
        for p in (base / "api").rglob(pattern)
    }


def stale_files() -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate(fresh)
        expected, actual = generated_files(fresh), generated_files(ROOT)
        stale = sorted(str(p) for p in expected ^ actual)
        stale += sorted(str(p) for p in expected & actual if not filecmp.cmp(fresh / p, ROOT / p, shallow=False))
        return stale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the stubs are stale")
    if parser.parse_args().check:
        stale = stale_files()
        if stale:
            print("stale generated files:", *stale, sep="\n  ")
            sys.exit(1)
        return
    generate(ROOT)


if __name__ == "__main__":
    main()
