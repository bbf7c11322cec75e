"""Results pages: one self-contained HTML file that shows a result's tables and figures, each figure with its
caption under it, so a browser (or `snakemake --report`, which shows an HTML result as is) opens on the numbers.

A page is made from what the suite already wrote: the tables' Markdown and the figures' PNG (embedded), so it
cannot disagree with them. Only the Markdown the suite writes is read: headings, pipe tables, paragraphs,
``**bold**`` and `` `code` ``; the figures' captions are reStructuredText paragraphs with ``literals``."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import jinja2

from fastexit_bench.io import atomic_path

CAPTIONS = Path(str(resources.files("fastexit_bench.reporting") / "captions"))
"""The caption of every report figure, CAPTIONS/<figure>.rst: shown under it on the results page and by
`snakemake --report` (a Jinja template that may name ``snakemake.wildcards.experiment``)."""

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1400px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 12px; margin: .5em 0; display: block; overflow-x: auto; }
th, td { border: 1px solid #ddd; padding: 2px 6px; white-space: nowrap; } th { background: #f3f3f3; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
p.note { font-size: 12px; color: #444; max-width: 1100px; }
figure { margin: 1em 0 2em; } figure img { max-width: 100%; } figcaption { max-width: 1000px; color: #333; }
nav a { margin-right: 1em; }
"""


LITERAL, CODE = re.compile(r"``(.+?)``"), r"<code>\1</code>"  # reStructuredText's inline literal, as HTML


def _inline(text: str) -> str:
    """Escaped text with the suite's inline Markdown: **bold** and `code`."""
    text = html.escape(text, quote=False)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _table(lines: Sequence[str]) -> str:
    """A pipe table (header, alignment row, rows); right-aligned columns (``---:``) stay right-aligned."""
    header, rule, *rows = lines
    right = [cell.endswith(":") and not cell.startswith(":") for cell in _cells(rule)]
    head = "".join(f"<th>{_inline(cell)}</th>" for cell in _cells(header))
    number = [' class="number"' if flag else "" for flag in right]
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{number[k] if k < len(number) else ''}>{_inline(cell)}</td>"
            for k, cell in enumerate(_cells(row))
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def markdown_html(text: str, level_shift: int = 0) -> str:
    """HTML of the Markdown the suite writes; headings move down ``level_shift`` levels (a table's title
    becomes a section of the page)."""
    parts: list[str] = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = block.splitlines()
        heading = re.match(r"(#+) (.*)", lines[0])
        if heading and len(lines) == 1:
            level = min(len(heading.group(1)) + level_shift, 6)
            parts.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif lines[0].lstrip().startswith("|") and len(lines) >= 2:
            parts.append(_table(lines))
        else:
            parts.append(f'<p class="note">{_inline(" ".join(lines))}</p>')
    return "\n".join(parts)


def caption_html(figure: str, experiment: str = "") -> str:
    """The caption of ``figure`` (CAPTIONS/<figure>.rst) for ``experiment``, as HTML paragraphs."""
    template = jinja2.Template((CAPTIONS / f"{figure}.rst").read_text(encoding="utf-8"))
    text = template.render(snakemake={"wildcards": {"experiment": experiment}})
    paragraphs = [
        html.escape(" ".join(block.split()), quote=False) for block in re.split(r"\n\s*\n", text.strip())
    ]
    return "".join(f"<p>{LITERAL.sub(CODE, paragraph)}</p>" for paragraph in paragraphs)


def figure_html(png: Path, title: str, caption: str) -> str:
    """A figure embedded as a data URI (the page stays one file), its title above and ``caption`` (HTML) under it."""
    data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
    return (
        f"<figure><h3>{html.escape(title)}</h3><img alt={html.escape(title)!r} "
        f'src="data:image/png;base64,{data}"><figcaption>{caption}</figcaption></figure>'
    )


def write_page(path: Path, title: str, lead: str, sections: Sequence[tuple[str, str]]) -> Path:
    """``path``: a page titled ``title``, ``lead`` (HTML) first, then each (anchor, HTML) section, with a
    table of contents linking them where there are several; written atomically."""
    contents = (
        " ".join(f'<a href="#{anchor}">{html.escape(anchor)}</a>' for anchor, _ in sections)
        if len(sections) > 1
        else ""
    )
    body = "\n".join(f'<section id="{anchor}">{section}</section>' for anchor, section in sections)
    page = (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{lead}<nav>{contents}</nav>\n"
        f"{body}\n</body></html>\n"
    )
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return Path(path)


def markdown_page(path: Path, markdown: str, figures: Sequence[str] = ()) -> Path:
    """``path``: the page of one Markdown result (its ``# title`` the page's), then ``figures`` (HTML)."""
    title, _, rest = markdown.strip().partition("\n")
    return write_page(
        path, title.lstrip("# "), "", [("table", markdown_html(rest)), *(("figure", f) for f in figures)]
    )
