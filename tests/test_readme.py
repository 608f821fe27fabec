"""The README's Python example runs as written (extracted from README.md itself, not a copy)."""

import re
import warnings
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(text: str) -> list[str]:
    """The bodies of the ```python fenced blocks of a Markdown text, in order."""
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_readme_library_example_runs(tmp_path, monkeypatch):
    blocks = python_blocks(README.read_text())
    assert blocks, "README.md has no ```python block"
    monkeypatch.chdir(tmp_path)  # anything the example writes stays out of the repo
    namespace: dict = {"__name__": "__readme__"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for block in blocks:
            exec(compile(block, str(README), "exec"), namespace)
    # it collected, fitted, acted and differentiated: check what each step left behind
    task, agent, grad = namespace["task"], namespace["agent"], namespace["grad"]
    assert len(namespace["buffer"]) == 400
    assert len(agent.plan_seconds) == 5 and np.isfinite(agent.last_info["best_return"])
    assert namespace["obs"].shape == (task.obs_dim,)
    assert grad.shape == (1, 10, task.act_dim) and np.isfinite(grad).all() and np.abs(grad).sum() > 0
    # the light settings it uses plan fast enough that the slow-planning notice stays silent
    assert not [w for w in caught if "one plan took" in str(w.message)]
