"""The runnable examples of docs/getting-started.md, docs/file-format.md and docs/targets.md, executed.

Convention (in the Markdown):

* a line ``<!-- test -->`` right before a fenced block marks it runnable (``<!-- test: lava -->``: runs only in
  the Lava test below);
* a ```` ```python ```` block is executed; the runnable blocks of one document share one namespace, in order,
  in a fresh temporary working directory (files written by one block are read by the next);
* a line ``<!-- output -->`` right before a ```` ```text ```` block makes that block the expected standard output
  of the runnable block before it;
* in a ```` ```console ```` block each ``$ neuro-hw ARGS`` line runs ``neuro_hw.cli.main(ARGS)`` in this process;
  the lines after it, up to the next ``$`` line, are its expected output (standard output, then standard error),
  and its exit status must be 0 unless the command ends with ``# exit N``.

Expected output is matched line by line after stripping trailing blanks; a line ``...`` stands for any number of
lines.  A broken example, a changed output or a changed exit status fails the test with the document, the line of
the block and the difference.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
DOCUMENTS = ("getting-started.md", "file-format.md", "targets.md")
_MARK = re.compile(r"^<!--\s*(test(?::\s*(\w+))?|output)\s*-->\s*$")
_FENCE = re.compile(r"^```(\w*)\s*$")
_EXIT = re.compile(r"\s+#\s*exit\s+(\d+)\s*$")


@dataclass
class Block:
    doc: str
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    tag: str | None  # None: default run; "lava": only in the Lava test
    expected: str | None = None  # the <!-- output --> block after it
    commands: list[tuple[str, int, list[str]]] = field(default_factory=list)  # console: (args, exit, output lines)


def parse(doc: str, text: str) -> list[Block]:
    """The runnable blocks of a Markdown document (module doc)."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        mark = _MARK.match(lines[i].strip())
        if not mark:
            i += 1
            continue
        j = i + 1
        fence = _FENCE.match(lines[j]) if j < len(lines) else None
        if fence is None:
            raise AssertionError(f"docs/{doc}:{i + 1}: a {lines[i].strip()} line must be followed by a fenced block")
        end = j + 1
        while end < len(lines) and lines[end].rstrip() != "```":
            end += 1
        if end == len(lines):
            raise AssertionError(f"docs/{doc}:{j + 1}: unclosed code block")
        body = "\n".join(lines[j + 1 : end]) + "\n"
        lang = fence.group(1)
        if mark.group(1) == "output":
            if not blocks or blocks[-1].expected is not None or blocks[-1].lang != "python" or lang != "text":
                raise AssertionError(f"docs/{doc}:{i + 1}: <!-- output --> needs a ```text block after a runnable "
                                     "python block")  # fmt: skip
            blocks[-1].expected = body
        else:
            if lang not in ("python", "console"):
                raise AssertionError(f"docs/{doc}:{j + 1}: a runnable block must be python or console, got {lang!r}")
            block = Block(doc, j + 1, lang, body, mark.group(2))
            if lang == "console":
                block.commands = _commands(block)
            blocks.append(block)
        i = end + 1
    return blocks


def _commands(block: Block) -> list[tuple[str, int, list[str]]]:
    commands: list[tuple[str, int, list[str]]] = []
    for k, line in enumerate(block.code.splitlines()):
        if line.startswith("$ "):
            if not line.startswith("$ neuro-hw "):
                raise AssertionError(f"docs/{block.doc}:{block.line + k + 1}: only '$ neuro-hw ...' commands run")
            exit_mark = _EXIT.search(line)
            args = _EXIT.sub("", line)[len("$ neuro-hw ") :]
            commands.append((args, int(exit_mark.group(1)) if exit_mark else 0, []))
        elif commands:
            commands[-1][2].append(line)
        elif line.strip():
            raise AssertionError(f"docs/{block.doc}:{block.line + k + 1}: output before the first '$ neuro-hw' line")
    if not commands:
        raise AssertionError(f"docs/{block.doc}:{block.line}: a runnable console block needs a '$ neuro-hw' line")
    return commands


def match_output(expected: str, actual: str) -> str | None:
    """None when ``actual`` matches ``expected`` (line by line, ``...`` = any lines), else a description."""
    exp = [line.rstrip() for line in expected.strip("\n").splitlines()]
    act = [line.rstrip() for line in actual.strip("\n").splitlines()]

    def ok(e: int, a: int) -> bool:
        if e == len(exp):
            return a == len(act)
        if exp[e] == "...":
            return any(ok(e + 1, k) for k in range(a, len(act) + 1))
        return a < len(act) and exp[e] == act[a] and ok(e + 1, a + 1)

    if ok(0, 0):
        return None
    return "expected:\n" + "\n".join(exp) + "\n\ngot:\n" + "\n".join(act)


def run_document(
    doc: str, tags: tuple[str | None, ...], workdir: Path, monkeypatch: pytest.MonkeyPatch, docs: Path = DOCS
) -> int:
    """Run the blocks of ``docs/doc`` whose tag is in ``tags``, in order, in ``workdir``; returns how many ran."""
    from neuro_hw.cli import main

    workdir.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(workdir)
    namespace: dict = {"__name__": "__docs__"}
    ran = 0
    for block in parse(doc, (docs / doc).read_text(encoding="utf-8")):
        if block.tag not in tags:
            continue
        where = f"docs/{doc}:{block.line}"
        if block.lang == "python":
            out = io.StringIO()
            try:
                with contextlib.redirect_stdout(out):
                    exec(compile(block.code, where, "exec"), namespace)  # noqa: S102 - the documented example
            except Exception as err:
                raise AssertionError(f"{where}: the example raised {type(err).__name__}: {err}") from err
            if block.expected is not None:
                diff = match_output(block.expected, out.getvalue())
                assert diff is None, f"{where}: the printed output differs from the document\n{diff}"
        else:
            for args, status, expected in block.commands:
                out = io.StringIO()
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                    try:
                        code = main(shlex.split(args))
                    except SystemExit as exc:  # argparse
                        code = exc.code
                assert code == status, f"{where}: 'neuro-hw {args}' exited {code}, the document says {status}\n" + (
                    out.getvalue()
                )
                if any(line.strip() for line in expected):
                    diff = match_output("\n".join(expected), out.getvalue())
                    assert diff is None, f"{where}: 'neuro-hw {args}' printed something else\n{diff}"
        ran += 1
    return ran


@pytest.mark.parametrize("doc", DOCUMENTS)
def test_documented_examples_run(doc, tmp_path, monkeypatch):
    assert run_document(doc, (None,), tmp_path, monkeypatch) > 0, f"docs/{doc} has no runnable example"


@pytest.mark.lava
@pytest.mark.slow
@pytest.mark.parametrize(
    "doc", [d for d in DOCUMENTS if "<!-- test: lava -->" in (DOCS / d).read_text(encoding="utf-8")]
)
def test_documented_lava_examples_run(doc, tmp_path, monkeypatch):
    """The Lava examples, after the page's other examples (they use its circuit); Lava is stopped by each run."""
    assert run_document(doc, (None, "lava"), tmp_path, monkeypatch) > 0


# -- the checker itself must catch broken examples ----------------------------------------------------------------
def test_a_broken_example_fails(tmp_path, monkeypatch):
    text = "<!-- test -->\n```python\nx = 1\nprint(x + 1)\n```\n<!-- output -->\n```text\n3\n```\n"
    blocks = parse("broken.md", text)
    assert len(blocks) == 1 and blocks[0].expected == "3\n"
    assert match_output(blocks[0].expected, "2\n") is not None
    assert match_output("a\n...\nd\n", "a\nb\nc\nd\n") is None
    assert match_output("a\n...\nd\n", "a\nb\nc\n") is not None
    (tmp_path / "broken.md").write_text("<!-- test -->\n```python\nraise ValueError('rotted')\n```\n")
    with pytest.raises(AssertionError, match="broken.md:2: the example raised ValueError: rotted"):
        run_document("broken.md", (None,), tmp_path / "run", monkeypatch, docs=tmp_path)
    (tmp_path / "changed.md").write_text(text)  # prints 2, documents 3
    with pytest.raises(AssertionError, match="printed output differs"):
        run_document("changed.md", (None,), tmp_path / "run", monkeypatch, docs=tmp_path)
    (tmp_path / "cli.md").write_text("<!-- test -->\n```console\n$ neuro-hw info missing.nir\n```\n")
    with pytest.raises(AssertionError, match="exited 2, the document says 0"):
        run_document("cli.md", (None,), tmp_path / "run", monkeypatch, docs=tmp_path)
    (tmp_path / "cli.md").write_text("<!-- test -->\n```console\n$ neuro-hw info missing.nir  # exit 2\nnope\n```\n")
    with pytest.raises(AssertionError, match="printed something else"):
        run_document("cli.md", (None,), tmp_path / "run", monkeypatch, docs=tmp_path)
