"""The data, evaluation and decision commands as typed functions.

`unirank.cli` builds each command's options (and YAML config) from these signatures and their
docstrings; the Python API can call them directly. Each raises SystemExit with a message that
names the input and the problem; none leaves a half-written output.
"""
