"""Atomic writes keep the permissions a plain open() would give, not the temp file's 0600."""

import os
import stat

from mbrlax.utils.atomic import atomic_write


def test_atomic_write_gives_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "r.json", lambda f: f.write(b"{}"))
    finally:
        os.umask(old)
    assert (tmp_path / "r.json").read_bytes() == b"{}"
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temp file left
