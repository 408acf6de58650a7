import math

import pytest
import torch

from carv.attribution import budget_multipliers, mean_spearman, spearman_rows, trak_scores
from carv.attribution.scores import draws_for


def test_trak_scores_without_damping_is_the_kernel_score():
    g = torch.Generator().manual_seed(0)
    train, query = torch.randn(12, 4, generator=g), torch.randn(3, 4, generator=g)
    kernel = train.double().T @ train.double()
    expected = query.double() @ torch.linalg.inv(kernel) @ train.double().T
    assert torch.allclose(trak_scores(query, train, ridge=0.0), expected)
    assert not torch.allclose(trak_scores(query, train, ridge=1.0), expected)
    with pytest.raises(ValueError, match="ridge"):
        trak_scores(query, train, ridge=math.inf)


def test_spearman_of_monotone_and_reversed_rows():
    a = torch.tensor([[0.1, 0.5, 0.3, 2.0], [1.0, 2.0, 3.0, 4.0]])
    b = torch.tensor([[1.0, 9.0, 4.0, 100.0], [4.0, 3.0, 2.0, 1.0]])
    assert torch.allclose(spearman_rows(a, b), torch.tensor([1.0, -1.0], dtype=torch.float64))
    # one swapped pair of 4: 1 - 6 * 2 / (4 * 15) = 0.8
    c = torch.tensor([[0.1, 0.3, 0.5, 2.0]])
    assert spearman_rows(a[:1], c).item() == pytest.approx(0.8)
    mean, se = mean_spearman(a, b)
    assert mean == pytest.approx(0.0) and se == pytest.approx(1.0)


def test_draws_for_interpolates_in_log_budget_and_names_its_bounds():
    budgets, curve = [1, 2, 4, 8], [0.2, 0.4, 0.6, 0.7]
    assert draws_for(0.5, budgets, curve) == (pytest.approx(2**1.5), "exact")
    assert draws_for(0.6, budgets, curve) == (pytest.approx(4.0), "exact")
    assert draws_for(0.1, budgets, curve) == (1.0, "at_most")
    assert draws_for(0.9, budgets, curve) == (8.0, "at_least")
    rows = budget_multipliers([1, 2], [0.4, 0.65], budgets, curve)
    assert rows[0]["multiplier"] == pytest.approx(2.0) and rows[0]["bound"] == "exact"
    assert rows[1]["multiplier"] == pytest.approx(2 ** (2.5) / 2) and rows[1]["bound"] == "exact"
