"""The inline Markdown of the lesson's texts (**bold**, *italic*, `code`) as HTML, for the handout.

The lesson's texts use nothing else (no links, lists or headings); tests/test_lesson.py checks that every text
the handout shows, in every language, leaves no Markdown mark behind. No Markdown package comes with the
requirements (Streamlit renders Markdown in the browser), so these few rules live here.
"""

from __future__ import annotations

import html
import re

_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
# Emphasis may sit inside a word, as in CommonMark: Chinese puts no spaces around it ("输入的*修正*，").
_ITALIC = re.compile(r"(?<!\*)\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?!\*)")


def markdown_html(text: str) -> str:
    """``text`` as HTML: special characters escaped, then **bold**, *italic* and `code` marked up.

    A code span is shown as written: no emphasis inside it.
    """
    pieces = _CODE.split(text)  # prose, code, prose, code, ..., prose
    out = []
    for i, piece in enumerate(pieces):
        if i % 2:
            out.append(f"<code>{html.escape(piece)}</code>")
        else:
            prose = _BOLD.sub(r"<strong>\1</strong>", html.escape(piece))
            out.append(_ITALIC.sub(r"<em>\1</em>", prose))
    return "".join(out)
