"""Progress lines for logs: one per step of `every` percent, silent on a terminal."""

from unirank.progress import ProgressLines


def test_a_line_per_step_of_every_percent_and_none_when_disabled(capsys):
    lines = ProgressLines(200, "scored", every=25.0, enabled=True)
    for done in range(0, 201, 10):
        lines.update(done, note="x")
    printed = capsys.readouterr().out.splitlines()
    assert [line.split(":")[1].split("(")[0].strip() for line in printed] == ["50/200", "100/200", "150/200", "200/200"]
    assert all("x" in line and "left" in line for line in printed)
    quiet = ProgressLines(200, "scored", every=25.0, enabled=False)
    quiet.update(200)
    assert capsys.readouterr().out == ""
