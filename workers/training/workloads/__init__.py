"""Training workloads (``training.workload``): one module each, registered with
:data:`~faultlab.workers.training.workloads.base.WORKLOADS`. See ``base`` and
docs/training.md."""

from faultlab.workers.training.workloads.base import (
    WORKLOADS,
    SweepWorkload,
    Workload,
    sweep_workload,
    workload,
    workload_for_family,
    workload_of_trial,
)

__all__ = ["WORKLOADS", "SweepWorkload", "Workload", "sweep_workload", "workload",
           "workload_for_family", "workload_of_trial"]
