"""The residual block and its plain twin's block, drawn (Graphviz dot) and written out (PyTorch code)."""

from __future__ import annotations

from ..i18n import _


def residual_block_dot() -> str:
    """Graphviz source of a post-activation residual block (labels in the current language)."""
    return (
        'digraph { rankdir=TB; node [shape=box, style="rounded,filled", fillcolor="#e8f1fa", '
        'fontname="Helvetica,Noto Sans CJK SC,sans-serif"];\n'
        'x [label="x", shape=plaintext, fillcolor=white]; c1 [label="conv + BN"]; a1 [label="ReLU"]; '
        'c2 [label="conv + BN"];\n'
        'add [label="+", shape=circle, fillcolor="#1f77b4", fontcolor=white]; a2 [label="ReLU"]; '
        'y [label="y = F(x) + x", shape=plaintext, fillcolor=white];\n'
        'x -> c1 -> a1 -> c2 -> add; x -> add [label="  ' + _dot(_("identity x")) + '", color="#1f77b4", '
        'penwidth=2.5, fontcolor="#1f77b4"];\nadd -> a2 -> y; }'
    )


def plain_block_dot() -> str:
    """Graphviz source of the plain twin's block: the same layers without the addition."""
    return (
        'digraph { rankdir=TB; node [shape=box, style="rounded,filled", fillcolor="#fff1e3", '
        'fontname="Helvetica,Noto Sans CJK SC,sans-serif"];\n'
        'x [label="x", shape=plaintext, fillcolor=white]; c1 [label="conv + BN"]; a1 [label="ReLU"]; '
        'c2 [label="conv + BN"];\na2 [label="ReLU"]; y [label="y = F(x)", shape=plaintext, fillcolor=white];\n'
        "x -> c1 -> a1 -> c2 -> a2 -> y; }"
    )


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
