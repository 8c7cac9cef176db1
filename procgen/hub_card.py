"""The dataset card of a Hub push: YAML metadata, one section per config and split, the citation.

:func:`procgen.hub.push` writes the repo's ``README.md`` with :func:`build_card`: the YAML
``license`` / ``configs:`` / ``dataset_info`` that the Hub and ``datasets.load_dataset`` read, then
a human card: the licence, links to procgen and to the papers with their BibTeX (:data:`PAPERS`),
and per config and split the task, every parameter, seed, sizes, the ``procgen generate`` command
that regenerates the rows exactly, an example row and the vocabulary, consecutive ids that count up
collapsed into one row (:func:`vocab_table`, which the docs' task pages use too).

A repo holds several configs (tasks) and splits: the existing card (read with :func:`parse_card`)
is merged: the same config+split is replaced, every other entry and any hand-written text is kept.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
from dataclasses import dataclass

from procgen.dataset import iter_batches

DEFAULT_CONFIG = "default"
LICENSE = "apache-2.0"  # of a new card when the user names none (procgen's own licence)
PROJECT_URL = "https://pypi.org/project/procgen-data/"
PAPERS_CODE_URL = "https://github.com/zlshinnick/procedural-pretraining"  # the papers' official code
TAGS = ("procedural", "synthetic")
TASK_CATEGORIES = ("text-generation",)
VOCAB_HEAD, VOCAB_TAIL = 24, 6  # a vocabulary with more runs of ids shows its first and last runs only
EXAMPLE_CHARS = 1500  # a longer example row is cut
SPLIT_ORDER = ("train", "validation", "test")

_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?\r?\n)?---[ \t]*(?:\r?\n|\Z)", re.S)
_CARD_BEGIN, _CARD_END = "<!-- procgen:card -->", "<!-- procgen:card-end -->"
_SECTION = re.compile(r"<!-- procgen:begin config=(\S+) split=(\S+) -->\n.*?<!-- procgen:end -->\n", re.S)


@dataclass(frozen=True)
class Paper:
    """A paper whose procedural data procgen generates, as the card and the docs cite it."""

    arxiv: str
    title: str
    authors: tuple[str, ...]
    year: int
    bibtex: str

    @property
    def url(self) -> str:
        """The paper's arXiv abstract page."""
        return f"https://arxiv.org/abs/{self.arxiv}"

    def markdown(self) -> str:
        """One Markdown line: authors, title in italics, linked arXiv id, year."""
        return f"{', '.join(self.authors)}. *{self.title}*. [arXiv:{self.arxiv}]({self.url}), {self.year}."


# The BibTeX of 2601.21725 is the official repository's (README, "Citation"); 2505.22308's is built
# from its arXiv listing (title, authors in order, identifier, year), in the same style.
PAPERS = (
    Paper("2601.21725", "Procedural Pretraining: Warming Up Language Models with Abstract Data",
          ("Liangze Jiang", "Zachary Shinnick", "Anton van den Hengel", "Hemanth Saratchandran", "Damien Teney"),
          2026,
          "@article{jiang2025proceduralpretraining,\n"
          "  title={Procedural Pretraining: Warming Up Language Models with Abstract Data},\n"
          "  author={Jiang, Liangze and Shinnick, Zachary and van den Hengel, Anton and Saratchandran, Hemanth "
          "and Teney, Damien},\n"
          "  journal={arXiv preprint arXiv:2601.21725},\n"
          "  year={2026},\n"
          "}"),
    Paper("2505.22308", "Transformers Pretrained on Procedural Data Contain Modular Structures for Algorithmic "
          "Reasoning",
          ("Zachary Shinnick", "Liangze Jiang", "Hemanth Saratchandran", "Anton van den Hengel", "Damien Teney"),
          2025,
          "@article{shinnick2025transformers,\n"
          "  title={Transformers Pretrained on Procedural Data Contain Modular Structures for Algorithmic "
          "Reasoning},\n"
          "  author={Shinnick, Zachary and Jiang, Liangze and Saratchandran, Hemanth and van den Hengel, Anton "
          "and Teney, Damien},\n"
          "  journal={arXiv preprint arXiv:2505.22308},\n"
          "  year={2025},\n"
          "}"),
)



def card_features(schema) -> list[dict]:
    """``dataset_info.features`` in the card's YAML form (``list: uint8``, ``dtype: int32``)."""
    import pyarrow as pa

    def dtype(arrow_type) -> str:
        if pa.types.is_dictionary(arrow_type):
            arrow_type = arrow_type.value_type
        if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
            return "string"
        return str(arrow_type)

    features = []
    for field in schema:
        if pa.types.is_list(field.type) or pa.types.is_large_list(field.type):
            features.append({"name": field.name, "list": dtype(field.type.value_type)})
        else:
            features.append({"name": field.name, "dtype": dtype(field.type)})
    return features


def parse_card(text: str) -> tuple[dict, str]:
    """(YAML metadata, Markdown body) of a README; a card without front matter has empty metadata."""
    import yaml

    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    try:
        meta = yaml.safe_load(match.group(1) or "") or {}
    except yaml.YAMLError as err:
        raise ValueError(f"the repo's README.md has invalid YAML metadata ({' '.join(str(err).split())}); fix or "
                         f"remove it, then push again") from None
    if not isinstance(meta, dict):
        raise ValueError("the repo's README.md metadata is not a YAML mapping; fix or remove it, then push again")
    return meta, text[match.end():]


def _config_infos(meta: dict) -> list[dict]:
    infos = meta.get("dataset_info") or []
    infos = [infos] if isinstance(infos, dict) else list(infos)
    return [dict(info, config_name=info.get("config_name", DEFAULT_CONFIG)) for info in infos
            if isinstance(info, dict)]


def check_features(meta: dict, config: str, split: str, features: list[dict]) -> None:
    """A config has one schema: refuse a split whose columns differ from the config's other splits."""
    for info in _config_infos(meta):
        others = [s.get("name") for s in info.get("splits") or [] if s.get("name") != split]
        if info["config_name"] == config and others and info.get("features") not in (None, features):
            raise ValueError(f"config {config!r} already holds split(s) {', '.join(map(str, others))} with features "
                             f"{info['features']}; this dataset has {features}: push it with another config_name")


def build_card(meta: dict, body: str, repo_id: str, config: str, split: str, folder: str, manifest: dict, schema,
               shards, remote: dict[str, int], path: str, license: str | None = None) -> str:
    """The repo's new ``README.md``: the card ``meta`` + ``body`` (see :func:`parse_card`) with this push merged in.

    ``config``/``split`` are replaced by the dataset at ``path`` (its ``manifest`` and Arrow
    ``schema``), converted to ``shards`` (:class:`procgen.hub.ParquetShard`) under ``folder``;
    ``remote`` maps the repo's files to their sizes (the other splits' download size). ``license``
    None keeps the card's licence (else procgen's, :data:`LICENSE`).
    """
    import yaml

    meta = _merged_metadata(meta, repo_id, config, split, folder, card_features(schema), shards, remote, license)
    section = _section(config, split, manifest, shards, path, repo_id)
    text = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1000)
    return f"---\n{text}---\n{_merged_body(body, meta, repo_id, config, split, section)}"


def _merged_metadata(meta, repo_id, config, split, folder, features, shards, remote, license=None) -> dict:
    meta = dict(meta)
    if license is not None:
        meta["license"] = license
    meta.setdefault("license", LICENSE)
    for key, values in (("tags", TAGS), ("task_categories", TASK_CATEGORIES)):
        existing = meta.get(key) or []
        existing = [existing] if isinstance(existing, str) else list(existing)
        meta[key] = existing + [v for v in values if v not in existing]

    # configs: replace this config's entry for this split, keep every other entry
    configs = [dict(c) for c in meta.get("configs") or [] if isinstance(c, dict)]
    entry = next((c for c in configs if c.get("config_name", DEFAULT_CONFIG) == config), None)
    if entry is None:
        entry = {"config_name": config, "data_files": []}
        configs.append(entry)
    files = entry.get("data_files") or []
    if isinstance(files, (str, dict)):
        files = [files]
    files = [f if isinstance(f, dict) else {"split": "train", "path": f} for f in files]
    files = [f for f in files if f.get("split") != split] + [{"split": split, "path": f"{folder}/{split}-*.parquet"}]
    entry["data_files"] = sorted(files, key=lambda f: _split_key(f.get("split", "")))
    meta["configs"] = configs

    # dataset_info: this config's features and split sizes; download_size from the files it will hold
    infos = _config_infos(meta)
    info = next((i for i in infos if i["config_name"] == config), None)
    if info is None:
        info = {"config_name": config}
        infos.append(info)
    splits = [s for s in info.get("splits") or [] if isinstance(s, dict) and s.get("name") != split]
    splits.append({"name": split, "num_bytes": sum(s.num_bytes for s in shards),
                   "num_examples": sum(s.num_rows for s in shards)})
    splits.sort(key=lambda s: _split_key(s["name"]))
    download_size = sum(s.size for s in shards)
    for other in entry["data_files"]:
        if other.get("split") != split:
            download_size += sum(size for p, size in remote.items() if fnmatch.fnmatchcase(p, str(other.get("path"))))
    info.update(features=features, splits=splits, download_size=download_size,
                dataset_size=sum(s.get("num_bytes") or 0 for s in splits))
    order = [c.get("config_name", DEFAULT_CONFIG) for c in configs]
    infos.sort(key=lambda i: order.index(i["config_name"]) if i["config_name"] in order else len(order))
    meta["dataset_info"] = infos[0] if len(infos) == 1 else infos
    meta["size_categories"] = [_size_category(max(sum(s.get("num_examples") or 0 for s in i.get("splits") or [])
                                                  for i in infos))]
    return meta


def _split_key(name: str):
    return (SPLIT_ORDER.index(name), "") if name in SPLIT_ORDER else (len(SPLIT_ORDER), name)


def _size_category(rows: int) -> str:
    """The Hub's ``size_categories`` bucket for a number of rows."""
    bounds = [(10 ** 3, "n<1K"), (10 ** 4, "1K<n<10K"), (10 ** 5, "10K<n<100K"), (10 ** 6, "100K<n<1M"),
              (10 ** 7, "1M<n<10M"), (10 ** 8, "10M<n<100M"), (10 ** 9, "100M<n<1B"), (10 ** 10, "1B<n<10B"),
              (10 ** 11, "10B<n<100B"), (10 ** 12, "100B<n<1T")]
    return next((label for bound, label in bounds if rows < bound), "n>1T")


def _merged_body(body: str, meta: dict, repo_id: str, config: str, split: str, section: str) -> str:
    """Regenerate procgen's part of the card (header, one section per config/split, citation), keep the rest."""
    start, end = body.find(_CARD_BEGIN), body.find(_CARD_END)
    if start >= 0 and end > start:
        before, ours, after = body[:start], body[start:end], body[end + len(_CARD_END):]
    else:  # a card written by hand (or none): keep it above procgen's part
        before, ours, after = body, "", ""
    sections = {(m.group(1), m.group(2)): m.group(0) for m in _SECTION.finditer(ours)}
    sections[(config, split)] = section
    order = [(c.get("config_name", DEFAULT_CONFIG), f.get("split")) for c in meta["configs"]
             for f in c.get("data_files") or []]
    keys = sorted(sections, key=lambda k: order.index(k) if k in order else len(order))
    part = (f"{_CARD_BEGIN}\n{_header(meta, repo_id)}\n" + "\n".join(sections[k] for k in keys) + "\n"
            + _citation() + _CARD_END)
    before = before.rstrip("\n") + "\n\n" if before.strip() else ""
    tail = after if after.strip() else "\n"
    return f"{before}{part}{tail}"


def _header(meta: dict, repo_id: str) -> str:
    infos = {i["config_name"]: i for i in _config_infos(meta)}
    rows = []
    for config in meta["configs"]:
        name = config.get("config_name", DEFAULT_CONFIG)
        for split in (infos.get(name) or {}).get("splits") or []:
            rows.append(f"| `{name}` | `{split.get('name')}` | {split.get('num_examples', 0):,} |")
    first = meta["configs"][0]
    first_split = (first.get("data_files") or [{}])[0].get("split", "train")
    return "\n".join([
        f"# {repo_id.split('/')[-1]}",
        "",
        f"Procedurally generated pretraining data, made with [procgen]({PROJECT_URL}): the procedural "
        f"pretraining tasks of {' and '.join(f'[arXiv:{p.arxiv}]({p.url})' for p in PAPERS)} (see Citation below; "
        f"the papers' official code: [{PAPERS_CODE_URL.removeprefix('https://')}]({PAPERS_CODE_URL})). "
        "Row `i` of a split is a pure function of (task, parameters, seed, split, `i`): the command under each "
        "section regenerates it exactly, and different splits never share a random stream.",
        "",
        f"License: `{meta['license']}` (the `license` field of this card's metadata).",
        "",
        "Columns: `input_ids` (token ids) and `answer_start`: the loss is on the tokens at positions "
        "`>= answer_start` (0 for language-modelling tasks). For a Hugging Face causal LM, use "
        "`labels = input_ids` with positions `< answer_start` set to -100.",
        "",
        "```python",
        "from datasets import load_dataset",
        f'ds = load_dataset("{repo_id}", "{first.get("config_name", DEFAULT_CONFIG)}", split="{first_split}")',
        "```",
        "",
        "| config | split | rows |",
        "|---|---|---|",
        *rows,
        "",
    ])


def _citation() -> str:
    """The card's last part: the papers, and their BibTeX."""
    return "\n".join([
        "## Citation",
        "",
        "The tasks and the diagnostic probes follow these papers; please cite them if you use this data:",
        "",
        *(f"- {paper.markdown()}" for paper in PAPERS),
        "",
        "```bibtex",
        "\n\n".join(paper.bibtex for paper in PAPERS),
        "```",
        "",
    ])


def _section(config: str, split: str, manifest: dict, shards, path: str, repo_id: str) -> str:
    from procgen.tasks import get_task

    task = get_task(manifest["task"])
    vocab = manifest.get("vocab") or task.vocab(manifest["params"])
    lm = manifest.get("lm_style", task.is_lm_style(task.resolve_params(manifest["params"])))
    pad = manifest.get("pad_id")
    dtype = manifest["dtype"]
    padding = f"; padding id {pad} is never stored" if pad is not None else ""
    lines = [
        f"<!-- procgen:begin config={config} split={split} -->",
        f"## `{config}` / `{split}`: {manifest['task']}",
        "",
        f"{task.summary}.",
        "",
        "| | |",
        "|---|---|",
        f"| task | `{manifest['task']}` |",
        f"| rows | {manifest['num_rows']:,} |",
        f"| tokens | {manifest['num_tokens']:,} |",
        f"| token dtype | `{dtype}` ({len(vocab)} ids{padding}) |",
        f"| seed | {manifest['seed']} |",
        f"| generated split | `{manifest['split']}` |",
        f"| loss on | {'every token (`answer_start` = 0)' if lm else 'the answer: tokens from `answer_start` on'} |",
        f"| procgen | {manifest.get('procgen_version', '?')} (format {manifest.get('format_version', '?')}) |",
        f"| files | {len(shards)} Parquet file{'s' * (len(shards) != 1)}, {sum(s.size for s in shards):,} bytes |",
        "",
        "Parameters:",
        "",
        "| parameter | value |",
        "|---|---|",
        *(f"| `{name}` | {_code(_value_text(value))} |" for name, value in manifest["params"].items()),
        "",
    ]
    command = _regenerate_command(manifest, repo_id)
    if command:
        lines += ["Regenerate these rows exactly:", "", "```bash", command, "```", ""]
    example = _example(path)
    if example:
        lines += [f"Example (row 0{'' if lm else '; `|` marks where the answer starts'}):", "", "```text", example,
                  "```", ""]
    lines += ["Vocabulary (ids → tokens; a run of ids whose names count up is one row):", "", *vocab_table(vocab),
              "", "<!-- procgen:end -->", ""]
    return "\n".join(lines)


def vocab_runs(vocab) -> list[tuple[int, int]]:
    """Group consecutive ids into runs ``(first, last)`` whose names count up one by one.

    Names count up when they share a prefix and a suffix around a number that grows by one:
    ``1, 2, ... 99``, ``v1 ... v127``, ``k0 ... k29`` and ``<unused189> ... <unused255>`` are one run
    each. A run of two ids reads better as two single ids, so it is split.

    >>> vocab_runs(["<pad>", "v1", "v2", "v3", "k0", "k1", "<eos>"])
    [(0, 0), (1, 3), (4, 4), (5, 5), (6, 6)]
    """
    runs: list[tuple[int, int]] = []
    previous = None
    for i, token in enumerate(vocab):
        match = re.fullmatch(r"(.*?)(\d+)(\D*)", str(token), re.S)
        key = (match.group(1), int(match.group(2)), match.group(3)) if match else None
        if runs and key and previous and key[0] == previous[0] and key[2] == previous[2] and key[1] == previous[1] + 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
        previous = key
    return [r for first, last in runs for r in ([(first, first), (last, last)] if last == first + 1 else
                                                [(first, last)])]


def vocab_table(vocab, head: int = VOCAB_HEAD, tail: int = VOCAB_TAIL) -> list[str]:
    """A compact Markdown table of a vocabulary (one row per run of :func:`vocab_runs`), then a total line.

    With more than ``head + tail`` runs only the first ``head`` and the last ``tail`` are shown.
    The Hub card and the task pages of the docs (``docs/gen_pages.py``) both use it.

    >>> print("\\n".join(vocab_table(["<pad>", *(f"v{i}" for i in range(1, 128))])))
    | ids | tokens |
    |---:|---|
    | 0 | `<pad>` |
    | 1–127 | `v1` … `v127` |
    <BLANKLINE>
    128 ids in total.
    """
    runs = vocab_runs(vocab)
    truncated = len(runs) > head + tail
    shown = [*runs[:head], None, *runs[len(runs) - tail:]] if truncated else runs
    lines = ["| ids | tokens |", "|---:|---|"]
    for run in shown:
        if run is None:
            left_out = runs[head:len(runs) - tail]
            lines.append(f"| … | ({sum(last - first + 1 for first, last in left_out)} more ids) |")
        elif run[0] == run[1]:
            lines.append(f"| {run[0]} | {_code(vocab[run[0]])} |")
        else:
            lines.append(f"| {run[0]}–{run[1]} | {_code(vocab[run[0]])} … {_code(vocab[run[1]])} |")
    return lines + ["", f"{len(vocab)} ids in total" + ("; some are left out above." if truncated else ".")]


def _value_text(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return ",".join(_value_text(v) for v in value)
    return str(value)


def _code(text: str) -> str:
    """``text`` as inline code inside a Markdown table cell."""
    text = str(text).replace("|", "\\|")
    fence = "``" if "`" in text else "`"
    pad = " " if "`" in text else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _regenerate_command(manifest: dict, repo_id: str) -> str | None:
    """The manifest's ``procgen generate`` command, with ``--out`` set to the repo name.

    The output directory does not affect the rows; the local path (home directory, user name)
    does not belong on a public card.
    """
    command = manifest.get("command")
    if not command:
        return None
    words = shlex.split(command)
    name = repo_id.split("/")[-1]
    for i, word in enumerate(words):
        if word in ("--out", "-o") and i + 1 < len(words):
            words[i + 1] = name
        elif word.startswith("--out="):
            words[i] = f"--out={name}"
    return shlex.join(words)


def _example(path: str) -> str:
    batch = next(iter_batches(path, rows_per_batch=1), None)
    if batch is None:
        return ""
    text = batch.render(0)
    return text if len(text) <= EXAMPLE_CHARS else text[:EXAMPLE_CHARS] + " …"

