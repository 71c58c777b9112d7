"""Prints the service's OpenAPI document: `python scripts/openapi.py > docs/openapi.json`.

The document does not depend on the environment (no settings are read for it); a test checks that the
committed docs/openapi.json matches the app.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api_app import create_app  # noqa: E402
from settings import Settings  # noqa: E402


def document() -> str:
    app = create_app(Settings(_env_file=None, api_keys="", api_key=""))
    return json.dumps(app.openapi(), indent=2, ensure_ascii=False, sort_keys=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(document())
