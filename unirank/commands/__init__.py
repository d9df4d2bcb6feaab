"""The data, evaluation and decision commands as typed functions.

`unirank.cli` builds each command's options (and YAML config) from these signatures and their
docstrings; the Python API can call them directly. Each raises SystemExit with a message that
names the input and the problem; none leaves a half-written output.
"""


def require_model(loaded, label: str, path, what: str | None = None, steps: bool = False) -> None:
    """`Model._require` as a command's one-line error: "<label>: <path>: <what> needs … model; this is …"."""
    try:
        loaded._require(what or label, steps=steps)
    except ValueError as error:
        raise SystemExit(f"{label}: {path}: {str(error).removeprefix(label + ' ')}") from None
