"""Generate the task pages of the documentation from the code: ``python docs/gen_pages.py [OUT_DIR]``.

Writes ``docs/tasks/index.md`` and one ``docs/tasks/<task>.md`` per registered task, built from
the registry (``procgen.tasks.get_task``): summary, the task module's docstring, the parameter
specs (default, allowed values, help), the token layout and the vocabulary (runs of ids collapsed
by ``procgen.hub.vocab_table``, as on the Hub card) measured on generated rows,
three rendered example rows (seed 0, ``Task.example_params``), the paper finding the task serves
(``Task.finding``), and the sections of ``docs/differences.md`` it names (``Task.differences``).
``tests/test_docs.py`` regenerates the pages into a temporary directory and fails when the
committed ones differ, so the pages cannot drift from the code.

mkdocs also loads this file as a hook (``hooks:`` in mkdocs.yml): :func:`on_config` lists every
task page in the navigation after ``tasks/index.md``, so a new task needs no edit of mkdocs.yml.
"""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path

import procgen
from procgen.hub import vocab_table
from procgen.tasks import get_task, task_module, task_names

DOCS = Path(__file__).resolve().parent
EXAMPLE_ROWS = 3

# A bullet of docs/differences.md whose bold lead names one of these words is about those tasks
# only, and is left off the other tasks' pages.
_BULLET_TOPICS = {
    "union": {"union"}, "delete": {"delete"}, "stack": {"stack"}, "haystack": {"haystack"},
    "arithmetic": {"addition", "reversed_addition", "multiplication"},
    "dyck": {"dyck"}, "dyck_shuffle": {"dyck_shuffle"},
}
# "###" subsections of docs/differences.md that concern only some tasks.
_SUBSECTION_TOPICS = {"ECA is a reconstruction": {"eca"},
                      "Diagnostics: the official harness's layouts and scoring":
                          {"haystack", "addition", "reversed_addition", "multiplication"}}


# --- small Markdown helpers ---------------------------------------------------------------------

def cell(text) -> str:
    """Text made safe for a Markdown table cell."""
    return (str(text).replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*")
            .replace("<", "&lt;").replace("\n", " "))


def code(text) -> str:
    """An inline code span (safe in table cells)."""
    text = str(text).replace("|", "\\|")
    return f"``{text}``" if "`" in text else f"`{text}`"


def slug(heading: str) -> str:
    """The anchor Python-Markdown's ``toc`` extension gives a heading."""
    text = re.sub(r"[^\w\s-]", "", heading).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


# numpy-docstring section titles (what griffe's numpy parser recognises), plus RST's "Example"
NUMPY_SECTIONS = {"deprecated", "parameters", "other parameters", "returns", "yields", "receives", "raises",
                  "warns", "examples", "attributes", "functions", "methods", "classes", "modules"}


def rst_to_markdown(text: str, numpy_sections: bool = False) -> str:
    """Convert the reStructuredText subset of procgen's docstrings to Markdown.

    Handles roles (``:func:`x```), section underlines, doctest blocks (``# doctest:`` directives
    dropped), ``::`` literal blocks, simple tables and definition lists. With ``numpy_sections``
    (the mkdocstrings side, see ``docs/griffe_rst.py``) numpy section headers are kept for griffe's
    numpy parser ("Example" becomes "Examples"), doctests inside an Examples section are left to it,
    and indented blocks are not read as definition lists (they are parameter descriptions).
    """
    text = re.sub(r":(?:func|class|mod|meth|attr|data|exc):`(~?)([^`]+)`",
                  lambda m: f"``{m.group(2).split('.')[-1] if m.group(1) else m.group(2)}``", text)
    text = re.sub(r"[ \t]+# doctest:[^\n]*", "", text)
    lines = text.splitlines()
    out: list[str] = []
    section = None
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.strip() and re.fullmatch(r"[-=~]{3,}", nxt.strip() or "x") and len(nxt.strip()) >= len(line.strip()) \
                and not re.fullmatch(r"[=\s]+", line):  # a section underline
            title = line.strip()
            name = "Examples" if title.lower() == "example" else title
            if numpy_sections and name.lower() in NUMPY_SECTIONS:
                out += [name, "-" * len(name)]
                section = name.lower()
            else:
                out += [f"**{title}**", ""]
                section = None
            i += 2
            continue
        if re.fullmatch(r"=+(\s+=+)+", line.strip()):  # a simple table
            i = _simple_table(lines, i, out)
            continue
        if line.startswith(">>>") and not (numpy_sections and section == "examples"):
            block = []  # a doctest block, up to the next blank line
            while i < len(lines) and lines[i].strip():
                block.append(lines[i])
                i += 1
            out += ["```pycon", *block, "```", ""]
            continue
        if line.rstrip().endswith("::") and not line.startswith(" ") and i + 1 < len(lines):
            intro = line.rstrip()[:-2].rstrip()  # a literal block follows
            if intro:
                out.append(intro + ":")
            i += 1
            block, i = _indented_block(lines, i)
            out += ["", "```text", *block, "```", ""]
            continue
        if not numpy_sections and line.strip() and not line.startswith((" ", "*", "-")) and nxt.startswith("    ") \
                and nxt.strip() and not line.rstrip().endswith((".", ":", ",")):
            out += [f"**{line.strip()}**", ""]  # a definition list term; its body is dedented
            i += 1
            block, i = _indented_block(lines, i)
            out += [rst_to_markdown("\n".join(block)), ""]
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


def _indented_block(lines: list[str], i: int) -> tuple[list[str], int]:
    """The indented block starting at ``lines[i]`` (leading blank lines skipped), dedented."""
    while i < len(lines) and not lines[i].strip():
        i += 1
    block = []
    while i < len(lines) and (not lines[i].strip() or lines[i].startswith(" ")):
        block.append(lines[i])
        i += 1
    while block and not block[-1].strip():
        block.pop()
    indent = min(len(b) - len(b.lstrip()) for b in block if b.strip())
    return [b[indent:] for b in block], i


def _simple_table(lines: list[str], i: int, out: list[str]) -> int:
    border = lines[i]
    spans = [(m.start(), m.end()) for m in re.finditer(r"=+", border)]

    def cells(row: str) -> list[str]:
        parts = []
        for j, (lo, _) in enumerate(spans):
            hi = spans[j + 1][0] if j + 1 < len(spans) else len(row)
            parts.append(row[lo:hi].strip())
        return parts

    rows, borders = [], 0
    i += 1
    while i < len(lines) and borders < 2:
        if lines[i].strip() == border.strip():
            borders += 1
        elif lines[i].strip():
            row = cells(lines[i])
            if not row[0] and rows:  # RST: a blank first column continues the previous row
                rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], row)]
            else:
                rows.append(row)
        i += 1
    header, body = rows[0], rows[1:]
    out.append("| " + " | ".join(header) + " |")
    out.append("|" + "---|" * len(header))
    out += ["| " + " | ".join(cell(c) if "``" not in c else c.replace("|", "\\|") for c in row) + " |"
            for row in body]
    return i


# --- docs/differences.md --------------------------------------------------------------------------

def difference_sections() -> dict[str, list[tuple[str, str]]]:
    """``{"##" heading: [("###" heading or "", body Markdown), ...]}`` of docs/differences.md."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = sub = None
    body: list[str] = []

    def flush():
        if current is not None and (sub or "\n".join(body).strip()):
            sections[current].append((sub or "", "\n".join(body).strip()))

    for line in (DOCS / "differences.md").read_text().splitlines():
        if line.startswith("## "):
            flush()
            current, sub, body = line[3:].strip(), None, []
            sections[current] = []
        elif line.startswith("### ") and current is not None:
            flush()
            sub, body = line[4:].strip(), []
        elif current is not None:
            body.append(line)
    flush()
    return sections


def _bullets_for(task: str, text: str) -> str:
    """``text`` without the bullets whose bold lead is about other tasks."""
    kept, skipping = [], False
    for line in text.splitlines():
        if line.startswith("- "):
            lead = re.match(r"- \*\*(.+?)\*\*", line)
            words = set(re.findall(r"[a-z_]+", lead.group(1).lower())) if lead else set()
            topics = set().union(*(_BULLET_TOPICS[w] for w in words if w in _BULLET_TOPICS)) if words else set()
            skipping = bool(topics) and task not in topics
        elif not line.startswith(" "):
            skipping = False
        if not skipping:
            kept.append(line)
    return "\n".join(kept).strip()


def differences_markdown(task: str) -> str:
    """The parts of docs/differences.md about ``task``, with links back to it."""
    sections = difference_sections()
    parts = []
    for heading in get_task(task).differences:
        link = f"../differences.md#{slug(heading)}"
        parts.append(f"From [Differences from the reference code: {heading}]({link}):")
        for sub, body in sections[heading]:
            if sub and task not in _SUBSECTION_TOPICS.get(sub, {task}):
                continue
            text = _bullets_for(task, body)
            if not text:
                continue
            if sub:
                parts.append(f"#### {sub}")
            text = re.sub(r"\]\((?!https?:|#|\.\./)([^)]+)\)", r"](../\1)", text)  # links were relative to docs/
            parts.append(re.sub(r"^(#+) ", lambda m: "#" * (len(m.group(1)) + 2) + " ", text, flags=re.M))
    if not parts:
        parts.append("No reference code exists for this feature; everything here is procgen's own design. "
                     "The seeding contract of the [Reproducibility](../reproducibility.md) page applies.")
    return "\n\n".join(parts)


# --- pages ----------------------------------------------------------------------------------------

def example_batch(name: str):
    """The rows shown on a task's page: seed 0, the task's ``example_params`` (else the defaults)."""
    return procgen.generate(name, EXAMPLE_ROWS, seed=0, **copy.deepcopy(get_task(name).example_params))


def _param_table(task) -> list[str]:
    lines = ["| parameter | default | allowed values | meaning |", "|---|---|---|---|"]
    for p in task.params:
        lines.append(f"| {code(p.name)} | {code(repr(p.default))} | {cell(p.allowed())} | {cell(p.help)} |")
    return lines


def _layout_table(task, batch) -> list[str]:
    params = batch.params
    starts = sorted(set(int(a) for a in batch.answer_start))
    lengths = sorted(set(int(x) for x in batch.lengths))
    pad = batch.pad_id
    rows = [
        ("row length (examples)", ", ".join(map(str, lengths)) + " tokens"),
        ("longest possible row", f"{task.max_row_length(params)} tokens"),
        ("`answer_start` (examples)", ", ".join(map(str, starts))
         + (" (LM-style: the loss covers every token)" if task.is_lm_style(params) else " (labels are the tokens from here on)")),
        ("vocabulary size", str(task.vocab_size(params))),
        ("token dtype", code(batch.tokens.dtype)),
        ("pad id", "none" if pad is None else f"{pad} (never stored; a collation concern)"),
    ]
    lines = ["| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    return lines


def _spec_format() -> list[str]:
    """The keys of a mixture spec (the values come from procgen.mixture, so they cannot drift)."""
    from procgen import mixture

    return ["## Spec format", "",
            "The one parameter, `spec`, is a mapping (inline, or a YAML/JSON file for `procgen generate mix "
            "--spec FILE`):", "",
            "| key | value | default |", "|---|---|---|",
            "| `tasks` | `{task name: {weight: w, parameter: value, ...}}`: every registered task except `mix`; "
            "`weight` is a number > 0 (a token share, normalised to sum to 1), the other keys are that "
            "task's parameters | required |",
            f"| `vocab` | one of {', '.join(code(m) for m in mixture.VOCAB_MODES)} | `auto` |",
            f"| `period` | an integer in [1, 1000000]: rows per scheduling period | `{mixture.DEFAULT_PERIOD}` |",
            "", "```yaml", "tasks:", "  set: {weight: 0.5, vocab_size: 100}", "  union: {weight: 0.5}",
            "vocab: auto", "```", "",
            "`procgen.mix(weights, tokens=..., params={task: {...}})` builds the same spec from keyword "
            "arguments.", ""]


def _usage(name: str) -> list[str]:
    if name == "mix":
        return ["```python", "import procgen",
                'b = procgen.mix({"set": 0.5, "union": 0.5}, tokens=4e6, seed=0)   # weights are token shares',
                'b = procgen.generate("mix", 1000, spec={"tasks": {"set": {"weight": 0.5}, "union": {"weight": 0.5}}})',
                "```", "", "```bash",
                "procgen generate mix --spec spec.yaml -n 1e6 --out data/mix", "```"]
    task = get_task(name)
    shown = [p for p in task.params if p.default is not None and p.kind in (int, str)][:3]
    flags = " ".join(f"--{p.name.replace('_', '-')} {p.default}" for p in shown)
    return ["```python", "import procgen", f"b = procgen.{name}(n=1000, seed=0)          # a Batch in memory",
            f'b = procgen.generate("{name}", 1000, seed=0)  # the same rows', "b.show(3)", "```", "", "```bash",
            f"procgen generate {name} -n 1e6 --out data/{name} {flags}".rstrip(), "```"]


def task_page(name: str) -> str:
    """The Markdown page of one task."""
    task = get_task(name)
    module = task_module(name)
    doc = (module.__doc__ or "").strip()
    batch = example_batch(name)
    given = task.example_params
    lines = [f"# `{name}`", "", f"{task.summary[0].upper()}{task.summary[1:]}.", ""]
    if task.notes:
        lines += [task.notes, ""]
    if task.finding:
        lines += ["## Paper finding it serves", "", task.finding, ""]
    lines += ["## Usage", "", *_usage(name), "", "## Parameters", "", *_param_table(task), ""]
    if name == "mix":
        lines += _spec_format()
    lines += ["## Token layout", "",
              f"Measured on the example rows below ({'default parameters' if not given else 'the example spec'}).", "",
              *_layout_table(task, batch), "", "## Vocabulary", "", *vocab_table(batch.vocab), ""]
    call = f'procgen.generate("{name}", {EXAMPLE_ROWS}, seed=0' + "".join(
        f", {key}={value!r}" for key, value in (given or {}).items()) + ")"
    lines += ["## Example rows", "",
              f"`{call}`, rendered with `Batch.render(i)`; `|` marks `answer_start`"
              + (" and `[task]` the row's source task" if name == "mix" else "") + ".", ""]
    lines += ["```text", *(f"[{i}] {batch.render(i)}" for i in range(len(batch))), "```", ""]
    lines += [f"Ids of row 0: `{batch[0].tolist()}`", ""]
    lines += [f"## About the task family (`{module.__name__}`)", "", rst_to_markdown(doc), ""]
    lines += ["## Differences from the reference code", "", differences_markdown(name), ""]
    return "\n".join(lines).rstrip() + "\n"


def index_page(names: list[str]) -> str:
    """The task gallery: one line per task."""
    lines = ["# Tasks", "",
             "Every registered task, generated from the registry by `docs/gen_pages.py` (do not edit these "
             "pages by hand). Each page lists the parameters with defaults and allowed values, the token "
             "layout, the vocabulary, example rows, the paper finding the task serves and the differences "
             "from the reference code.", "",
             "| task | rows | `answer_start` | vocabulary | dtype |", "|---|---|---|---:|---|"]
    for name in names:
        task = get_task(name)
        batch = example_batch(name)
        start = "0 (LM-style)" if task.is_lm_style(batch.params) else str(int(batch.answer_start[0]))
        lines.append(f"| [{name}]({name}.md) | {cell(task.summary)} | {start} | {task.vocab_size(batch.params)} | "
                     f"{code(batch.tokens.dtype)} |")
    lines += ["", "`answer_start` and the vocabulary are those of the default parameters (for `mix`, the "
              "example spec on its page).", "",
              "A new task is one module and nothing else: see [Adding a task](../adding-a-task.md)."]
    return "\n".join(lines) + "\n"


def pages() -> dict[str, str]:
    """``{file name: Markdown}`` for every generated page."""
    names = task_names()
    result = {"index.md": index_page(names)}
    for name in names:
        result[f"{name}.md"] = task_page(name)
    return result


def write_pages(out: Path) -> list[Path]:
    """Write the pages into ``out`` (created if needed), removing stale generated ``.md`` files."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    generated = pages()
    for stale in out.glob("*.md"):
        if stale.name not in generated:
            stale.unlink()
    written = []
    for file_name, text in generated.items():
        path = out / file_name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def task_nav() -> list[str]:
    """The generated task pages, as mkdocs nav entries, in registry order."""
    return [f"tasks/{name}.md" for name in task_names()]


def on_config(config):
    """mkdocs hook: list every task page after ``tasks/index.md`` in the navigation.

    mkdocs.yml's nav names only the index (the hand-written part); the pages come from the registry,
    in its order, so that a new task needs no edit there.
    """
    def expand(entries):
        for i, entry in enumerate(entries):
            if entry == "tasks/index.md":
                listed = {e for e in entries if isinstance(e, str)}
                entries[i + 1:i + 1] = [page for page in task_nav() if page not in listed]
                return True
            values = entry.values() if isinstance(entry, dict) else ()
            if any(isinstance(value, list) and expand(value) for value in values):
                return True
        return False

    expand(config["nav"])
    return config


def main(argv=None) -> None:
    """Command line: ``python docs/gen_pages.py [OUT_DIR]`` (default ``docs/tasks``)."""
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else DOCS / "tasks"
    paths = write_pages(out)
    print(f"wrote {len(paths)} pages to {out}")


if __name__ == "__main__":
    main()
