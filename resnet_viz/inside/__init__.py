"""Inside a block: its feature maps, the class evidence that travels along the skips, the images a channel likes.

* :func:`block_maps` (``maps.py``): a block's input x, shortcut s(x), branch F(x), sum z and output y;
* :func:`evidence_split` (``evidence.py``): the class score's first-order evidence at each block's sum,
  split into the identity path's part and the branch's part;
* :func:`dataset_examples` (``examples.py``): the test images that excite each channel most.
"""

from .evidence import EvidenceRow, EvidenceSplit, evidence_split
from .examples import DatasetExamples, dataset_examples
from .maps import BlockMaps, block_channels, block_maps, channel_energy

__all__ = [
    "BlockMaps",
    "DatasetExamples",
    "EvidenceRow",
    "EvidenceSplit",
    "block_channels",
    "block_maps",
    "channel_energy",
    "dataset_examples",
    "evidence_split",
]
