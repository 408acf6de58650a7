"""Tabulate `carv variance` reports: one Markdown row per prompt and checkpoint, then geometric means.

python scripts/variance_summary.py outputs/cpu-carv/*/variance@*/report.json
"""

from __future__ import annotations

import argparse
import json
import math

from carv.variance.text import headline, markdown_table


def geometric_mean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", help="report.json files of carv variance")
    args = parser.parse_args()
    rows = [row for path in args.reports for row in headline(json.load(open(path, encoding="utf-8")))]
    print(markdown_table(rows))
    for key in ("ecm_predicted", "ecm_measured", "ecm_reuse_only", "ecm_reuse_only_measured", "auto_fraction_of_best"):
        print(f"geometric mean {key}: {geometric_mean([r[key] for r in rows]):.2f}")
    for key in ("is_strat_share", "is_strat_share_measured"):
        shares = [r[key] for r in rows]
        print(f"{key}: mean {sum(shares) / len(shares):.0%}, range {min(shares):.0%} to {max(shares):.0%}")
    z = [r[k] for r in rows for k in ("z_recommended", "z_baseline", "z_reuse_only")]
    agree = sum(abs(value) <= 2.5758 for value in z)
    print(f"predicted and measured variance agree at 99%: {agree} of {len(z)} direct checks")


if __name__ == "__main__":
    main()
