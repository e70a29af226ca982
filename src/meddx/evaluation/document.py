"""A small document written to Markdown and to self-contained HTML at once.

Every block is rendered to both formats when it is added, so the two files cannot drift and
no Markdown parser is needed for the HTML. Images are inlined in the HTML, so report.html can
be mailed or opened as an MLflow artifact without the plots folder.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

STYLE = (
    "body{font-family:sans-serif;max-width:70em;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;"
    "padding:.25em .6em;text-align:left}th{background:#eee}"
    "figure{display:inline-block;margin:.5em}img{max-width:34em}"
    "figcaption{font-size:.85em;color:#444}"
)


class Document:
    """Markdown and HTML side by side; image paths are relative to `base`, where it is saved."""

    def __init__(self, title: str, base: Path) -> None:
        self.title = title
        self.base = base
        self.image_paths: list[str] = []
        self._md = [f"# {title}", ""]
        self._html = [f"<h1>{html.escape(title)}</h1>"]

    def heading(self, text: str, level: int = 2) -> None:
        self._md += ["#" * level + f" {text}", ""]
        self._html.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def paragraph(self, text: str) -> None:
        self._md += [text, ""]
        self._html.append(f"<p>{html.escape(text)}</p>")

    def bullets(self, items: list[str]) -> None:
        self._md += [f"- {item}" for item in items] + [""]
        self._html.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>")

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        self._md += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        self._md += ["| " + " | ".join(row) + " |" for row in rows] + [""]
        cells = ["<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"]
        cells += [
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
        ]
        self._html.append("<table>" + "".join(cells) + "</table>")

    def image(self, path: str, caption: str) -> None:
        self.image_paths.append(path)
        self._md += [f"![{caption}]({path})", ""]
        data = base64.b64encode((self.base / path).read_bytes()).decode()
        self._html.append(
            f'<figure><img src="data:image/png;base64,{data}" '
            f'alt="{html.escape(caption)}"><figcaption>{html.escape(caption)}'
            "</figcaption></figure>"
        )

    def markdown(self) -> str:
        return "\n".join(self._md)

    def html(self) -> str:
        head = (
            f'<!doctype html>\n<html><head><meta charset="utf-8"><title>'
            f"{html.escape(self.title)}</title><style>{STYLE}</style></head><body>"
        )
        return "\n".join([head, *self._html, "</body></html>"]) + "\n"
