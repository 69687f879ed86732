"""The demo's one self-contained HTML report: figures embedded as base64 PNG, no external files or scripts."""

from __future__ import annotations

import base64
import html
import os
import tempfile
from pathlib import Path

from neuro_hw.demo.model import DemoResult, Section

_STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1100px; margin: 2em auto;
       color: #222; line-height: 1.45; padding: 0 1em; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.ok { background: #e6f4e6; } td.bad { background: #fbe3e3; } td.na { background: #f3f3f3; }
.headline li { margin: 0.15em 0; } .meta { color: #666; font-size: 0.9em; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; } .error { color: #a00; white-space: pre-wrap; }
"""


def _e(text: object) -> str:
    return html.escape(str(text))


def _img(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{_e(Path(path).name)}" src="data:image/png;base64,{data}">'


def _holds(value: bool | None) -> tuple[str, str]:
    return {True: ("ok", "holds"), False: ("bad", "does not hold"), None: ("na", "not decided")}[value]


def _section(s: Section) -> str:
    out = [f'<h2 id="{_e(s.key)}">{_e(s.title)}</h2>', f"<p>{_e(s.description)}</p>"]
    out.append(f'<p class="meta">seeds {_e(s.seeds)}; {s.seconds:.1f} s</p>')
    if s.error:
        out.append(f'<p class="error">This section failed: {_e(s.error)}</p>')
    if s.headline:
        out.append('<ul class="headline">' + "".join(f"<li>{_e(h)}</li>" for h in s.headline) + "</ul>")
    if s.exact is not None:
        cls = "ok" if s.exact.passed else ("na" if s.exact.skipped else "bad")
        out.append(f'<table><tr><th>emulator vs Lava</th><td class="{cls}">{_e(s.exact.verdict())}</td></tr></table>')
    if s.claims:
        rows = []
        for c in s.claims:
            cls, word = _holds(c.holds)
            rows.append(f"<tr><td>{_e(c.statement)}</td><td>{_e(c.expected)}</td><td>{_e(c.measured)}</td>"
                        f'<td class="{cls}">{word}</td></tr>')  # fmt: skip
        out.append("<table><tr><th>claim</th><th>expected</th><th>measured</th><th>verdict</th></tr>"
                   + "".join(rows) + "</table>")  # fmt: skip
    for t in s.tables:
        head = "".join(f"<th>{_e(h)}</th>" for h in t.header)
        body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in t.rows)
        out.append(f"<h3>{_e(t.title)}</h3><table><tr>{head}</tr>{body}</table>")
    for f in s.figures:
        if Path(f.path).exists():
            out.append(f"<figure><figcaption><b>{_e(f.title)}</b> {_e(f.caption)}</figcaption>{_img(f.path)}</figure>")
    for n in s.notes:
        out.append(f'<p class="meta">{_e(n)}</p>')
    return "\n".join(out)


def render(result: DemoResult) -> str:
    """The report as one HTML string."""
    toc = "".join(f'<li><a href="#{_e(s.key)}">{_e(s.title)}</a></li>' for s in result.sections)
    versions = ", ".join(f"{k} {v}" for k, v in result.versions.items())
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>neuro-hw demo</title>"
        f"<style>{_STYLE}</style></head><body>"
        "<h1>neuro-hw: learning circuits on emulated Loihi 2 fixed point</h1>"
        f'<p class="meta">{_e(result.started)}; mode {_e(result.mode)}; {result.seconds:.0f} s; {_e(versions)}</p>'
        f"<ul>{toc}</ul>" + "\n".join(_section(s) for s in result.sections) + "</body></html>"
    )


def write(result: DemoResult, path: Path) -> Path:
    """Write the report atomically (a temporary file beside it, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(render(result))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; the report is an ordinary file
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
