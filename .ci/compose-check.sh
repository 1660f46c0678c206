#!/usr/bin/env bash
# Validate the compose files without a Docker engine (Debian's docker-compose 1.29 parses and
# interpolates them), and check that every SHOPRANK_* variable they set is a real setting.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v docker-compose >/dev/null || { echo "docker-compose missing: apt-get install -y docker-compose" >&2; exit 1; }
docker-compose -f docker-compose.yml config -q
docker-compose -f docker-compose.yml -f docker-compose.gpu.yml config -q
services=$(docker-compose -f docker-compose.yml config --services | sort | tr '\n' ' ')
for needed in api indexer kafka redis triton; do
  [[ " $services " == *" $needed "* ]] || { echo "compose: service $needed missing (have: $services)" >&2; exit 1; }
done
PYTHON=${PYTHON:-.venv/bin/python}
docker-compose -f docker-compose.yml config | "$PYTHON" -c '
import sys, yaml
from service.settings import Settings
config = yaml.safe_load(sys.stdin)
fields = set(Settings.model_fields)
for name, service in config["services"].items():
    env = {k: str(v) for k, v in (service.get("environment") or {}).items() if k.startswith("SHOPRANK_")}
    unknown = sorted(k for k in env if k[len("SHOPRANK_"):].lower() not in fields)
    if unknown:
        sys.exit(f"compose service {name}: unknown settings {unknown}")
    Settings(**{k[len("SHOPRANK_"):].lower(): v for k, v in env.items()})  # values must validate too
print("compose: ok,", ", ".join(sorted(config["services"])))
'
