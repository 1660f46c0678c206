"""Package boundaries: the service imports neither the indexer nor training, and embedded mode no Kafka client."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_service_imports_neither_the_indexer_nor_training() -> None:
    offenders = {}
    for path in (ROOT / "service").rglob("*.py"):
        bad = sorted(m for m in imported_modules(path) if m.split(".")[0] in ("indexer", "training"))
        if bad:
            offenders[str(path.relative_to(ROOT))] = bad
    # service/cli.py names the command packages as strings (COMMAND_PACKAGES), it does not import them
    assert not offenders, offenders


def test_embedded_mode_loads_no_kafka_client() -> None:
    script = ("import sys\n"
              "from service.api.app import create_app\n"
              "from service.replication import item_writer, start_replication\n"
              "from service.readiness import Readiness\n"
              "create_app()\n"
              "print(sorted(m for m in sys.modules if m == 'kafka' or m.startswith('kafka.')))\n")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin"}).stdout
    assert out.strip().splitlines()[-1] == "[]", out
