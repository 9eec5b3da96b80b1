"""What libmagic's time goes to, and which of its checks could go without changing answers.

For each configuration (no flags = what file(1) and exhibit's filetype analyzer do; each
``MAGIC_NO_CHECK_*`` flag alone; a shorter buffer) it reports the CPU time per call on
a varied corpus, split into text and binary contents, and how many descriptions differ
from the no-flag answer. A check is only worth cutting when it costs time *and*
changes no answer; ``--out`` keeps the table as JSON.

Corpus: the many-small benchmark's generated files (text and binary, 0–16 KiB) plus
the first MiB of real files of this system (``/etc``, ``/usr/share/doc``, ``/usr/bin``:
scripts, configuration, HTML, compressed, ELF), drawn with a fixed seed.

CPU time is ``time.process_time`` (this process only), the best of ``--rounds``
interleaved rounds, so other load on a shared machine inflates it least.

Usage: ``python benchmarks/speed/libmagic_cost.py [--files 600] [--rounds 3] [--out F]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import magic

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from generate import content, plan  # noqa: E402

HEAD = 1 << 20
FLAGS = ("COMPRESS", "TAR", "APPTYPE", "ELF", "CDF", "CSV", "JSON", "ENCODING", "TOKENS",
         "TEXT", "SOFT")
_CONSTANTS = {"CSV": 0x0080000, "JSON": 0x0400000}  # python-magic 0.4 does not name these


def flag(name: str) -> int:
    return _CONSTANTS.get(name) or getattr(magic, f"MAGIC_NO_CHECK_{name}")


def corpus(files: int, seed: int = 5) -> dict[str, list[bytes]]:
    """Text and binary contents: generated small files and real files of this system."""
    generated = plan("many-small", scale=max(0.002, files / 100_000))[:files]
    rng = random.Random(seed)
    paths: list[Path] = []
    for root in ("/etc", "/usr/share/doc", "/usr/bin"):
        for dirpath, _dirs, names in os.walk(root):
            paths.extend(Path(dirpath) / n for n in names)
    paths = [p for p in sorted(paths) if p.is_file() and not p.is_symlink()]
    real = []
    for path in rng.sample(paths, min(files, len(paths))):
        try:
            with path.open("rb") as fh:
                real.append(fh.read(HEAD))
        except OSError:
            continue
    out: dict[str, list[bytes]] = {"text": [], "binary": []}
    probe = magic.Magic(mime=True)
    for data in [content(s) for s in generated if s.size] + [d for d in real if d]:
        out["text" if probe.from_buffer(data).startswith("text/") else "binary"].append(data)
    return out


def timed(cookie: Any, data: list[bytes], limit: int | None) -> tuple[float, list[str]]:
    started = time.process_time()
    answers = [magic.magic_buffer(cookie, d if limit is None else d[:limit]) or b""
               for d in data]
    return (time.process_time() - started) / len(data), [
        a.decode() if isinstance(a, bytes) else a for a in answers]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    data = corpus(args.files)
    configs: dict[str, tuple[int, int | None]] = {"none (file(1))": (0, None)}
    configs.update({f"NO_CHECK_{f}": (flag(f), None) for f in FLAGS})
    configs["first 4 KiB only"] = (0, 4096)
    cookies = {}
    for name, (flags, _limit) in configs.items():
        cookie = magic.magic_open(flags)
        magic.magic_load(cookie, None)
        magic.magic_setparam(cookie, magic.MAGIC_PARAM_NAME_MAX, 64)  # as python-magic
        cookies[name] = cookie
    best: dict[tuple[str, str], float] = {}
    answers: dict[tuple[str, str], list[str]] = {}
    for _ in range(args.rounds):
        for name, (_flags, limit) in configs.items():
            for kind, items in data.items():
                cpu, said = timed(cookies[name], items, limit)
                best[name, kind] = min(best.get((name, kind), cpu), cpu)
                answers[name, kind] = said
    rows = []
    for name in configs:
        row: dict[str, Any] = {"config": name}
        for kind in data:
            base = answers["none (file(1))", kind]
            row[f"{kind}_ms"] = round(best[name, kind] * 1e3, 3)
            row[f"{kind}_changed"] = sum(a != b for a, b in zip(base, answers[name, kind],
                                                                 strict=True))
        rows.append(row)
    print(f"libmagic {magic.version()}; {len(data['text'])} text and {len(data['binary'])}"
          f" binary contents; CPU ms per call, best of {args.rounds}\n")
    print("| configuration | text ms | text answers changed | binary ms |"
          " binary answers changed |\n|---|--:|--:|--:|--:|")
    for r in rows:
        print(f"| {r['config']} | {r['text_ms']:.3f} | {r['text_changed']} |"
              f" {r['binary_ms']:.3f} | {r['binary_changed']} |")
    if args.out:
        args.out.write_text(json.dumps({"libmagic": magic.version(), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
