"""Check that duhub/v1 is what `make proto` generates from proto/ now (exit 1 if stale)."""

from __future__ import annotations

import filecmp
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DESCRIPTORS = "descriptors.binpb"


def stale_files() -> list[str]:
    """Return the generated files that differ from a fresh generation (or are missing)."""
    protos = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "proto/duhub/v1").glob("*.proto"))
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "grpc_tools.protoc",
                "-Iproto",
                f"--python_out={out}",
                f"--pyi_out={out}",
                f"--grpc_python_out={out}",
                *protos,
            ],
            cwd=ROOT,
            check=True,
        )
        # The descriptors reflection serves, with the comments (services/reflection.py).
        subprocess.run(
            [
                sys.executable,
                "-m",
                "grpc_tools.protoc",
                "-Iproto",
                "--include_source_info",
                f"--descriptor_set_out={out}/duhub/v1/{DESCRIPTORS}",
                *protos,
            ],
            cwd=ROOT,
            check=True,
        )
        fresh = Path(out) / "duhub/v1"
        names = sorted(p.name for p in fresh.iterdir())
        return [
            n
            for n in names
            if not (ROOT / "duhub/v1" / n).exists()
            or not filecmp.cmp(fresh / n, ROOT / "duhub/v1" / n, shallow=False)
        ]


def main() -> int:
    stale = stale_files()
    if stale:
        print(f"duhub/v1 is stale against proto/ ({', '.join(stale)}): run 'make proto'")
        return 1
    print("duhub/v1 is fresh")
    return 0


if __name__ == "__main__":
    sys.exit(main())
