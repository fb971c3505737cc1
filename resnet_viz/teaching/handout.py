"""The printable lesson handout: one self-contained HTML file with every step's question, answer and figures."""

from __future__ import annotations

import base64
import html
import io

from ..i18n import _
from .diagrams import BLOCK_CODE
from .lesson import FURTHER_READING, Reveal, Step
from .markdown import markdown_html

_CSS = """body{font-family:"Helvetica Neue",Arial,"Noto Sans CJK SC","Microsoft YaHei",sans-serif;max-width:980px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.5}h1{color:#1f77b4}section{page-break-inside:avoid;
border-top:1px solid #ccc;margin-top:2em}ol.choices li.right{font-weight:bold;color:#1a7f37}pre{background:#f5f5f5;
padding:.8em;overflow:auto;font-size:12px}.answer{background:#eef6ee;padding:.6em 1em;border-left:4px solid #1a7f37}
.note{color:#555;font-style:italic}img{max-width:100%}"""


def _png_data_uri(image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def handout_html(steps: list[Step], reveals: dict[str, Reveal | None], *, lang: str) -> str:
    """A self-contained HTML handout: every step's question, choices, answer, explanation and figures.

    Charts are interactive plotly figures with plotly.js embedded once, so the file works offline and prints
    from any browser; pictures are PNG data URIs. Texts are in the current language.
    """
    title = html.escape(_("ResNet twins: lesson handout"))
    intro = _(
        "Residual learning in {n} steps. Each step asks a question to predict, then shows the answer with a "
        "figure computed by the app."
    ).format(n=len(steps))
    parts = [
        f'<!DOCTYPE html><html lang="{html.escape(lang)}"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{_CSS}</style></head><body>",
        f"<h1>{title}</h1>",
        f"<p>{markdown_html(intro)}</p>",
    ]
    plotly_included = False
    for number, step in enumerate(steps, start=1):
        reveal = reveals.get(step.key)
        parts += _step_section(number, step, reveal, include_plotlyjs=not plotly_included)
        plotly_included = plotly_included or bool(reveal and reveal.figures)
    parts.append("</body></html>")
    return "\n".join(parts)


def _step_section(number: int, step: Step, reveal: Reveal | None, *, include_plotlyjs: bool) -> list[str]:
    """One step's ``<section>``: question, choices (the right one marked), answer, explanation, figures."""
    heading = _("Step {n}: {title}").format(n=number, title=_(step.title))
    question = html.escape(_("Question"))
    parts = [
        f"<section><h2>{html.escape(heading)}</h2><p><strong>{question}:</strong> "
        f'{markdown_html(_(step.question))}</p><ol class="choices" type="A">'
    ]
    answer = reveal.answer if reveal else step.answer
    for choice in step.choices:
        right = ' class="right"' if choice.id == answer else ""
        parts.append(f"<li{right}>{markdown_html(_(choice.text))}</li>")
    parts.append("</ol>")
    if answer is not None:
        label = html.escape(_("Answer"))
        parts.append(
            f'<div class="answer"><strong>{label}:</strong> {step.letter(answer)}. '
            f"{markdown_html(_(step.choice(answer).text))}<br>{markdown_html(_(step.explanation))}"
        )
        parts += [f"<br>{markdown_html(fact)}" for fact in (reveal.facts if reveal else [])]
        parts.append("</div>")
    if step.key == "block":
        parts.append(f"<pre>{html.escape(BLOCK_CODE)}</pre>")
    if reveal is None:
        missing = html.escape(_("This step could not be computed on the server."))
        return parts + [f'<p class="note">{missing}</p>', "</section>"]
    if reveal.note:
        parts.append(f'<p class="note">{markdown_html(reveal.note)}</p>')
    for fig in reveal.figures:
        parts.append(
            fig.to_html(
                full_html=False, include_plotlyjs=include_plotlyjs, config={"displaylogo": False, "responsive": True}
            )
        )
        include_plotlyjs = False
    for image, caption in reveal.images:
        parts.append(
            f'<figure><img src="{_png_data_uri(image)}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    if step.key == "summary":
        reading = html.escape(_("Further reading"))
        parts.append(
            f"<h3>{reading}</h3><ul>" + "".join(f"<li>{html.escape(ref)}</li>" for ref in FURTHER_READING) + "</ul>"
        )
    return parts + ["</section>"]
