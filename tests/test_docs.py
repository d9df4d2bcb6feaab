"""The docs users read stay short and generated where they hold figures: the README within 3,000
words, its results table and docs/results.md exactly what benchmarks/table.py builds from the JSON."""

from benchmarks import table

from .conftest import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")


def test_the_readme_is_read_in_ten_minutes():
    assert len(README.split()) <= 3000


def test_the_readme_results_table_is_the_generated_summary():
    assert "\n".join(table.summary_table()) in README


def test_docs_results_is_generated_from_the_results_files():
    assert (REPO / "docs" / "results.md").read_text(encoding="utf-8") == table.results_document()


def test_ci_runs_the_readme_test_command():
    command = 'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[dev]" && python -m pytest'
    assert command in README
    assert command in (REPO / ".ci" / "run").read_text()
