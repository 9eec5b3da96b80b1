"""The case report: one self-contained HTML file an examiner opens from a USB stick.

Everything is inline (CSS, JavaScript, thumbnails as ``data:`` URIs, charts as SVG drawn
by the page), and a Content-Security-Policy allows nothing else: no network request can
leave the page, and only the report's own script (pinned by its SHA-256) can run. The
case data travels as JSON in a ``<script type="application/json">`` block with ``<``,
``>``, ``&`` and the line separators escaped as ``\\uXXXX``, so no string from the
evidence can close the block or become markup; the page renders every such string with
``textContent``. Thumbnails come from ``CASE/thumbnails/`` (made during triage), never
from the evidence, and are shown blurred and grey until the examiner reveals them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

from pipeline.case.database import CaseDatabase
from pipeline.outputs.report.data import THUMBNAIL_CHOICES, collect

__all__ = ["THUMBNAIL_CHOICES", "collect", "render_html", "write_report"]

_JSON_ESCAPES = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026",
                 0x2028: "\\u2028", 0x2029: "\\u2029"}


def _asset(name: str) -> str:
    return resources.files("pipeline.outputs.report").joinpath(name).read_text(encoding="utf-8")


def script_json(data: Any) -> str:
    """JSON that is inert inside ``<script type="application/json">`` (no ``</script>``)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"),
                      allow_nan=False).translate(_JSON_ESCAPES)


def _csp_hash(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode()


def render_html(data: dict[str, Any]) -> str:
    """The whole page as one string."""
    css, js = _asset("report.css"), _asset("report.js")
    csp = (f"default-src 'none'; script-src '{_csp_hash(js)}'; style-src '{_csp_hash(css)}';"
           " img-src data:; base-uri 'none'; form-action 'none'")
    title = f"exhibit report — {data['case'].get('directory', '')}"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">\n"
        "<meta name=\"referrer\" content=\"no-referrer\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{_html_text(title)}</title>\n<style>{css}</style>\n</head>\n<body>\n"
        "<header><h1>exhibit case report</h1><nav></nav></header>\n<main>\n"
        "<section class=\"tab\" id=\"overview\"></section>\n"
        "<section class=\"tab\" id=\"matches\"></section>\n"
        "<section class=\"tab\" id=\"files\"></section>\n"
        "<section class=\"tab\" id=\"pictures\"></section>\n</main>\n"
        "<div id=\"detail\" role=\"dialog\" aria-modal=\"true\"><div class=\"sheet\"></div></div>\n"
        "<noscript><p>This report needs JavaScript to render its tables.</p></noscript>\n"
        f"<script type=\"application/json\" id=\"case-data\">{script_json(data)}</script>\n"
        f"<script>{js}</script>\n</body>\n</html>\n"
    )


def _html_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def write_report(db: CaseDatabase, case_dir: Path, output: Path,
                 thumbnails: str = "matched") -> dict[str, Any]:
    """Write the report atomically; returns what it holds (for the ledger entry)."""
    data = collect(db, case_dir, thumbnails=thumbnails)
    page = render_html(data)
    tmp = output.with_name(output.name + ".partial")
    with tmp.open("w", encoding="utf-8") as out:
        out.write(page)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(output)
    return {"files": len(data["files"]), "matched_files": data["counts"]["matched_files"],
            "thumbnails": len(data["thumbdata"]), "thumbnail_choice": thumbnails,
            "thumbnail_problems": data["thumb_problems"],
            "ledger_verified": data["ledger"]["ok"], "ledger_entries": data["ledger"]["entries"]}
