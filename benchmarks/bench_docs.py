"""Writing a benchmark's table into the docs: between ``<!-- NAME:start -->`` and
``<!-- NAME:end -->`` markers, with a line saying when, where and from which commit."""
from __future__ import annotations

import os
import platform
import re
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_stamp(total_s: float) -> str:
    """When, where and from which commit the table was measured."""
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or "unknown"
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"_Written by `make bench` ({when}, commit {commit}, {os.cpu_count()} CPU cores, "
            f"{platform.processor() or platform.machine()}, {total_s / 60:.1f} min in all; one run: "
            f"expect a few tenths of a cm and about a point between runs)._")


def replace_block(doc: Path, name: str, text: str) -> None:
    """Rewrite what lies between ``<!-- name:start -->`` and ``<!-- name:end -->`` in ``doc``."""
    pattern = re.compile(rf"(<!-- {re.escape(name)}:start -->\n).*?(<!-- {re.escape(name)}:end -->)", re.S)
    content = doc.read_text()
    if not pattern.search(content):
        raise SystemExit(f"{doc}: no <!-- {name}:start/end --> markers to write the table between")
    doc.write_text(pattern.sub(lambda m: m.group(1) + text + "\n" + m.group(2), content))


def emit(table: str, how: str, out: Path | None) -> None:
    """Print ``table`` followed by a line saying when and how (``how``) it was measured; also
    write both to ``out`` when given."""
    text = f"{table}\n\n_{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {how}._"
    print(text)
    if out:
        out.write_text(text + "\n")
