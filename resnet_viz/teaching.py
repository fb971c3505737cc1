"""What the app teaches, in one place: Gradient flow's presets and their explanations, the residual block's
diagrams and code, the lesson's steps, and the printable handout.

The Gradient flow page and the Lesson both read these (no second copy). Every text is marked with ``N_`` and
translated where it is shown (``_(text)``), so the current language applies.
"""
from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field

from .i18n import N_, Labels, _

# -- Gradient flow: presets and what to say about them -----------------------------------------------------------

PRESETS = {
    "vanishing": dict(label=N_("Vanishing gradients"), arch="cifar", depth=56, norm="none", act="sigmoid",
                      block="pre", init="kaiming"),
    "exploding": dict(label=N_("Exploding gradients at initialisation"), arch="cifar", depth=110, norm="batch",
                      act="relu", block="post", init="kaiming"),
    "paper": dict(label=N_("The paper's setting"), arch="cifar", depth=56, norm="batch", act="relu", block="post",
                  init="kaiming"),
    "block_design": dict(label=N_("Why block design matters"), arch="cifar", depth=56, norm="none", act="sigmoid",
                         block="post", init="kaiming"),
}
PRESET_LABELS = Labels({"custom": N_("Custom"), **{k: p["label"] for k, p in PRESETS.items()}})
PRESET_KEYS = ("arch", "depth", "norm", "act", "block", "init")
# The rest of a Gradient flow view; a preset fills PRESET_KEYS.
GRADIENT_FLOW_DEFAULTS = dict(preset="custom", arch="cifar", depth=20, norm="batch", act="relu", block="post",
                              init="kaiming", batch="shapes", seed=0, sweep="on")


def preset_view(preset: str, **overrides) -> dict:
    """The full Gradient flow view of a preset (what its URL holds)."""
    view = dict(GRADIENT_FLOW_DEFAULTS, preset=preset)
    view.update({k: PRESETS[preset][k] for k in PRESET_KEYS})
    view.update(overrides)
    return view


EXPLANATIONS = {
    "custom": N_("Each point is the size ‖∂loss/∂W‖ of the gradient that reaches one weight layer, for one batch, "
                 "at initialisation (BatchNorm uses the batch's statistics, as in training). Read from right "
                 "(output) to left (input): a ratio below 1 means the gradient shrinks on its way back to the "
                 "input, above 1 that it grows. Pick a preset for a guided lesson."),
    "vanishing": N_("Without normalisation, every sigmoid scales the backward signal by its slope, at most 0.25. "
                    "In the plain twin these factors pile up layer after layer: the gradient is astronomically small "
                    "by the time it reaches the stem (exact zeros are float32 underflow: nothing arrives at all). "
                    "In the ResNet every block *adds* its branch to an untouched identity path, so the gradient "
                    "reaches the first layers through the shortcuts."),
    "exploding": N_("BatchNorm keeps every block's forward signal at a steady scale (second chart), and yet the "
                    "plain twin's gradient *grows* toward the input at initialisation, and grows faster the deeper "
                    "the net (depth sweep). Yang et al. (2019) proved this: batch-normalised plain nets have "
                    "exploding gradients at initialisation. The ResNet's identity paths keep its ratio within a "
                    "small factor of 1 at every depth."),
    "paper": N_("BatchNorm + ReLU, post-activation blocks, option-A shortcuts, 56 layers: He et al.'s (2015) CIFAR "
                "setting, where the 56-layer plain net trains *worse* than the 20-layer one. They remarked that this "
                "degradation is unlikely to be caused by vanishing gradients: with BatchNorm the forward signals "
                "keep a non-zero variance and the backward gradients have healthy norms. The chart agrees: nothing "
                "vanishes in the plain twin (if anything its gradient grows toward the input, as Yang et al. 2019 "
                "later explained). Degradation is an optimisation difficulty; shortcuts make deep nets easier to "
                "optimise."),
    "block_design": N_("In a post-activation block the sigmoid comes *after* the addition, x + F(x), so even the "
                       "identity path is squashed at every block: the ResNet's gradient vanishes almost as badly as "
                       "the plain twin's. Pre-activation blocks (He et al. 2016) end with the addition and keep the "
                       "identity path clean; the comparison below measures both designs on the same weights."),
}

# -- the residual block, drawn and written out ---------------------------------------------------------------------


def residual_block_dot() -> str:
    """Graphviz source of a post-activation residual block (labels in the current language)."""
    return ('digraph { rankdir=TB; node [shape=box, style="rounded,filled", fillcolor="#e8f1fa", '
            'fontname="Helvetica,Noto Sans CJK SC,sans-serif"];\n'
            'x [label="x", shape=plaintext, fillcolor=white]; c1 [label="conv + BN"]; a1 [label="ReLU"]; '
            'c2 [label="conv + BN"];\n'
            'add [label="+", shape=circle, fillcolor="#1f77b4", fontcolor=white]; a2 [label="ReLU"]; '
            'y [label="y = F(x) + x", shape=plaintext, fillcolor=white];\n'
            'x -> c1 -> a1 -> c2 -> add; x -> add [label="  ' + _dot(_("identity x")) + '", color="#1f77b4", '
            'penwidth=2.5, fontcolor="#1f77b4"];\nadd -> a2 -> y; }')


def plain_block_dot() -> str:
    """Graphviz source of the plain twin's block: the same layers without the addition."""
    return ('digraph { rankdir=TB; node [shape=box, style="rounded,filled", fillcolor="#fff1e3", '
            'fontname="Helvetica,Noto Sans CJK SC,sans-serif"];\n'
            'x [label="x", shape=plaintext, fillcolor=white]; c1 [label="conv + BN"]; a1 [label="ReLU"]; '
            'c2 [label="conv + BN"];\na2 [label="ReLU"]; y [label="y = F(x)", shape=plaintext, fillcolor=white];\n'
            'x -> c1 -> a1 -> c2 -> a2 -> y; }')


def _dot(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


# Post-activation basic block with a projection shortcut, laid out as torchvision's BasicBlock.
BLOCK_CODE = '''import torch.nn as nn

class BasicBlock(nn.Module):
    """y = ReLU(F(x) + shortcut(x)), F = conv-BN-ReLU-conv-BN."""

    def __init__(self, cin, cout, stride=1, residual=True):
        super().__init__()
        self.residual = residual
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Identity()
        if residual and (stride != 1 or cin != cout):  # projection shortcut
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))            # F(x)
        if self.residual:
            out = out + self.shortcut(x)           # F(x) + x
        return self.relu(out)                      # residual=False: the plain block
'''

# -- the lesson -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One step of the lesson: a question to predict, then a reveal with a live figure.

    ``answer`` is the index of the right choice, or None when the data decides it at reveal time (the recorded
    race, the lesion lab). ``page``/``params`` open the full page at the same view; ``requires`` names a page file
    that must exist for the step to be shown.
    """
    key: str
    title: str
    question: str
    choices: tuple[str, ...]
    answer: int | None
    explanation: str
    notes: str
    page: str | None = None
    params: dict = field(default_factory=dict)
    requires: str | None = None


STEPS = (
    Step(
        key="block", title=N_("The residual block: y = F(x) + x"),
        question=N_("A residual block outputs y = ReLU(F(x) + x). Suppose its branch F has learned to output "
                    "zeros. What does the block pass on?"),
        choices=(N_("Nothing: the output is zero"), N_("Its input x (through the final ReLU)"),
                 N_("Random noise"), N_("Twice its input")),
        answer=1,
        explanation=N_("With F(x) = 0 the block is an identity mapping: the signal passes through unchanged. The "
                       "plain block, without the addition, would output zero and lose the signal. So a residual "
                       "block only has to learn a *correction* to its input, and an extra block that is not needed "
                       "can simply learn to do nothing."),
        notes=N_("**Say:** the whole idea of ResNet is one addition. Point at the blue arrow in the diagram and at "
                 "`out + self.shortcut(x)` in the code. **Misconception:** the skip connection does not add "
                 "parameters to learn (the identity has none); only the projection shortcut of a block that "
                 "changes shape has a 1x1 convolution. **Timing:** 5 minutes."),
        page="pages/residual_vs_identity.py"),
    Step(
        key="vanishing", title=N_("Vanishing gradients"),
        question=N_("A 56-layer net with sigmoid activations and no normalisation, at initialisation. In the plain "
                    "net, how large is the gradient at the first layer compared with the last layer?"),
        choices=(N_("About the same size"), N_("Much larger"),
                 N_("Many orders of magnitude smaller, or exactly zero")),
        answer=2,
        explanation=EXPLANATIONS["vanishing"],
        notes=N_("**Say:** read the chart from right (output) to left (input): the gradient travels backwards. The "
                 "y axis is logarithmic: every grid line is a factor of 10. **Misconception:** students often "
                 "think ResNets were invented for vanishing gradients; BatchNorm had already tamed those (next "
                 "step). **Timing:** 5 minutes."),
        page="pages/gradient_flow.py", params=preset_view("vanishing")),
    Step(
        key="exploding", title=N_("Exploding gradients, and why plain nets still degrade"),
        question=N_("Now the paper's setting with BatchNorm and ReLU, 110 layers, at initialisation. What happens "
                    "to the plain net's gradient on its way back to the input?"),
        choices=(N_("It vanishes, as with sigmoids"), N_("It stays about the same size"),
                 N_("It grows: the gradient explodes toward the input")),
        answer=2,
        explanation=EXPLANATIONS["exploding"],
        notes=N_("**Say:** BatchNorm fixes the forward signal, not the backward one. He et al. (2015) checked that "
                 "their BatchNorm plain nets' gradients did not vanish, and still the deeper plain nets trained "
                 "worse: degradation is an optimisation difficulty, not simply vanishing gradients. "
                 "**Misconception:** \"deeper is worse because of overfitting\": the next step shows the "
                 "*training* error is higher too. **Timing:** 5 minutes."),
        page="pages/gradient_flow.py", params=preset_view("exploding")),
    Step(
        key="race", title=N_("The degradation problem: a training race"),
        question=N_("ResNets and plain nets of 20 and 56 layers train side by side on the same data. Will the "
                    "56-layer plain net fit its training data better or worse than the 20-layer one?"),
        choices=(N_("Better: more layers, more capacity"), N_("About the same"), N_("Worse")),
        answer=None,
        explanation=N_("This is the degradation problem of He et al. (2015): adding layers to a plain net made its "
                       "*training* error higher, so it is not overfitting. The ResNet of the same depth has no such "
                       "trouble: its extra blocks can stay close to the identity."),
        notes=N_("**Say:** every twin pair starts from the same weights and sees the same batches; only the "
                 "skip connections differ. The recorded race was run before class with the command line tool; "
                 "Start a live one on the Training race page if there is time (about a minute on a laptop). "
                 "**Misconception:** deeper nets are not worse because they overfit: look at the training loss, "
                 "not the test error. **Timing:** 10 minutes with a live race."),
        page="pages/training_race.py"),
    Step(
        key="lesion", title=N_("What each block adds: the lesion lab"),
        question=N_("Delete one block from the trained ResNet-20 and from its trained plain twin, then test both. "
                    "Which loses more accuracy?"),
        choices=(N_("The ResNet"), N_("Both about the same"), N_("The plain twin")),
        answer=None,
        explanation=N_("A deleted ResNet block is replaced by its shortcut, so the signal still flows; a plain net "
                       "has only one path, through every block. Veit et al. (2016) showed that a ResNet behaves "
                       "like an ensemble of many shallower paths, which do not depend strongly on each other."),
        notes=N_("**Say:** a ResNet with n blocks has 2^n paths from input to output; deleting a block removes "
                 "only half of them. **Ask:** which ResNet block hurts most when deleted? (The ones that "
                 "downsample: their shortcut is not the identity.) **Timing:** 5 minutes."),
        page="pages/residual_vs_identity.py"),
    Step(
        key="landscape", title=N_("The loss landscape"),
        question=N_("Picture the loss around the trained weights of ResNet-56 and of its plain twin. Which surface "
                    "will be smoother, closer to a single bowl?"),
        choices=(N_("The ResNet's"), N_("The plain twin's"), N_("They look alike")),
        answer=None,
        explanation=N_("Li et al. (2018) drew the loss along two random directions around trained weights: skip "
                       "connections keep the surface smooth and nearly convex, while deep plain nets get a chaotic "
                       "surface that is hard to descend. The share of non-convex points measures it."),
        notes=N_("**Say:** this is a 2-D slice through a space with hundreds of thousands of dimensions, so it is "
                 "an illustration, not a map. **Timing:** 5 minutes."),
        page="pages/loss_landscape.py", params={"model": "shapes-56"}, requires="pages/loss_landscape.py"),
    Step(
        key="gradcam", title=N_("Where do the twins look? Grad-CAM"),
        question=N_("Grad-CAM colours the regions that pushed a model's answer up. The object covers only a small "
                    "part of this test image. Where will the trained ResNet-56's heat concentrate?"),
        choices=(N_("On the object: far more heat there than its share of the image"),
                 N_("On the background"), N_("Spread evenly over the image")),
        answer=None,
        explanation=N_("Grad-CAM (Selvaraju et al. 2017) weighs the last stage's feature maps by how much they "
                       "raise the class score. The white outline marks the object. A heatmap explains one model on "
                       "one image; it is not proof of what the model has learned."),
        notes=N_("**Say:** both twins started from the same weights and were trained with the same recipe. "
                 "**Ask:** does a twin that is less accurate look in the wrong place, or look in the right place "
                 "and still answer wrongly? On the Explain page, students can try their own photos. "
                 "**Timing:** 5 minutes."),
        page="pages/explain.py"),
    Step(
        key="summary", title=N_("Summary and further reading"),
        question=N_("Which statement best explains why skip connections let us train much deeper networks?"),
        choices=(N_("They add many parameters, so the network can learn more"),
                 N_("They make deep nets easier to optimise: a block can stay close to the identity, and the "
                    "gradient has short paths back to every layer"),
                 N_("They stop overfitting, like dropout")),
        answer=1,
        explanation=N_("A residual block learns a correction F(x) to its input. The identity paths carry the signal "
                       "forwards and the gradient backwards, so extra blocks need not make the net harder to train "
                       "than a shallower one. The chart shows why a ResNet acts like an ensemble: its paths have "
                       "many different lengths."),
        notes=N_("**Say:** recap the three phenomena: vanishing and exploding gradients, degradation, the "
                 "ensemble of paths. **Homework:** read He et al. (2015), sections 3.1 and 4.1. "
                 "**Timing:** 5 minutes."),
        page="pages/home.py"),
)

FURTHER_READING = (
    "He, Zhang, Ren, Sun. Deep Residual Learning for Image Recognition. CVPR 2016 (arXiv 2015).",
    "He, Zhang, Ren, Sun. Identity Mappings in Deep Residual Networks. ECCV 2016.",
    "Veit, Wilber, Belongie. Residual Networks Behave Like Ensembles of Relatively Shallow Networks. NeurIPS 2016.",
    "Li, Xu, Taylor, Studer, Goldstein. Visualizing the Loss Landscape of Neural Nets. NeurIPS 2018.",
    "Yang, Pennington, Rao, Sohl-Dickstein, Schoenholz. A Mean Field Theory of Batch Normalization. ICLR 2019.",
    "Selvaraju et al. Grad-CAM: Visual Explanations from Deep Networks via Gradient-based Localization. ICCV 2017.",
)


def lesson_steps(available_pages=None) -> list[Step]:
    """The steps to show: a step that needs a page which does not exist is left out."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    exists = available_pages if available_pages is not None else (
        lambda page: (root / page).is_file())
    return [s for s in STEPS if s.requires is None or exists(s.requires)]


def three_way(worse: float, better: float, *, tolerance: float = 0.05) -> int:
    """0, 1 or 2 for "better", "about the same", "worse": how ``worse`` compares with ``better`` (lower is better)."""
    if worse > better * (1 + tolerance):
        return 2
    if worse < better * (1 - tolerance):
        return 0
    return 1


# -- the handout ------------------------------------------------------------------------------------------------


@dataclass
class Reveal:
    """What a step reveals: the right choice, sentences built from the data, figures and images."""
    answer: int
    facts: list[str] = field(default_factory=list)
    figures: list = field(default_factory=list)      # plotly figures
    images: list = field(default_factory=list)       # (PIL image, caption)
    note: str | None = None                          # e.g. why a substitute was used


_CSS = """body{font-family:"Helvetica Neue",Arial,"Noto Sans CJK SC","Microsoft YaHei",sans-serif;max-width:980px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.5}h1{color:#1f77b4}section{page-break-inside:avoid;
border-top:1px solid #ccc;margin-top:2em}ol.choices li.right{font-weight:bold;color:#1a7f37}pre{background:#f5f5f5;
padding:.8em;overflow:auto;font-size:12px}.answer{background:#eef6ee;padding:.6em 1em;border-left:4px solid #1a7f37}
.note{color:#555;font-style:italic}img{max-width:100%}"""


def _md(text: str) -> str:
    """The little Markdown our texts use (**bold**, *italic*, `code`) as HTML."""
    import re

    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    out = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<em>\1</em>", out)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", out)


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
    intro = _("Residual learning in {n} steps. Each step asks a question to predict, then shows the answer with a "
              "figure computed by the app.").format(n=len(steps))
    parts = [f'<!DOCTYPE html><html lang="{html.escape(lang)}"><head><meta charset="utf-8">'
             f"<title>{title}</title><style>{_CSS}</style></head><body>", f"<h1>{title}</h1>", f"<p>{_md(intro)}</p>"]
    plotly_included = False
    for number, step in enumerate(steps, start=1):
        reveal = reveals.get(step.key)
        heading = _("Step {n}: {title}").format(n=number, title=_(step.title))
        question = html.escape(_("Question"))
        parts.append(f"<section><h2>{html.escape(heading)}</h2><p><strong>{question}:</strong> "
                     f'{_md(_(step.question))}</p><ol class="choices" type="A">')
        answer = reveal.answer if reveal else step.answer
        for i, choice in enumerate(step.choices):
            cls = ' class="right"' if i == answer else ""
            parts.append(f"<li{cls}>{_md(_(choice))}</li>")
        parts.append("</ol>")
        if answer is not None:
            label = html.escape(_("Answer"))
            parts.append(f'<div class="answer"><strong>{label}:</strong> '
                         f"{chr(ord('A') + answer)}. {_md(_(step.choices[answer]))}<br>{_md(_(step.explanation))}")
            for fact in (reveal.facts if reveal else []):
                parts.append(f"<br>{_md(fact)}")
            parts.append("</div>")
        if step.key == "block":
            parts.append(f"<pre>{html.escape(BLOCK_CODE)}</pre>")
        if reveal is None:
            missing = html.escape(_("This step could not be computed on the server."))
            parts.append(f'<p class="note">{missing}</p>')
            continue
        if reveal.note:
            parts.append(f'<p class="note">{_md(reveal.note)}</p>')
        for fig in reveal.figures:
            parts.append(fig.to_html(full_html=False, include_plotlyjs=not plotly_included,
                                     config={"displaylogo": False, "responsive": True}))
            plotly_included = True
        for image, caption in reveal.images:
            parts.append(f'<figure><img src="{_png_data_uri(image)}" alt="{html.escape(caption)}">'
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        if step.key == "summary":
            reading = html.escape(_("Further reading"))
            parts.append(f"<h3>{reading}</h3><ul>"
                         + "".join(f"<li>{html.escape(ref)}</li>" for ref in FURTHER_READING) + "</ul>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)
