"""The README's Python example runs as written (with the tiny backbone instead of MiniLM, and its
paths pointed at the repository's demo data and a temporary folder)."""

import re

from .conftest import REPO


def test_the_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Python API") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    demo = str(REPO / "data/demo-preferences.jsonl")
    code = code.replace('model="minilm"', 'model="tiny"').replace("data/demo-preferences.jsonl", demo)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    assert (tmp_path / "runs/python-api/model/unirank.json").exists()
    printed = capsys.readouterr().out
    assert re.search(r"\[0\.\d+\]", printed)  # predict's probability
    assert "'corpus_id': 1" in printed  # rank's rows
