"""The one labelling of side-by-side videos (the pipeline's compare and scripts/turntable.py)."""

import numpy as np

from carv.pipeline.video import LABEL_HEIGHT, labelled, side_by_side


def frames(n: int, height: int, width: int, value: int) -> list[np.ndarray]:
    return [np.full((height, width, 3), value, dtype=np.uint8) for _ in range(n)]


def test_labelled_scales_or_keeps_the_frame_under_a_white_bar():
    frame = frames(1, 10, 14, 0)[0]
    scaled = labelled(frame, "x", size=32)
    assert scaled.shape == (32 + LABEL_HEIGHT, 32, 3) and (scaled[LABEL_HEIGHT:] == 0).all()
    kept = labelled(frame, "x", size=None, bar=24)
    assert kept.shape == (10 + 24, 14, 3) and (kept[24:] == 0).all() and (kept[:24] < 255).any()  # the text


def test_side_by_side_cuts_to_the_shortest_and_pads_to_the_tallest():
    out = side_by_side({"a": frames(5, 10, 8, 0), "b": frames(3, 6, 4, 100)}, size=None, bar=24)
    assert out.shape == (3, 34, 12, 3) and out.dtype == np.uint8
    assert (out[:, 24 + 6 :, 8:] == 255).all() and (out[:, 24:30, 8:] == 100).all()
