"""The lesson's steps: questions to predict, their choices and answers, what a reveal holds, further reading.

Every text is marked with ``N_`` and translated where it is shown (``_(text)``), so the current language applies.
What a step reveals is computed by the app (``ui/lesson_reveals.py``), with the same library calls as the pages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from ..i18n import N_
from .presets import EXPLANATIONS, preset_view


@dataclass(frozen=True)
class Choice:
    """One answer a step offers, shown as A, B, C... in the order the step lists its choices.

    ``id`` names it in code: a reveal returns the id of the right choice, so reordering the choices keeps the
    answer. ``text`` is what the class reads.
    """

    id: str
    text: str


@dataclass(frozen=True)
class Step:
    """One step of the lesson: a question to predict, then a reveal with a live figure.

    ``answer`` is the id of the right choice, or None when the data decides it at reveal time (the recorded race,
    the lesion lab, the loss landscape, Grad-CAM). ``page``/``params`` open the full page at the same view;
    ``requires`` names the app's page file (relative to app.py's folder) the step needs: :func:`lesson_steps`
    leaves the step out of an app without that page.
    """

    key: str
    title: str
    question: str
    choices: tuple[Choice, ...]
    answer: str | None
    explanation: str
    notes: str
    page: str | None = None
    params: dict = field(default_factory=dict)
    requires: str | None = None

    def __post_init__(self):
        ids = [c.id for c in self.choices]
        if len(set(ids)) != len(ids):
            raise ValueError(f"step {self.key!r}: two choices share an id ({ids})")
        if self.answer is not None and self.answer not in ids:
            raise ValueError(f"step {self.key!r}: the answer {self.answer!r} is none of its choices {ids}")

    def choice(self, choice_id: str) -> Choice:
        """The choice named ``choice_id`` (KeyError when the step offers none by that name)."""
        for choice in self.choices:
            if choice.id == choice_id:
                return choice
        raise KeyError(f"step {self.key!r} has no choice {choice_id!r}")

    def letter(self, choice_id: str) -> str:
        """The letter the choice is shown with: A for the first choice, B for the second..."""
        return chr(ord("A") + self.choices.index(self.choice(choice_id)))


STEPS = (
    Step(
        key="block",
        title=N_("The residual block: y = F(x) + x"),
        question=N_(
            "A residual block outputs y = ReLU(F(x) + x). Suppose its branch F has learned to output "
            "zeros. What does the block pass on?"
        ),
        choices=(
            Choice("zero", N_("Nothing: the output is zero")),
            Choice("input", N_("Its input x (through the final ReLU)")),
            Choice("noise", N_("Random noise")),
            Choice("double", N_("Twice its input")),
        ),
        answer="input",
        explanation=N_(
            "With F(x) = 0 the block is an identity mapping: the signal passes through unchanged. The "
            "plain block, without the addition, would output zero and lose the signal. So a residual "
            "block only has to learn a *correction* to its input, and an extra block that is not needed "
            "can simply learn to do nothing."
        ),
        notes=N_(
            "**Say:** the whole idea of ResNet is one addition. Point at the blue arrow in the diagram and at "
            "`out + self.shortcut(x)` in the code. **Misconception:** the skip connection does not add "
            "parameters to learn (the identity has none); only the projection shortcut of a block that "
            "changes shape has a 1x1 convolution. **Timing:** 5 minutes."
        ),
        page="pages/residual_vs_identity.py",
    ),
    Step(
        key="vanishing",
        title=N_("Vanishing gradients"),
        question=N_(
            "A 56-layer net with sigmoid activations and no normalisation, at initialisation. In the plain "
            "net, how large is the gradient at the first layer compared with the last layer?"
        ),
        choices=(
            Choice("same", N_("About the same size")),
            Choice("larger", N_("Much larger")),
            Choice("smaller", N_("Many orders of magnitude smaller, or exactly zero")),
        ),
        answer="smaller",
        explanation=EXPLANATIONS["vanishing"],
        notes=N_(
            "**Say:** read the chart from right (output) to left (input): the gradient travels backwards. The "
            "y axis is logarithmic: every grid line is a factor of 10. **Misconception:** students often "
            "think ResNets were invented for vanishing gradients; BatchNorm had already tamed those (next "
            "step). **Timing:** 5 minutes."
        ),
        page="pages/gradient_flow.py",
        params=preset_view("vanishing"),
    ),
    Step(
        key="exploding",
        title=N_("Exploding gradients, and why plain nets still degrade"),
        question=N_(
            "Now the paper's setting with BatchNorm and ReLU, 110 layers, at initialisation. What happens "
            "to the plain net's gradient on its way back to the input?"
        ),
        choices=(
            Choice("vanishes", N_("It vanishes, as with sigmoids")),
            Choice("same", N_("It stays about the same size")),
            Choice("grows", N_("It grows: the gradient explodes toward the input")),
        ),
        answer="grows",
        explanation=EXPLANATIONS["exploding"],
        notes=N_(
            "**Say:** BatchNorm fixes the forward signal, not the backward one. He et al. (2015) checked that "
            "their BatchNorm plain nets' gradients did not vanish, and still the deeper plain nets trained "
            "worse: degradation is an optimisation difficulty, not simply vanishing gradients. "
            '**Misconception:** "deeper is worse because of overfitting": the next step shows the '
            "*training* error is higher too. **Timing:** 5 minutes."
        ),
        page="pages/gradient_flow.py",
        params=preset_view("exploding"),
    ),
    Step(
        key="shattered",
        title=N_("Shattered gradients: why the plain net still trains worse"),
        question=N_(
            "With BatchNorm the 56-layer plain net's gradients have a healthy size. Why does it still train worse?"
        ),
        choices=(
            Choice("small", N_("Its gradient is too small after all")),
            Choice(
                "noise",
                N_(
                    "Its gradient changes from one input to the next almost at random, so it says "
                    "little about nearby inputs"
                ),
            ),
            Choice("overfit", N_("It overfits its training data")),
            Choice("alike", N_("Nothing about its gradient differs from the ResNet's")),
        ),
        answer="noise",
        explanation=N_(
            "Along a line of inputs the deep plain net's gradient looks like white noise, while the "
            "ResNet's stays smooth: Balduzzi et al. (2017) call this *shattered gradients*. A step along "
            "a gradient that changes at random from one input to the next helps little, so gradient "
            "descent struggles even though the gradient's size is fine."
        ),
        notes=N_(
            "**Say:** the size of the gradient is not the whole story; its *shape* matters too. The lag-1 "
            'autocorrelation is 1 for a smooth curve and 0 for white noise. **Misconception:** "noise means '
            'a bug": the net is deterministic, the gradient is just extremely rugged as a function of the '
            "input. **Timing:** 5 minutes."
        ),
        page="pages/shattered_gradients.py",
        params={"twins": "init", "depth": 56, "sweep": "paper"},
        requires="pages/shattered_gradients.py",
    ),
    Step(
        key="race",
        title=N_("The degradation problem: a training race"),
        question=N_(
            "ResNets and plain nets of 20 and 56 layers train side by side on the same data. Will the "
            "56-layer plain net fit its training data better or worse than the 20-layer one?"
        ),
        choices=(
            Choice("better", N_("Better: more layers, more capacity")),
            Choice("same", N_("About the same")),
            Choice("worse", N_("Worse")),
        ),
        answer=None,
        explanation=N_(
            "This is the degradation problem of He et al. (2015): adding layers to a plain net made its "
            "*training* error higher, so it is not overfitting. The ResNet of the same depth has no such "
            "trouble: its extra blocks can stay close to the identity."
        ),
        notes=N_(
            "**Say:** every twin pair starts from the same weights and sees the same batches; only the "
            "skip connections differ. The recorded race was run before class with the command line tool; "
            "Start a live one on the Training race page if there is time (about a minute on a laptop). "
            "**Misconception:** deeper nets are not worse because they overfit: look at the training loss, "
            "not the test error. **Timing:** 10 minutes with a live race."
        ),
        page="pages/training_race.py",
    ),
    Step(
        key="lesion",
        title=N_("What each block adds: the lesion lab"),
        question=N_(
            "Delete one block from the trained ResNet-20 and from its trained plain twin, then test both. "
            "Which loses more accuracy?"
        ),
        choices=(
            Choice("resnet", N_("The ResNet")),
            Choice("same", N_("Both about the same")),
            Choice("plain", N_("The plain twin")),
        ),
        answer=None,
        explanation=N_(
            "A deleted ResNet block is replaced by its shortcut, so the signal still flows; a plain net "
            "has only one path, through every block. Veit et al. (2016) showed that a ResNet behaves "
            "like an ensemble of many shallower paths, which do not depend strongly on each other."
        ),
        notes=N_(
            "**Say:** a ResNet with n blocks has 2^n paths from input to output; deleting a block removes "
            "only half of them. **Ask:** which ResNet block hurts most when deleted? (The ones that "
            "downsample: their shortcut is not the identity.) **Timing:** 5 minutes."
        ),
        page="pages/residual_vs_identity.py",
    ),
    Step(
        key="landscape",
        title=N_("The loss landscape"),
        question=N_(
            "Picture the loss around the trained weights of ResNet-56 and of its plain twin. Which surface "
            "will be smoother, closer to a single bowl?"
        ),
        choices=(
            Choice("resnet", N_("The ResNet's")),
            Choice("plain", N_("The plain twin's")),
            Choice("alike", N_("They look alike")),
        ),
        answer=None,
        explanation=N_(
            "Li et al. (2018) drew the loss along two random directions around trained weights: skip "
            "connections keep the surface smooth and nearly convex, while deep plain nets get a chaotic "
            "surface that is hard to descend. The share of non-convex points measures it."
        ),
        notes=N_(
            "**Say:** this is a 2-D slice through a space with hundreds of thousands of dimensions, so it is "
            "an illustration, not a map. **Timing:** 5 minutes."
        ),
        page="pages/loss_landscape.py",
        params={"model": "shapes-56"},
        requires="pages/loss_landscape.py",
    ),
    Step(
        key="gradcam",
        title=N_("Where do the twins look? Grad-CAM"),
        question=N_(
            "Grad-CAM colours the regions that pushed a model's answer up. The object covers only a small "
            "part of this test image. Where will the trained ResNet-56's heat concentrate?"
        ),
        choices=(
            Choice("object", N_("On the object: far more heat there than its share of the image")),
            Choice("background", N_("On the background")),
            Choice("even", N_("Spread evenly over the image")),
        ),
        answer=None,
        explanation=N_(
            "Grad-CAM (Selvaraju et al. 2017) weighs the last stage's feature maps by how much they "
            "raise the class score. The white outline marks the object. A heatmap explains one model on "
            "one image; it is not proof of what the model has learned."
        ),
        notes=N_(
            "**Say:** both twins started from the same weights and were trained with the same recipe. "
            "**Ask:** does a twin that is less accurate look in the wrong place, or look in the right place "
            "and still answer wrongly? On the Explain page, students can try their own photos. "
            "**Timing:** 5 minutes."
        ),
        page="pages/explain.py",
    ),
    Step(
        key="summary",
        title=N_("Summary and further reading"),
        question=N_("Which statement best explains why skip connections let us train much deeper networks?"),
        choices=(
            Choice("parameters", N_("They add many parameters, so the network can learn more")),
            Choice(
                "optimisation",
                N_(
                    "They make deep nets easier to optimise: a block can stay close to the "
                    "identity, and the gradient has short paths back to every layer"
                ),
            ),
            Choice("overfitting", N_("They stop overfitting, like dropout")),
        ),
        answer="optimisation",
        explanation=N_(
            "A residual block learns a correction F(x) to its input. The identity paths carry the signal "
            "forwards and the gradient backwards, so extra blocks need not make the net harder to train "
            "than a shallower one. The chart shows why a ResNet acts like an ensemble: its paths have "
            "many different lengths."
        ),
        notes=N_(
            "**Say:** recap the three phenomena: vanishing and exploding gradients, degradation, the "
            "ensemble of paths. **Homework:** read He et al. (2015), sections 3.1 and 4.1. "
            "**Timing:** 5 minutes."
        ),
        page="pages/home.py",
    ),
)

FURTHER_READING = (
    "He, Zhang, Ren, Sun. Deep Residual Learning for Image Recognition. CVPR 2016 (arXiv 2015).",
    "He, Zhang, Ren, Sun. Identity Mappings in Deep Residual Networks. ECCV 2016.",
    "Veit, Wilber, Belongie. Residual Networks Behave Like Ensembles of Relatively Shallow Networks. NeurIPS 2016.",
    "Li, Xu, Taylor, Studer, Goldstein. Visualizing the Loss Landscape of Neural Nets. NeurIPS 2018.",
    "Yang, Pennington, Rao, Sohl-Dickstein, Schoenholz. A Mean Field Theory of Batch Normalization. ICLR 2019.",
    "Balduzzi, Frean, Leary, Lewis, Ma, McWilliams. The Shattered Gradients Problem: If resnets are the answer, "
    "then what is the question? ICML 2017.",
    "Selvaraju et al. Grad-CAM: Visual Explanations from Deep Networks via Gradient-based Localization. ICCV 2017.",
)


def lesson_steps(available_pages: Callable[[str], bool] | None = None) -> list[Step]:
    """The steps to show: with ``available_pages(page)``, which says whether an app has a page (the app passes
    ``ui.routing.app_has_page``), a step that needs a page it lacks is left out; without it, every step."""
    if available_pages is None:
        return list(STEPS)
    return [s for s in STEPS if s.requires is None or available_pages(s.requires)]


Outcome = Literal["lower", "same", "higher"]


def compare(value: float, reference: float, *, tolerance: float = 0.05) -> Outcome:
    """How ``value`` compares with ``reference``: "higher" or "lower" by more than ``tolerance`` of it, else "same".

    A reveal turns the outcome into the id of the right choice (``{"higher": "worse", ...}[compare(a, b)]``).
    """
    if value > reference * (1 + tolerance):
        return "higher"
    if value < reference * (1 - tolerance):
        return "lower"
    return "same"


@dataclass
class Reveal:
    """What a step reveals: the id of the right choice, sentences built from the data, figures and images."""

    answer: str
    facts: list[str] = field(default_factory=list)
    figures: list = field(default_factory=list)  # plotly figures
    images: list = field(default_factory=list)  # (PIL image, caption)
    note: str | None = None  # e.g. why a substitute was used
