"""Workloads a worker process keeps warm across campaigns, keyed by their content.

A workload's derived state is built lazily where it runs, on the first trials that need it:
each layer's suffix program (an FX graph of what follows the layer), whether the batched pass
is bit-exact there, whether it is faster, the channel path's checks. On 2 CPU cores that was
0.2 s of every campaign's first shard per worker on the CIFAR-size ``resnet18``, and about a
second while two workers and the coordinator shared the cores. A sweep of campaigns over one
model (seeds, fault models, bits, margins) rebuilt it every time.

``prepare`` stamps each workload with :func:`fingerprint`, the sha256 of its pickled state
(what travels to the workers; the derived caches are never pickled). Two workloads with the
same fingerprint are the same models, inputs, goldens, sites and mitigations, so a worker
that already holds one warm uses it for the next campaign instead of the copy it was sent.
Any difference at all (a site, an input, a hook) is a different fingerprint, and a miss.
"""

from __future__ import annotations

import collections
import hashlib
import io
import pickle
from typing import Any

import torch

from faultlab.workers.faults.workload import Workload
from faultlab.workers.zoo.registry import state_value_digest

#: Warm workloads per worker process (least recently used out).
MAX_WARM = 2
_WARM: collections.OrderedDict[tuple[str, str], Workload] = collections.OrderedDict()


class _ContentPickler(pickle.Pickler):
    """Pickles tensors as the digest of their contents: torch's own pickling names a
    storage by its memory address, so equal workloads pickle to different bytes."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, torch.Tensor):
            return _tensor_token, (type(obj).__name__, obj.requires_grad,
                                   state_value_digest(obj.detach()))
        return NotImplemented


def _tensor_token(*_: Any) -> None:  # the reconstructor named in the hashed stream only
    return None


def fingerprint(workload: Workload) -> str:
    """sha256 of the workload's pickled state, tensors by content (its fingerprint left out)."""
    saved, workload.fingerprint = workload.fingerprint, ""
    buffer = io.BytesIO()
    try:
        _ContentPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(workload)
    except Exception:  # noqa: BLE001 - unstamped: this workload is never shared, nothing else
        return ""
    finally:
        workload.fingerprint = saved
    return hashlib.sha256(buffer.getvalue()).hexdigest()


def _key(workload: Workload, device: torch.device) -> tuple[str, str]:
    """Content, device and the numerics set there (TF32 changes what a GPU computes, and the
    derived state records whether the batched pass is bit-exact)."""
    numerics = ""
    if device.type == "cuda":
        numerics = (f"tf32={torch.backends.cuda.matmul.allow_tf32},"
                    f"{torch.backends.cudnn.allow_tf32}")
    return workload.fingerprint, f"{device}|{numerics}"


def held(workload: Workload, device: torch.device) -> Workload | None:
    """This process's warm workload of the same content on ``device``, if it holds one."""
    key = _key(workload, device)
    found = _WARM.get(key) if workload.fingerprint else None
    if found is not None:
        _WARM.move_to_end(key)
    return found


def keep(workload: Workload, device: torch.device) -> Workload:
    """Keeps ``workload`` (on ``device``) for later campaigns; unstamped ones are not kept."""
    if workload.fingerprint:
        _WARM[_key(workload, device)] = workload
        while len(_WARM) > MAX_WARM:
            _WARM.popitem(last=False)
    return workload
