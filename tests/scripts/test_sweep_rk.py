"""scripts/sweep_rk.py: equal-cost commands, cost fit, and the collected table."""

import csv
import json
import shlex

import pytest

from .conftest import SCRIPTS

CONFIG = SCRIPTS.parent / "configs" / "carv-dreamfusion-sd.yaml"


def test_dry_run_prints_one_command_per_pair_prompt_and_seed(sweep_rk, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a hamburger\n\na red mug\n")
    argv = ["--config", str(CONFIG), "--prompts", str(prompts), "--seeds", "0", "1", "--a", "4", "--b", "1"]
    sweep_rk.main(argv + ["--k", "1", "16", "--variant", "baseline", "--out", str(tmp_path / "out"), "--dry-run"])
    lines = capsys.readouterr().out.splitlines()
    commands = [shlex.split(line) for line in lines[1:]]
    assert "(4, 1), (1, 16)" in lines[0]
    assert len(commands) == 2 * 2 * 2
    last = commands[-1]
    assert last[last.index("--config") + 1] == str(CONFIG.resolve())
    assert "system.guidance.timestep_proposal=uniform" in last
    assert last.index("data.batch_size=1") > last.index("data.batch_size=4")  # the sweep's R wins
    assert "name=carv-dreamfusion-sd-R1K16" in last and "tag=a_red_mug-seed1" in last


def test_cost_fit_recovers_a_and_b(sweep_rk):
    runs = [(r, k, r * (0.3 + k * 0.02)) for r, k in [(4, 1), (1, 16), (2, 4), (1, 1)]]
    costs = sweep_rk.fit_cost_model(runs)
    assert costs.a == pytest.approx(0.3) and costs.b == pytest.approx(0.02)
    with pytest.raises(ValueError, match="two or more values of K"):
        sweep_rk.fit_cost_model([(4, 1, 1.0), (2, 1, 0.5)])


def test_unknown_variant_is_refused(sweep_rk):
    with pytest.raises(SystemExit, match="unknown variant"):
        sweep_rk.variant_overrides("no-such-variant")


def write_run(root, renders, k, tag, step_seconds):
    metrics = root / f"carv-dreamfusion-sd-R{renders}K{k}" / tag / "csv_logs" / "version_0" / "metrics.csv"
    metrics.parent.mkdir(parents=True)
    with open(metrics, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["step", "train/time_render", "train/time_guidance", "train/time_backward", "train/loss_sds"])
        for step, seconds in enumerate(step_seconds):
            writer.writerow([step, seconds / 4, seconds / 2, seconds / 4, 10.0 - step])
        writer.writerow([len(step_seconds), "", "", "", ""])  # a row of other metrics only


def test_collect_only_tables_every_run(sweep_rk, tmp_path, capsys):
    write_run(tmp_path, 4, 1, "a_mug-seed0", [2.0, 2.0])
    write_run(tmp_path, 1, 16, "a_mug-seed0", [1.0, 3.0, 2.0])
    sweep_rk.main(["--collect-only", "--out", str(tmp_path)])
    with open(tmp_path / "sweep.csv", newline="") as stream:
        rows = {(int(r["R"]), int(r["K"])): r for r in csv.DictReader(stream)}
    assert set(rows) == {(4, 1), (1, 16)}
    assert float(rows[(1, 16)]["mean_step_seconds"]) == pytest.approx(2.0)
    assert int(rows[(1, 16)]["steps"]) == 3 and float(rows[(1, 16)]["last_loss_sds"]) == 8.0
    assert (tmp_path / "sweep.png").stat().st_size > 0


def test_a_sweep_never_starts_over_an_existing_run(sweep_rk, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red mug\n")
    out = tmp_path / "out"
    (out / "carv-dreamfusion-sd-R1K16" / "a_red_mug-seed0").mkdir(parents=True)
    argv = ["--config", str(CONFIG), "--prompts", str(prompts), "--a", "4", "--b", "1", "--k", "1", "16"]
    argv += ["--out", str(out), "--threestudio-root", str(tmp_path / "no-threestudio-here")]
    with pytest.raises(SystemExit, match="a_red_mug-seed0 exists .1 of the sweep's runs do.: choose another --out"):
        sweep_rk.main(argv)


def test_the_launch_path_comes_from_the_threestudio_root(sweep_rk, tmp_path):
    command = sweep_rk.launch_command(CONFIG, tmp_path, 1, 4, "a red mug", 0, [], tmp_path / "ts")
    assert command[1] == str((tmp_path / "ts" / "launch.py").resolve())
    assert sweep_rk.launch_command(CONFIG, tmp_path, 1, 4, "a red mug", 0, [])[1] == "launch.py"


def knee_records(n0=8, top=64, a=0.5, b=0.1):
    """A curve flat up to n0 draws (c = b), then b per extra draw, as report.json records."""
    return [{"draws": n, "seconds": b * (1 + max(n - n0, 0))} for n in (1, 2, 4, 8, 16, 32, top)], a


def dry_run_first_line(sweep_rk, tmp_path, capsys, *costs_arguments):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red mug\n")
    argv = ["--config", str(CONFIG), "--prompts", str(prompts), "--k", "1", "2", "4", "8", "16", "32"]
    sweep_rk.main([*argv, *costs_arguments, "--out", str(tmp_path / "out"), "--dry-run"])
    return capsys.readouterr().out.splitlines()[0]


def test_pairs_come_from_the_measured_curve_of_a_variance_report(sweep_rk, tmp_path, capsys):
    records, a = knee_records()
    report = tmp_path / "report.json"
    report.write_text(
        json.dumps({"checkpoints": [{"costs": {"a": 9.0, "curve": []}}, {"costs": {"a": a, "curve": records}}]})
    )
    line = dry_run_first_line(sweep_rk, tmp_path, capsys, "--cost-curve", str(report))
    # budget C(4, 1) = 4 a + c(4) = 2.1 s (the last checkpoint's costs); the most renders for each K by brute force
    costs = sweep_rk.measured_costs(json.loads(report.read_text()))
    expected = []
    for k in (1, 2, 4, 8, 16, 32):
        renders = [r for r in range(1, 64) if costs.step_cost(r, k) <= 2.1 + 1e-12]
        expected += [(max(renders), k)] if renders else []
    assert expected == [(4, 1), (4, 2), (3, 4), (2, 8), (1, 16)]  # e.g. C(2, 8) = 2 a + c(16) = 1.9, C(3, 8) = 3.2
    assert line.startswith("cost model: measured") and f"(R, K) pairs: {expected};" in line
    assert "C(4, 2) = 2.1" in line  # the predicted step cost of each pair: 4 a + c(8)


def test_pairs_from_a_bench_output_and_the_linear_model_otherwise(sweep_rk, tmp_path, capsys):
    records, a = knee_records()
    bench = tmp_path / "bench.json"
    bench.write_text(
        json.dumps({"tiny.a_ms": 1e3, "tiny.curve": records[:2], "big.a_ms": 1e3 * a, "big.curve": records})
    )
    line = dry_run_first_line(sweep_rk, tmp_path, capsys, "--cost-curve", str(bench), "--cost-curve-teacher", "big")
    assert line.startswith("cost model: measured") and "(2, 8), (1, 16)];" in line
    linear = dry_run_first_line(sweep_rk, tmp_path, capsys, "--a", str(a), "--b", "0.1")
    assert (
        linear.startswith("cost model: linear") and "(R, K) pairs: [(4, 1), (3, 2), (2, 4), (1, 8), (1, 16)];" in linear
    )
    with pytest.raises(SystemExit, match="no teacher 'huge'"):
        dry_run_first_line(sweep_rk, tmp_path, capsys, "--cost-curve", str(bench), "--cost-curve-teacher", "huge")
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"checkpoints": [{"costs": {"a": 1.0, "b": 1.0}}]}))
    with pytest.raises(SystemExit, match="no measured cost curve"):
        dry_run_first_line(sweep_rk, tmp_path, capsys, "--cost-curve", str(old))
