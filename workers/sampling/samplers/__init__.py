"""Samplers and their estimators of operational accuracy, one file each (registered in
:data:`SAMPLERS` by the file's name with its ``Params`` and citation). See :mod:`.base`."""

from faultlab.workers.sampling.samplers.base import (
    SAMPLERS,
    LabelOracle,
    OperationalPool,
    OracleScores,
    SampleResult,
)

__all__ = ["SAMPLERS", "LabelOracle", "OperationalPool", "OracleScores", "SampleResult"]
