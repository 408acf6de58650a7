"""scripts/compare_batch.py's bookkeeping: nothing overwritten, --resume keeps what is done, the clock recorded."""

import json

import pytest

from carv.pipeline.errors import UserError

from .conftest import load_script


@pytest.fixture(scope="module")
def compare_batch():
    return load_script("compare_batch")


def test_an_existing_report_is_refused_unless_resumed_on_the_same_clock(compare_batch, tmp_path):
    out = tmp_path / "batch.json"
    assert compare_batch.done_comparisons(out, resume=False, clock="wall") == []
    done = [{"prompt": "a red mug", "seed": 0}]
    compare_batch.write_report(out, [], "process")
    out.write_text(json.dumps({**json.loads(out.read_text()), "comparisons": done}))
    with pytest.raises(UserError, match="--resume"):
        compare_batch.done_comparisons(out, resume=False, clock="process")
    with pytest.raises(UserError, match="process clock"):
        compare_batch.done_comparisons(out, resume=True, clock="wall")
    assert compare_batch.done_comparisons(out, resume=True, clock="process") == done


def test_main_stops_with_a_one_line_error_before_overwriting(compare_batch, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CARV_CLOCK", "wall")  # main sets it for its workers; monkeypatch restores it
    out = tmp_path / "batch.json"
    out.write_text("{}")
    with pytest.raises(SystemExit) as exit_info:
        compare_batch.main(["--out", str(out)])
    assert exit_info.value.code == 2 and "exists" in capsys.readouterr().err and out.read_text() == "{}"
