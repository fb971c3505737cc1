"""What the app teaches: Gradient flow's presets, the residual block's diagrams, the lesson and its handout.

``presets`` (Gradient flow's presets and their explanations), ``diagrams`` (the residual block drawn and written
out), ``lesson`` (the steps, their choices and answers), ``handout`` (the printable HTML handout) with ``markdown``
(the inline Markdown of its texts). The names the pages, tests and benchmarks use are re-exported here.
"""

from .diagrams import BLOCK_CODE, plain_block_dot, residual_block_dot
from .handout import handout_html
from .lesson import FURTHER_READING, STEPS, Choice, Reveal, Step, compare, lesson_steps
from .presets import EXPLANATIONS, GRADIENT_FLOW_DEFAULTS, PRESET_KEYS, PRESET_LABELS, PRESETS, preset_view

__all__ = [
    "BLOCK_CODE",
    "EXPLANATIONS",
    "FURTHER_READING",
    "GRADIENT_FLOW_DEFAULTS",
    "PRESETS",
    "PRESET_KEYS",
    "PRESET_LABELS",
    "STEPS",
    "Choice",
    "Reveal",
    "Step",
    "compare",
    "handout_html",
    "lesson_steps",
    "plain_block_dot",
    "preset_view",
    "residual_block_dot",
]
