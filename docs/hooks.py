"""MkDocs hook: hand the papers procgen cites to the theme, so every page's footer cites them.

The one source is ``procgen.hub.PAPERS`` (the Hub card cites the same entries); the template
``docs/overrides/main.html`` renders them under each page with their BibTeX.
"""

from __future__ import annotations


def on_config(config):
    """Put ``papers`` (title, authors, arXiv id and link, year, BibTeX) and ``papers_code`` in ``extra``."""
    from procgen.hub import PAPERS, PAPERS_CODE_URL

    config.extra["papers"] = [{"arxiv": p.arxiv, "url": p.url, "title": p.title, "authors": ", ".join(p.authors),
                               "year": p.year, "bibtex": p.bibtex} for p in PAPERS]
    config.extra["papers_code"] = PAPERS_CODE_URL
    return config
