"""The custody report as a PDF a judge can read: reportlab (pure Python), A4.

Text from examiners and from the evidence goes through :func:`_para`, which escapes
reportlab's mini-markup (``<b>``, ``<img>`` …) so a hostile file name or note prints as
the characters it is, and shows characters the embedded font lacks as ``\\u{XXXX}``
instead of silently dropping them.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from importlib import resources
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import (
    LongTable,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from pipeline.case.custody import CaseVerification
from pipeline.case.store import Case
from pipeline.outputs.custody_export.narrative import describe

_FONT, _BOLD = "ExhibitVera", "ExhibitVeraBold"
_GLYPHS: set[int] = set()


def _fonts() -> None:
    if _GLYPHS:
        return
    base = resources.files("reportlab") / "fonts"
    regular = TTFont(_FONT, str(base / "Vera.ttf"))
    pdfmetrics.registerFont(regular)
    pdfmetrics.registerFont(TTFont(_BOLD, str(base / "VeraBd.ttf")))
    _GLYPHS.update(regular.face.charToGlyph)


def _safe(text: object) -> str:
    out = []
    for char in "" if text is None else str(text):
        code = ord(char)
        if code in _GLYPHS and (code >= 32 or char in "\n\t"):
            out.append(char)
        else:
            out.append(f"\\u{{{code:04X}}}")
    return escape("".join(out))


def _styles() -> dict[str, ParagraphStyle]:
    sheet = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=sheet["BodyText"], fontName=_FONT, fontSize=9,
                          leading=11.5, alignment=TA_LEFT)
    return {
        "title": ParagraphStyle("title", parent=sheet["Title"], fontName=_BOLD, fontSize=18),
        "h2": ParagraphStyle("h2", parent=sheet["Heading2"], fontName=_BOLD, fontSize=13),
        "body": body,
        "small": ParagraphStyle("small", parent=body, fontSize=7.5, leading=9.5),
        "cell": ParagraphStyle("cell", parent=body, fontSize=8, leading=10,
                               splitLongWords=True),
        "hex": ParagraphStyle("hex", parent=body, fontSize=7, leading=9),  # 64 digits a line
        "verdict_ok": ParagraphStyle("ok", parent=body, fontName=_BOLD, fontSize=12,
                                     textColor=colors.darkgreen, leading=15),
        "verdict_bad": ParagraphStyle("bad", parent=body, fontName=_BOLD, fontSize=12,
                                      textColor=colors.red, leading=15),
    }


def _table(rows: list[list[Any]], widths: list[float], header: bool = True,
           long: bool = False) -> Table:
    cls = LongTable if long else Table
    table = cls(rows, colWidths=widths, repeatRows=1 if header else 0)
    style = [
        ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LEFTPADDING", (0, 0), (-1, -1), 3), ("RIGHTPADDING", (0, 0), (-1, -1), 3),
    ]
    if header:
        style.append(("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e4e8ee")))
    table.setStyle(TableStyle(style))
    return table


def render_pdf(case: Case, verification: CaseVerification, entries: list[dict[str, Any]],
               evidence: list[dict[str, Any]]) -> bytes:
    _fonts()
    st = _styles()

    def p(text: object, style: str = "cell") -> Paragraph:
        return Paragraph(_safe(text), st[style])

    report = verification.ledger
    story: list[Any] = []
    story.append(Paragraph("Chain of custody report", st["title"]))
    signer = case.signer
    agency = f", {signer.identity['agency']}" if signer.identity.get("agency") else ""
    story.append(p(f"Case {case.case_id} — exported by {signer.name}"
                   f" ({signer.examiner_id}{agency})"
                   f" on {entries[-1]['time'] if entries else '-'} (UTC)", "body"))
    story.append(Spacer(1, 4 * mm))

    story.append(Paragraph("Verification result", st["h2"]))
    if verification.ok:
        verdict = (f"VERIFIED: all {report.entries} ledger entries are intact, in order and"
                   " signed by the examiner keys listed below; every finding in the case"
                   " database matches the signed records.")
        story.append(p(verdict, "verdict_ok"))
        if verification.pending:
            story.append(p(f"Note: {verification.pending} analysed batch(es) are in the case"
                           " database without their ledger entry yet (an interrupted run);"
                           " their findings are not covered by this verification.", "body"))
    else:
        where = (f"entry {verification.failure_seq}: " if verification.failure_seq
                 and not str(verification.failure).startswith("entry") else "")
        story.append(p(f"VERIFICATION FAILED at {where}{verification.failure}", "verdict_bad"))
    head = report.head
    story.append(p(f"Ledger head: entry {head[0] if head else 0}, hash"
                   f" {head[1] if head else '-'}. Anyone can repeat this check with the JSON"
                   " export and the independent verifier: python -m chain_of_custody.verify"
                   " LEDGER.json", "body"))
    rows = [[p("Check"), p("Result")]] + [[p(check), p(result + (f" — {detail}" if detail
                                                                  else ""))]
                                          for check, result, detail in verification.rows]
    story.append(_table(rows, [110 * mm, 60 * mm]))

    story.append(Paragraph("Evidence items", st["h2"]))
    if not evidence:
        story.append(p("No evidence has been registered in this case.", "body"))
    for ev in evidence:
        items = ev["items"] or [{}]
        for item in items:
            label = item.get("exhibit_number") or "(not registered as an exhibit)"
            rows = [
                [p("Exhibit number"), p(label)],
                [p("Description"), p(item.get("description") or "-")],
                [p("Seal"), p(item.get("seal") or "-")],
                [p("Seized from / at"), p(f"{item.get('seized_from') or '-'} /"
                                          f" {item.get('seized_at') or '-'}")],
                [p("Authority"), p(item.get("authority") or "-")],
                [p("Collected by"), p(item.get("collected_by") or "-")],
                [p("Custody now"), p(f"{item.get('status', '-')}, holder"
                                     f" {item.get('holder', '-')}, location"
                                     f" {item.get('location') or '-'}"
                                     + (f", transfer to {item['pending_to']} not yet"
                                        " acknowledged" if item.get("pending_to") else ""))],
                [p("Image"), p(f"{ev['format']}: {', '.join(ev['paths'])} ({ev['size']:,} bytes)")],
                [p("MD5"), p(ev["md5"])],
                [p("SHA-1"), p(ev["sha1"])],
                [p("SHA-256"), p(ev["sha256"])],
                [p("Acquisition hashes"), p(_acquisition(ev))],
                [p("Last re-verification"), p(
                    f"{item.get('last_verification') or 'never'}"
                    f" {item.get('last_verified_at') or ''}")],
            ]
            story.append(_table(rows, [38 * mm, 132 * mm], header=False))
            story.append(Spacer(1, 3 * mm))

    story.append(PageBreak())
    story.append(Paragraph("Chronology of custody and work", st["h2"]))
    story.append(p("Every row is one signed ledger entry, oldest first. Times are UTC.",
                   "body"))
    rows = [[p("#"), p("When (UTC)"), p("Who"), p("What"), p("Where"), p("Why")]]
    for entry in entries:
        what, where, why = describe(entry)
        day, _, clock = entry["time"].partition("T")
        when = Paragraph(f"{_safe(day)}<br/>{_safe(clock)}", st["cell"])
        rows.append([p(entry["seq"]), when,
                     p(_who_short(entry.get("actor"))), p(what), p(where), p(why)])
    story.append(_table(rows, [9 * mm, 24 * mm, 28 * mm, 69 * mm, 20 * mm, 20 * mm], long=True))

    story.append(Paragraph("Tools and versions", st["h2"]))
    tools: Counter[str] = Counter()
    libraries: dict[str, dict[str, Any]] = {}
    for entry in entries:
        tool = entry.get("tool") or {}
        key = f"{tool.get('name')} {tool.get('version')}"
        tools[key] += 1
        libraries.setdefault(key, tool.get("libraries") or {})
    for key, count in sorted(tools.items()):
        story.append(p(f"{key} — {count} entries", "body"))
        libs = libraries.get(key) or {}
        if libs:
            story.append(p(", ".join(f"{k} {v}" for k, v in sorted(libs.items())), "small"))

    story.append(Paragraph("Examiner keys", st["h2"]))
    story.append(p("Each entry is signed with the Ed25519 key of the examiner who made it."
                   " Compare these fingerprints with the ones the examiners attest.", "body"))
    keys = case.db.conn.execute("SELECT * FROM examiner_keys ORDER BY first_seq").fetchall()
    rows = [[p("Examiner"), p("Entries"), p("Key fingerprint (SHA-256)")]]
    for key in keys:
        record = json.loads(key["record"])
        who = f"{record.get('name')} ({record.get('examiner_id')})"
        extra = ", ".join(x for x in (record.get("agency"), record.get("badge_id")) if x)
        rows.append([p(who + (f", {extra}" if extra else "")),
                     p(report.signers.get(key["fingerprint"], 0)),
                     p(key["fingerprint"], "hex")])
    story.append(_table(rows, [52 * mm, 15 * mm, 107 * mm]))

    buffer = io.BytesIO()
    doc = SimpleDocTemplate(buffer, pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm,
                            topMargin=16 * mm, bottomMargin=16 * mm,
                            title="Chain of custody report", author="exhibit",
                            subject=f"case {case.case_id}", invariant=True)

    def footer(canvas: Any, document: Any) -> None:
        canvas.saveState()
        canvas.setFont(_FONT, 7.5)
        canvas.drawString(18 * mm, 10 * mm, f"Case {case.case_id} — chain of custody report")
        canvas.drawRightString(A4[0] - 18 * mm, 10 * mm, f"page {document.page}")
        canvas.restoreState()

    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()


def _acquisition(ev: dict[str, Any]) -> str:
    """Stated versus computed hashes, in words."""
    if not ev["comparisons"]:
        return "no hashes were stated to compare with (the hashes above were computed)"
    verdict = ("match the stated hashes" if ev["acquisition_verified"]
               else "DO NOT MATCH the stated hashes")
    return verdict + ": " + "; ".join(f"{c['algorithm']} ({c['source']}): {c['status']}"
                                      for c in ev["comparisons"])


def _who_short(actor: object) -> str:
    if not isinstance(actor, dict):
        return "?"
    return f"{actor.get('examiner', '?')} ({actor.get('examiner_id', '?')})"
