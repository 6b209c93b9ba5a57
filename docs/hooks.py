"""MkDocs hook: the Settings page's table, generated from ``renewal_middleware.config.Settings``.

``docs/settings.md`` holds the marker ``<!-- settings-table -->``; this hook replaces it with one
row per field of the dataclass: its name, its ``RENEWAL_*`` variable, its default and the ``#:``
comment written above it in ``config.py``. The table therefore cannot drift from the code.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from typing import Any

from renewal_middleware.config import Settings
from renewal_middleware.values import env_name

MARKER = "<!-- settings-table -->"

_FIELD = re.compile(r"^\s+(\w+)\s*:")
_DOC = re.compile(r"^\s+#:\s?(.*)$")


def field_docs(cls: type) -> dict[str, str]:
    """The ``#:`` comment lines just above each field of ``cls``, joined into one line."""
    docs: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(cls).splitlines():
        doc = _DOC.match(line)
        if doc:
            pending.append(doc.group(1).strip())
            continue
        field = _FIELD.match(line)
        if field and pending:
            docs[field.group(1)] = " ".join(pending)
        pending = []
    return docs


def _default(field: dataclasses.Field[Any]) -> str:
    if field.default is dataclasses.MISSING:
        return "required"
    value = field.default
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    text = f"`{value}`"
    if isinstance(value, int) and field.name.endswith("_seconds") and value and value % 86400 == 0:
        days = value // 86400
        text += f" ({days} day{'s' if days > 1 else ''})"
    return text


def _cell(text: str) -> str:
    """Markdown for one table cell: the source's ``rst`` literals become `code`."""
    return text.replace("``", "`").replace("|", "\\|")


def settings_table() -> str:
    docs = field_docs(Settings)
    rows = [
        "| setting | variable | default | meaning |",
        "|---|---|---|---|",
    ]
    for field in dataclasses.fields(Settings):
        rows.append(
            f"| `{field.name}` | `{env_name(field.name)}` | {_cell(_default(field))} "
            f"| {_cell(docs.get(field.name, ''))} |"
        )
    return "\n".join(rows) + "\n"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, settings_table())
