"""Documentation: the site builds strictly, generated pages are current, the public API is documented."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import procgen
from procgen.tasks import get_task, task_names

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _gen_pages():
    spec = importlib.util.spec_from_file_location("gen_pages", DOCS / "gen_pages.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the site ------------------------------------------------------------------------------------

def test_mkdocs_build_strict(tmp_path):
    if importlib.util.find_spec("mkdocs") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("mkdocs is not installed in CI: install the docs extra (pip install -e '.[docs]')")
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]'); CI runs this test")
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    for page in ["index.html", "tasks/dyck/index.html", "api/train/index.html", "benchmarks/index.html"]:
        assert (site / page).is_file(), page
    api = (site / "api" / "procgen" / "index.html").read_text()
    assert 'id="procgen.api.generate"' in api  # mkdocstrings rendered the docstrings


def test_every_task_has_a_generated_page_in_the_nav():
    """mkdocs.yml's nav names tasks/index.md; the hook in docs/gen_pages.py lists every task page after it."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    assert "docs/gen_pages.py" in config["hooks"]
    config = _gen_pages().on_config(config)

    def pages(nav):
        for entry in nav:
            if isinstance(entry, str):
                yield entry
            else:
                for value in entry.values():
                    yield from (pages(value) if isinstance(value, list) else [value])

    in_nav = set(pages(config["nav"]))
    index = (DOCS / "tasks" / "index.md").read_text()
    for name in task_names():
        page = DOCS / "tasks" / f"{name}.md"
        assert page.is_file(), f"no page for task {name!r}: run python docs/gen_pages.py"
        assert f"tasks/{name}.md" in in_nav, name
        assert f"]({name}.md)" in index, name
        text = page.read_text()
        for p in get_task(name).params:
            assert f"`{p.name}`" in text, (name, p.name)


def test_generated_task_pages_are_up_to_date(tmp_path):
    _gen_pages().write_pages(tmp_path)
    fresh = {p.name: p.read_text() for p in tmp_path.glob("*.md")}
    committed = {p.name: p.read_text() for p in (DOCS / "tasks").glob("*.md")}
    assert sorted(committed) == sorted(fresh), "run python docs/gen_pages.py"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"docs/tasks/ is out of date for {stale}: run python docs/gen_pages.py"


def test_task_page_shows_rows_that_the_generator_makes():
    gen = _gen_pages()
    page = gen.task_page("sort")
    batch = procgen.generate("sort", 3, seed=0)
    for i in range(3):
        assert f"[{i}] {batch.render(i)}" in page
    assert "| `vocab_size` | `100` | an integer in [2, 1048576] |" in page
    assert "| 1–99 | `1` … `99` |" in page  # runs of ids are collapsed
    assert "../differences.md#sequence-tasks-and-stack" in page


def test_rst_to_markdown_handles_the_docstring_constructs():
    gen = _gen_pages()
    text = ("Intro :func:`procgen.write` and :class:`~procgen.batch.Batch`::\n\n    a  b\n\n"
            "=====  ====\nname   kind\n=====  ====\nx      y|z\n=====  ====\n\n"
            "Example\n-------\n>>> f(1)  # doctest: +SKIP\n2\n")
    md = gen.rst_to_markdown(text)
    assert "``procgen.write``" in md and "``Batch``" in md
    assert "```text\na  b\n```" in md
    assert "| name | kind |" in md and "| x | y\\|z |" in md
    assert "**Example**" in md and "```pycon\n>>> f(1)\n2\n```" in md
    numpy = gen.rst_to_markdown(text, numpy_sections=True)
    assert "Examples\n--------\n>>> f(1)\n2" in numpy  # left for griffe's numpy parser


# --- the public API is documented -----------------------------------------------------------------

def _undocumented(obj, label: str) -> list[str]:
    missing = [] if (inspect.getdoc(obj) or "").strip() else [label]
    if inspect.isclass(obj):
        fields = getattr(obj, "__dataclass_fields__", {})  # default values, not methods
        for name, member in vars(obj).items():
            if name.startswith("_") or name in fields:
                continue
            function = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
            if (inspect.isfunction(function) or isinstance(member, property)) and not (function.__doc__ or "").strip():
                missing.append(f"{label}.{name}")
    return missing


def _module_members(module_name: str):
    module = importlib.import_module(module_name)
    for name, obj in vars(module).items():
        if not name.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj)) \
                and getattr(obj, "__module__", None) == module_name:
            yield f"{module_name}.{name}", obj


def test_every_public_name_has_a_docstring():
    missing = []
    for name in procgen.__all__:
        if not name.startswith("__"):
            missing += _undocumented(getattr(procgen, name), f"procgen.{name}")
    for name in task_names():
        missing += _undocumented(getattr(procgen, name), f"procgen.{name}")
    for module in ["procgen.api", "procgen.batch", "procgen.tasks", "procgen.dataset", "procgen.hub",
                   "procgen.hub_card", "procgen.mixture", "procgen.export", "procgen.streaming"]:
        for label, obj in _module_members(module):
            missing += _undocumented(obj, label)
    assert not missing, f"public names without a docstring: {missing}"


def test_every_public_training_name_has_a_docstring():
    pytest.importorskip("torch")
    import procgen.train

    missing = []
    for name in procgen.train.__all__:
        obj = getattr(procgen.train, name)
        if callable(obj):
            missing += _undocumented(obj, f"procgen.train.{name}")
    assert not missing, f"public names without a docstring: {missing}"


def test_the_walk_catches_a_missing_docstring():
    class Documented:
        """Has a docstring."""

        def method(self):
            pass

    assert _undocumented(Documented, "Documented") == ["Documented.method"]
    assert _undocumented(lambda: None, "anonymous") == ["anonymous"]


# --- the benchmark page --------------------------------------------------------------------------

def test_benchmark_report_formats_a_page_and_plots(tmp_path):
    pytest.importorskip("matplotlib")
    sys.path.insert(0, str(ROOT))
    try:
        report = importlib.import_module("benchmarks.report")
    finally:
        sys.path.remove(str(ROOT))
    rows = [{"task": "dyck", "params": {"k": 4}, "procgen_mtok_s": 300.0, "ref_mtok_s": 2.0, "ratio": 150.0,
             "write": {1: {"mtok_s": 90.0, "rss_mb": 200.0}, 2: {"mtok_s": 150.0, "rss_mb": 400.0}},
             "cold_s": 1.5, "cached_s": 0.2},
            {"task": "mix", "params": get_task("mix").example_params, "procgen_mtok_s": 80.0, "ref_mtok_s": None,
             "ratio": None, "write": {}, "cold_s": None, "cached_s": None}]
    points = [{"n": n, "seconds": n / 4e6, "tokens": 64 * n, "mtok_s": 256.0} for n in (10**4, 10**5)]
    info = {"cpu": "CPU", "cores": 2, "memory_gib": 8.0, "os": "Linux", "python": "3.11", "numpy": "2",
            "numba": "0.6", "procgen": "0.1.0", "load": (3.0, 3.0, 3.0)}
    scale = [{"task": "dyck", "tokens": 1e9, "repeats": 3, "in_memory": 300.0,
              "write": {1: {"mtok_s": 240.0, "cores": 1.4}, 2: {"mtok_s": 300.0, "cores": 1.9},
                        (1, "page cache"): {"mtok_s": 180.0, "cores": 1.4},
                        (1, "one core"): {"mtok_s": 200.0, "cores": 1.0}}}]
    page = report.format_page(rows, points, 0.0004, info, "python -m benchmarks", "busy", report.QUICK, scale)
    assert "| dyck | k=4 | 300 | 2.00 | 150x | 90 | 150 | 200 / 400 | 1.50 | 0.20 |" in page
    assert "| dyck | 1e+09 | 3 | 300 | 240 (1.4) | 80% | 300 (1.9) | 1.25x | 200 (1.0) | 1.50x | 180 (1.4) |" in page
    assert "## Writes at scale" not in report.format_page(rows, points, 0.0004, info, "c", "", report.QUICK)
    assert "| mix | spec: set + union | 80 | n/a | n/a | n/a | n/a | n/a | n/a | n/a |" in page
    assert "pessimistic" in page and "0.4 ms" in page and "| 1e+05 |" in page
    report.plot_throughput(rows, tmp_path / "bars.png")
    report.plot_scaling(points, tmp_path / "scaling.png")
    for png in ("bars.png", "scaling.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_committed_benchmark_plots_are_small():
    for name in ("benchmarks.png", "scaling.png"):
        path = DOCS / "img" / name
        assert path.is_file(), f"{path} is missing: run python -m benchmarks"
        assert path.stat().st_size < 200_000, f"{path} is {path.stat().st_size} bytes"


def test_readme_and_ci_run_the_same_test_command():
    command = 'pip install torch==2.13.0 && pip install -e ".[train,dev,docs]" && python -m pytest -q'
    assert command in (ROOT / "README.md").read_text()
    assert command in (ROOT / ".ci" / "run").read_text()
