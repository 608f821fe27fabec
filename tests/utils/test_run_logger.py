"""The run folder's record: rows survive a resume, and a resume with changed settings leaves a trace."""

import json
from dataclasses import dataclass, field

import pytest

from mbrlax.utils.run_logger import RunLogger


@dataclass(frozen=True)
class Inner:
    max_epochs: int = 30


@dataclass(frozen=True)
class Config:
    env: str = "toy"
    resume: bool = False
    trainer: Inner = field(default_factory=Inner)


def test_resume_keeps_rows_and_records_changed_settings(tmp_path):
    log = RunLogger(tmp_path, Config(), tensorboard=False)
    log.log({"env_steps": 10, "return": 1.0})
    log.close()
    with pytest.warns(UserWarning, match=r"trainer.max_epochs: 30 -> 200"):
        log = RunLogger(tmp_path, Config(resume=True, trainer=Inner(200)), tensorboard=False, resume=True)
    assert [r["return"] for r in log.rows] == ["1.0"]  # read back from metrics.csv
    record = [json.loads(line) for line in (tmp_path / "config_changes.jsonl").read_text().splitlines()]
    assert record == [{"after_rows": 1, "changes": {"trainer.max_epochs": {"was": 30, "now": 200}}}]
    assert json.loads((tmp_path / "config.json").read_text())["trainer"]["max_epochs"] == 200
    log.close()


def test_resume_with_the_same_settings_records_nothing(tmp_path, recwarn):
    RunLogger(tmp_path, Config(), tensorboard=False).close()
    RunLogger(tmp_path, Config(resume=True), tensorboard=False, resume=True).close()  # only `resume` differs
    assert not (tmp_path / "config_changes.jsonl").exists()
    assert not [w for w in recwarn if "changed settings" in str(w.message)]
