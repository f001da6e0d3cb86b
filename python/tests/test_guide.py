"""docs/port-guide.md's code runs as written (its blocks that use only the
fixture; the ones with `my_outputs`/`my_game_dict` are the reader's)."""
import os
import re

from conftest import REPO


def test_port_guide_code_runs(ocn, monkeypatch):
    text = open(os.path.join(REPO, "docs", "port-guide.md")).read()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "my_" not in b]
    assert len(blocks) >= 3
    monkeypatch.chdir(REPO)
    env = {}
    for b in blocks:
        exec(compile(b, "docs/port-guide.md", "exec"), env)
    assert env["res"]["x_t1"].verdict == "ok" and env["res"]["Vx_t3_n0"].verdict == "ok"
