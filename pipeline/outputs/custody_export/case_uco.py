"""The custody record as CASE/UCO JSON-LD (ontology 1.x, as shipped with case-utils).

Graph shape:

* ``case-investigation:Investigation`` — the case; its objects are everything below;
* ``uco-identity:Person`` per examiner key, ``uco-tool:Tool`` per tool version;
* per evidence image: a ``uco-observable:Disk`` (the seized media) whose
  ``uco-observable:ContentDataFacet`` carries MD5/SHA-1/SHA-256 of the media data, and a
  ``uco-observable:File`` per container file (``FileFacet``: name, path, size);
* per exhibit: a ``case-investigation:ProvenanceRecord`` with ``exhibitNumber``,
  description and the Disk and Files as objects;
* per ledger entry: a ``case-investigation:InvestigativeAction`` with performer (the
  Person), instrument (the Tool), object (the evidence acted on), result (the
  ProvenanceRecord it created, if any), start and end time (the entry's time), and the
  entry's seq and hash in its description so each action can be traced to the signed
  ledger.

Node ids end in a UUID (as UCO suggests): version 5 UUIDs of stable names within the
case's own id, so two exports of the same case name the same things the same way.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from pipeline.case.custody import CaseVerification
from pipeline.case.store import Case
from pipeline.outputs.custody_export.narrative import describe

CONTEXT = {
    "kb": "urn:exhibit:",
    "case-investigation": "https://ontology.caseontology.org/case/investigation/",
    "uco-action": "https://ontology.unifiedcyberontology.org/uco/action/",
    "uco-core": "https://ontology.unifiedcyberontology.org/uco/core/",
    "uco-identity": "https://ontology.unifiedcyberontology.org/uco/identity/",
    "uco-observable": "https://ontology.unifiedcyberontology.org/uco/observable/",
    "uco-tool": "https://ontology.unifiedcyberontology.org/uco/tool/",
    "uco-types": "https://ontology.unifiedcyberontology.org/uco/types/",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}

_HASH_NAMES = {"md5": "MD5", "sha1": "SHA1", "sha256": "SHA256"}


def _ref(node_id: str) -> dict[str, str]:
    return {"@id": node_id}


def _time(value: str) -> dict[str, str]:
    return {"@type": "xsd:dateTime", "@value": value}


def _int(value: int) -> dict[str, str]:
    return {"@type": "xsd:integer", "@value": str(value)}


def render_case(case: Case, verification: CaseVerification, entries: list[dict[str, Any]],
                evidence: list[dict[str, Any]]) -> bytes:
    try:
        namespace = uuid.UUID(case.case_id)
    except ValueError:
        namespace = uuid.uuid5(uuid.NAMESPACE_URL, f"exhibit-case:{case.case_id}")

    def nid(kind: str, name: str) -> str:
        return f"kb:{kind}-{uuid.uuid5(namespace, f'{kind}:{name}')}"

    graph: list[dict[str, Any]] = []
    people: dict[str, str] = {}
    tools: dict[str, str] = {}
    disks: dict[str, list[str]] = {}
    records: dict[str, str] = {}

    def person(actor: dict[str, Any]) -> str:
        fp = str(actor.get("key_fingerprint", "unknown"))
        if fp not in people:
            node = nid("examiner", fp)
            people[fp] = node
            graph.append({
                "@id": node, "@type": "uco-identity:Person",
                "uco-core:name": str(actor.get("examiner", "?")),
                "uco-core:description": f"examiner id {actor.get('examiner_id')}; Ed25519 key"
                                        f" fingerprint (SHA-256) {fp}",
            })
        return people[fp]

    def tool(record: dict[str, Any]) -> str:
        key = f"{record.get('name')}-{record.get('version')}"
        if key not in tools:
            node = nid("tool", key)
            tools[key] = node
            libraries = record.get("libraries") or {}
            graph.append({
                "@id": node, "@type": "uco-tool:Tool",
                "uco-core:name": str(record.get("name")),
                "uco-tool:version": str(record.get("version")),
                "uco-core:description": "libraries: " + ", ".join(
                    f"{k} {v}" for k, v in sorted(libraries.items())),
            })
        return tools[key]

    for ev in evidence:
        digest = ev["evidence_id"]
        disk = nid("disk", digest)
        hashes = []
        for algo in (a for a in ("md5", "sha1", "sha256") if ev[a]):  # None: not finished
            node = nid("hash", f"{digest}:{algo}")
            hashes.append(_ref(node))
            graph.append({"@id": node, "@type": "uco-types:Hash",
                          "uco-types:hashMethod": _HASH_NAMES[algo],
                          "uco-types:hashValue": {"@type": "xsd:hexBinary",
                                                  "@value": ev[algo]}})
        graph.append({
            "@id": disk, "@type": ["uco-observable:Disk", "uco-observable:StorageMedium"],
            "uco-core:description": "the seized media's data, as imaged",
            "uco-core:hasFacet": [{
                "@id": nid("content-facet", digest), "@type": "uco-observable:ContentDataFacet",
                "uco-observable:sizeInBytes": _int(ev["size"]),
                "uco-observable:hash": hashes,
            }],
        })
        members = [disk]
        for index, path in enumerate(ev["paths"]):
            node = nid("file", f"{digest}:{index}")
            members.append(node)
            graph.append({
                "@id": node, "@type": "uco-observable:File",
                "uco-core:description": f"image container file ({ev['format']})",
                "uco-core:hasFacet": [{
                    "@id": nid("file-facet", f"{digest}:{index}"),
                    "@type": "uco-observable:FileFacet",
                    "uco-observable:fileName": path.rsplit("/", 1)[-1],
                    "uco-observable:filePath": path,
                }],
            })
        disks[digest] = members
        for item in ev["items"]:
            node = nid("provenance-record", item["item_id"])
            records[item["item_id"]] = node
            graph.append({
                "@id": node, "@type": "case-investigation:ProvenanceRecord",
                "case-investigation:exhibitNumber": item["exhibit_number"],
                "uco-core:description": item["description"],
                "uco-core:object": [_ref(m) for m in members],
            })

    actions = []
    for entry in entries:
        node = nid("investigative-action", str(entry["seq"]))
        actions.append(node)
        what, where, why = describe(entry)
        subject = entry.get("subject") or {}
        details = entry.get("details") or {}
        action: dict[str, Any] = {
            "@id": node, "@type": "case-investigation:InvestigativeAction",
            "uco-core:name": entry["action"],
            "uco-core:description": (
                f"ledger entry {entry['seq']} (hash {entry['hash']}): {what}"
                + (f"; where: {where}" if where else "") + (f"; why: {why}" if why else "")),
            "uco-action:performer": _ref(person(entry.get("actor") or {})),
            "uco-action:instrument": [_ref(tool(entry.get("tool") or {}))],
            "uco-action:startTime": _time(entry["time"]),
            "uco-action:endTime": _time(entry["time"]),
        }
        objects = disks.get(str(subject.get("evidence_id")), [])
        if objects:
            action["uco-action:object"] = [_ref(o) for o in objects]
        if entry["action"] == "evidence.registered" and details.get("item_id") in records:
            action["uco-action:result"] = [_ref(records[details["item_id"]])]
        elif subject.get("item_id") in records:
            action["uco-action:object"] = [_ref(records[subject["item_id"]]),
                                           *action.get("uco-action:object", [])]
        graph.append(action)

    report = verification.ledger
    head = f"{report.head[0]}:{report.head[1]}" if report.head else "none"
    verdict = "OK" if verification.ok else f"FAILED: {verification.failure}"
    investigation = {
        "@id": nid("investigation", case.case_id), "@type": "case-investigation:Investigation",
        "uco-core:name": f"exhibit case {case.case_id}",
        "case-investigation:focus": "digital evidence triage and chain of custody",
        "uco-core:description": (
            f"custody ledger of {report.entries} signed entries, head {head};"
            f" verification: {verdict}"),
        "uco-core:object": [_ref(a) for a in actions] + [_ref(r) for r in records.values()],
    }
    document = {"@context": CONTEXT, "@graph": [investigation, *graph]}
    return (json.dumps(document, indent=1, ensure_ascii=False) + "\n").encode("utf-8")
