"""scripts/train_toy_teacher.py: bad options stop with a one-line error before anything is deleted."""

import pytest
import torch

from .conftest import load_script


@pytest.mark.parametrize(
    "option",
    [["--device", "cudaa"], ["--device", "mps"], ["--threads", "0"]]
    + [["--device", "cuda"]] * (not torch.cuda.is_available()),
)
def test_bad_option_exits_before_touching_the_folders(option, tmp_path, monkeypatch, capsys):
    out, work = tmp_path / "out", tmp_path / "work"
    (out / "judge").mkdir(parents=True)
    work.mkdir()
    monkeypatch.setattr("sys.argv", ["train_toy_teacher.py", "--out", str(out), "--work-dir", str(work), *option])
    with pytest.raises(SystemExit) as stopped:
        load_script("train_toy_teacher").main()
    assert stopped.value.code == 2
    assert "error: --" in capsys.readouterr().err
    assert (out / "judge").is_dir() and work.is_dir()
