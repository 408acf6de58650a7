"""The report as printed text: per checkpoint, costs and the teacher curve, components, the ECM table, the
recommendation (measured cost model) beside the linear model's, and checks."""

from __future__ import annotations


def component_lines(rows: list[dict]) -> list[str]:
    lines = [
        f"  {'setting':<16}{'sigma_b^2':>22}{'sigma_w^2':>22}{'K*':>6}{'(linear)':>9}{'reuse limit':>13}{'(linear)':>9}"
    ]
    for r in rows:
        lines.append(
            f"  {r['setting']:<16}{r['sigma_b2']:>12.4g} +-{r['sigma_b2_se']:<8.2g}"
            f"{r['sigma_w2']:>12.4g} +-{r['sigma_w2_se']:<8.2g}{r['k_star']:>6}{r['k_star_linear']:>9}"
            f"{r['reuse_limit']:>13.2f}{r['reuse_limit_linear']:>9.2f}"
        )
    return lines


def curve_line(costs: dict) -> str:
    """The measured teacher curve: c(n) in ms and per draw, at each ladder step."""
    points = ", ".join(
        f"{p['draws']}: {1e3 * p['seconds']:.3g} ({1e3 * p['seconds'] / p['draws']:.3g}/draw)" for p in costs["curve"]
    )
    return f"teacher curve c(n), ms (measured through the guidance, n draws in one call): {points}"


def choice_line(name: str, figures: dict) -> str:
    rec, reuse, auto = figures["recommended"], figures["reuse_only"], figures["auto"]
    return (
        f"  {name}: recommended {rec['setting']} R={rec['R']} K={rec['K']}, ECM {rec['ecm']:.2f}; "
        f"reuse only R={reuse['R']} K={reuse['K']}, ECM {reuse['ecm']:.2f}; reuse limit {figures['reuse_limit']:.2f}; "
        f"auto R={auto['R']} K={auto['K']}"
    )


def table_lines(rows: list[dict]) -> list[str]:
    lines = [f"  {'setting':<16}{'R':>4}{'K':>4}{'step s':>10}{'ECM':>8}"]
    lines += [
        f"  {r['setting']:<16}{r['R']:>4}{r['K']:>4}{r['step_seconds']:>10.3f}{r['ecm']:>8.2f}"
        for r in sorted(rows, key=lambda r: -r["ecm"])
    ]
    return lines


def check_line(c: dict) -> str:
    verdict = "agree" if c["agree_99"] else "DISAGREE"
    return (
        f"  {c['setting']} R={c['R']} K={c['K']}: measured {c['measured']:.4g} +- {c['measured_se']:.2g} "
        f"({c['repeats']} steps), predicted {c['predicted']:.4g} +- {c['predicted_se']:.2g}, z={c['z']:.2f} ({verdict})"
    )


def camera_lines(c: dict) -> list[str]:
    """What stratified azimuths buy at the baseline (`camera_stratification` of a checkpoint), if measured."""
    cameras = c.get("camera_stratification")
    if cameras is None:
        return []
    lines = [
        f"cameras at the baseline ({cameras['setting']} R={cameras['R']} K={cameras['K']}): step variance, its "
        "between-render part (less sigma_w^2 / (R K)) and the ECM against independent azimuths:"
    ]
    for rule, r in cameras["rules"].items():
        name = f"training: {cameras['training_rule']}" if rule == "training" else rule
        lines.append(
            f"  {name:<46}{r['measured']:.4g} +- {r['measured_se']:.2g}, between {r['between']:.4g} +- "
            f"{r['between_se']:.2g}, ECM {r['ecm_vs_iid']['ecm']:.2f} +- {r['ecm_vs_iid']['se']:.2f}"
        )
    gain = cameras["ecm_stratified_vs_training"]
    lines.append(f"  stratified against the training rule: ECM {gain['ecm']:.2f} +- {gain['se']:.2f}")
    return lines


def checkpoint_text(c: dict) -> list[str]:
    costs, rec, reuse, auto, linear = c["costs"], c["recommended"], c["reuse_only"], c["auto"], c["linear"]
    lines = [
        f"== {c['checkpoint']} (step {c['step']})",
        f"costs (wall-clock, this machine): a = {costs['a']:.4f} s per render, b = {costs['b']:.4f} s per teacher "
        f"evaluation in the probe's calls, a/b = {costs['a_over_b']:.2f}; c(1) = {costs['c1']:.4f} s",
        curve_line(costs),
        f"cost model of the recommendation: measured, C(R, K) = R a + c(R K); budget {c['budget_seconds']:.3f} s "
        f"per step (linear C = R (a + K b): {linear['budget_seconds']:.3f} s)",
        "components (parameter space; each setting's own sigma_b^2, the model uses the pooled one; K* and reuse "
        "limit measured, then linear):",
        *component_lines(c["components"]),
        f"  pooled sigma_b^2 {c['sigma_b2_pooled']:.4g} +- {c['sigma_b2_pooled_se']:.2g}",
        "ECM at the budget vs the baseline (uniform, K = 1, R = {}):".format(c["baseline"]["R"]),
        *table_lines(c["table"]),
        f"recommended: {rec['setting']} R={rec['R']} K={rec['K']}, ECM {rec['ecm']:.2f}",
        f"reuse only (uniform): R={reuse['R']} K={reuse['K']}, ECM {reuse['ecm']:.2f}; "
        f"IS + stratification add {100 * c['ecm_share_from_is_and_stratification']:.0f}%; "
        f"reuse limit {c['reuse_limit']:.2f}",
        f"auto: {auto['setting']} R={auto['R']} K={auto['K']}, ECM {auto['ecm']:.2f} "
        f"({100 * auto['fraction_of_best_fixed']:.0f}% of the best fixed (R, K))",
        "measured against linear cost model (each ECM under its own model):",
        choice_line("measured", c),
        choice_line("linear  ", linear),
        "direct check, variance of the per-step estimator (trace):",
        *(check_line(v) for v in c["validation"]),
        f"measured ECM: recommendation {c['measured_ecm']['ecm']:.2f} +- {c['measured_ecm']['se']:.2f}, "
        f"reuse only {c['measured_ecm_reuse_only']['ecm']:.2f} +- {c['measured_ecm_reuse_only']['se']:.2f} "
        f"(IS + stratification add {100 * c['measured_share_from_is_and_stratification']:.0f}%)",
        *camera_lines(c),
    ]
    return lines


def report_text(report: dict) -> str:
    lines = [f"variance report of {report['target']} ({report['prompt']!r})"]
    for c in report["checkpoints"]:
        lines += checkpoint_text(c)
    lines.append(f"files in {report['folder']} ({report['seconds']:.0f} s)")
    return "\n".join(lines)


def headline(report: dict) -> list[dict]:
    """One row per checkpoint of a report: the figures the README quotes."""
    rows = []
    for c in report["checkpoints"]:
        recommended, baseline, reuse = c["validation"]
        rows.append(
            {
                "prompt": report["prompt"],
                "checkpoint": c["checkpoint"],
                "a_over_b": c["costs"]["a_over_b"],
                "recommended": configuration(c["recommended"]),
                "recommended_linear": configuration(c["linear"]["recommended"]) if "linear" in c else "",
                "ecm_predicted": c["recommended"]["ecm"],
                "ecm_measured": c["measured_ecm"]["ecm"],
                "ecm_measured_se": c["measured_ecm"]["se"],
                "ecm_reuse_only": c["reuse_only"]["ecm"],
                "ecm_reuse_only_measured": c["measured_ecm_reuse_only"]["ecm"],
                "is_strat_share": c["ecm_share_from_is_and_stratification"],
                "is_strat_share_measured": c["measured_share_from_is_and_stratification"],
                "auto_fraction_of_best": c["auto"]["fraction_of_best_fixed"],
                "z_recommended": recommended["z"],
                "z_baseline": baseline["z"],
                "z_reuse_only": reuse["z"],
            }
        )
    return rows


def configuration(row: dict) -> str:
    return f"{row['setting']} R={row['R']} K={row['K']}"


def markdown_table(rows: list[dict]) -> str:
    """rows as a Markdown table (floats to 2 decimals)."""
    header = list(rows[0])
    cells = [[f"{v:.2f}" if isinstance(v, float) else str(v) for v in r.values()] for r in rows]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])
