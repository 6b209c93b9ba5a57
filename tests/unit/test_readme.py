"""README's Python snippets run as pasted: each block in turn, in one namespace, as a reader
pastes them into one file; the app they build then starts its middleware (settings checked)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_readme_has_snippets() -> None:
    assert len(BLOCKS) >= 3


def test_readme_examples_run_as_pasted_and_the_app_starts(
        monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("fastapi")  # the snippets are FastAPI's; tox's fastapi envs run them
    # What a snippet leaves to the RENEWAL_* variables (README: "or, with every setting in
    # RENEWAL_* variables"), as a deployment sets them; the first snippet passes its own.
    for name, value in {"ISSUER": "https://tenant.example.com/", "CLIENT_ID": "app",
                        "CLIENT_SECRET": "secret", "SECRET_KEYS": "k" * 43,
                        "BASE_URL": "https://app.example.com", "STORE": "memory"}.items():
        monkeypatch.setenv("RENEWAL_" + name, value)
    namespace: dict[str, Any] = {}
    for index, block in enumerate(BLOCKS):
        exec(compile(block, f"README.md python block {index}", "exec"), namespace)
    app = namespace["app"]
    app.build_middleware_stack()  # constructs RenewalMiddleware: a bad setting raises here
