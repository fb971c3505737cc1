"""Progress bars for the command line: one tqdm bar on stderr, fed as a ``progress(done, total)`` callback."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tqdm import tqdm


class ProgressBar:
    """A ``progress(done, total)`` callback that draws a tqdm bar on stderr, so stdout keeps only results.

    The bar appears on the first call (an error before any work prints no empty bar). ``quiet=True`` draws
    nothing (every process but rank 0 under ``torchrun``). :meth:`describe` changes the label and the note
    after the counts (say, images/s). Close it, or use it in a ``with`` block.
    """

    def __init__(self, label: str = "", *, unit: str = "it", quiet: bool = False):
        self.label, self.unit, self.quiet = label, unit, quiet
        self.note: str | None = None
        self._bar: tqdm | None = None

    def __call__(self, done: int, total: int) -> None:
        if self.quiet:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total, desc=self.label or None, unit=self.unit, file=sys.stderr, dynamic_ncols=True, leave=True
            )
            if self.note is not None:
                self._bar.set_postfix_str(self.note, refresh=False)
        elif self._bar.total != total:
            self._bar.total = total
        self._bar.update(done - self._bar.n)

    def describe(self, label: str, note: str | None = None) -> None:
        """Show ``label`` before the bar and, unless None, ``note`` after it (both drawn on the next update)."""
        self.label = label
        if note is not None:
            self.note = note
        if self._bar is not None:
            self._bar.set_description_str(label, refresh=False)
            if note is not None:
                self._bar.set_postfix_str(note, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
