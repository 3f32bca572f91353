"""Samplers and their estimators of operational accuracy, one file each (registered by the
file's name), each citing its source. See :mod:`.base` for the contract."""

from faultlab.workers.sampling.samplers.base import (
    LabelOracle,
    OperationalPool,
    OracleScores,
    SampleResult,
    register_sampler,
    run_sampler,
    sampler_registry,
)

__all__ = [
    "LabelOracle",
    "OperationalPool",
    "OracleScores",
    "SampleResult",
    "register_sampler",
    "run_sampler",
    "sampler_registry",
]
