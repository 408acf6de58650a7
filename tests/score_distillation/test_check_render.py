"""check_render: a render's values in [0, 1] up to compositing round-off (a launch.py run at R = 3 reached 1 + 1e-7)."""

import pytest
import torch

from carv.score_distillation import RGB_ROUNDING, check_render


@pytest.mark.parametrize("low, high", [(0.0, 1.0), (0.0179, 1.0 + 1e-7), (-1e-7, 0.5), (0.0, 1.0 + RGB_ROUNDING)])
def test_renders_within_rounding_of_0_1_are_accepted(low, high):
    rgb = torch.full((2, 4, 4, 3), 0.5)
    rgb[0, 0, 0, 0], rgb[1, 3, 3, 2] = low, high
    check_render(rgb)


@pytest.mark.parametrize("value", [1.01, -0.01, 2.0])
def test_renders_beyond_rounding_are_refused(value):
    rgb = torch.full((1, 4, 4, 3), 0.5)
    rgb[0, 1, 1, 1] = value
    with pytest.raises(ValueError, match=r"rgb values must lie in \[0, 1\]"):
        check_render(rgb)
