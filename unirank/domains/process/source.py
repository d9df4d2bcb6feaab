"""Step-wise solutions as a data source."""

from __future__ import annotations

from unirank.data.sources import DataSource
from unirank.data.tables import Tables
from unirank.domains.process.readers import read_prmbench


class StepSolutions(DataSource):
    """Step-wise solutions in the PRMBench / PRM800K shape (see `read_prmbench`); groups split by a
    stable hash of the problem."""

    def __init__(self, path: str, validation_fraction: float = 0.1, test_fraction: float = 0.2):
        self.path, self.validation_fraction, self.test_fraction = path, validation_fraction, test_fraction

    def load(self) -> Tables:
        return read_prmbench(self.path, self.validation_fraction, self.test_fraction)
