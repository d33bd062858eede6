"""Finding a data bar: a full-width strip along the top or bottom edge of an exported micrograph
or SEM image (Zeiss's data zone, a camera's info bar) in which nearly every pixel has the image's
darkest or brightest value, with text, a scale bar or a frame line in the rest.

``analyze`` only *warns* when it sees one (with the ``--ignore-region`` that leaves it out): a
strip of clipped pixels along an edge of a real micrograph is possible, and what is specimen is
the user's call. The rules are strict so that the warning is rare where there is no bar:

* a row belongs to a bar when at least :data:`BAR_ROW_SHARE` of its pixels hold the image's
  minimum or maximum exactly (text on a bar leaves 75-99 % of the row at the bar's value);
* the bar is a run of such rows starting at most :data:`EDGE_ROWS` rows from the edge (a frame
  line), at least :data:`MIN_ROWS` rows and 2 % of the height tall, at most 40 %; inside it, up
  to :data:`MAX_DIP_ROWS` rows in a row may fall short of that share (a grey divider line);
* it starts abruptly: the row beyond it has under :data:`IMAGE_ROW_SHARE` of its pixels at an
  extreme, and so has the image beyond it on average (a saturated film hole rises gradually, a
  binary picture is extreme everywhere).
"""

from __future__ import annotations

from typing import Any

import numpy as np

BAR_ROW_SHARE = 0.6
IMAGE_ROW_SHARE = 0.3
EDGE_ROWS = 3
MIN_ROWS = 8
MAX_DIP_ROWS = 2


def find_data_bar(image: Any) -> dict[str, Any] | None:
    """The data bar along the bottom or top edge of ``image``, or None.

    Returns
    -------
    dict or None
        ``edge`` (``"bottom"`` or ``"top"``), ``rows`` (how many rows from that edge the bar
        takes, frame lines included) and ``region``, the ``Settings.ignore_regions`` rectangle
        that leaves it out (``(0, -rows, 0, 0)`` or ``(0, 0, 0, rows)``).

    Examples
    --------
    >>> img = np.random.default_rng(0).integers(20, 200, (100, 80)).astype(np.uint8)
    >>> img[-12:] = 255
    >>> img[-8:-4, 5:30] = 0  # "text"
    >>> find_data_bar(img)
    {'edge': 'bottom', 'rows': 12, 'region': (0, -12, 0, 0)}
    >>> find_data_bar(img[:-12]) is None
    True
    """
    found = extremes(image, min_rows=4 * MIN_ROWS)
    if found is None:
        return None
    d, lo, hi = found
    share = ((d == lo) | (d == hi)).mean(axis=1)
    h = d.shape[0]
    for edge, s in (("bottom", share[::-1]), ("top", share)):
        rows = _bar_rows(s, h)
        if rows:
            region = (0, -rows, 0, 0) if edge == "bottom" else (0, 0, 0, rows)
            return {"edge": edge, "rows": rows, "region": region}
    return None


def extremes(
    image: Any, min_rows: int = 1, min_cols: int = 1
) -> tuple[np.ndarray, Any, Any] | None:
    """``image`` as an array with its minimum and maximum, or None where there is nothing to look
    for overlays in: not 2-D, under ``min_rows`` x ``min_cols``, boolean, with a non-finite
    value, or flat."""
    d = np.asarray(image)
    if d.ndim != 2 or d.shape[0] < min_rows or d.shape[1] < min_cols or d.size == 0:
        return None
    if d.dtype == bool or (np.issubdtype(d.dtype, np.floating) and not np.all(np.isfinite(d))):
        return None
    lo, hi = d.min(), d.max()
    if lo == hi:
        return None
    return d, lo, hi


def _bar_rows(share: np.ndarray, height: int) -> int:
    """Rows from the edge (``share[0]`` is the edge row) that a bar takes, or 0."""
    start = 0
    while start < EDGE_ROWS and share[start] < BAR_ROW_SHARE:
        start += 1
    last = start - 1  # the last bar row seen
    i = start
    while i < len(share) and i - last <= MAX_DIP_ROWS:
        if share[i] >= BAR_ROW_SHARE:
            last = i
        i += 1
    end = last + 1
    run = end - start
    if run < max(MIN_ROWS, 0.02 * height) or end > 0.4 * height:
        return 0
    if share[end] >= IMAGE_ROW_SHARE or share[end:].mean() >= IMAGE_ROW_SHARE:
        return 0
    return end
