"""Client-side artifacts: what the SDK and CLI upload so a coordinator never opens a path.

A spec's ``model.file`` / ``dataset.file`` is a path on the client. :func:`localize_spec`
resolves each one (relative to the spec file's folder), replaces it with the file's
``sha256:<hex>`` digest, gives the model or dataset a ``label`` from the file stem when the spec
has none, and returns what to upload by digest. :func:`export_module` turns an ``nn.Module`` into
a ``torch.export`` program and :func:`tensors_to_safetensors` turns tensors or a PyG ``Data``
into a ``tensors`` dataset file, so Python objects travel the same way. Pure functions: no RPC;
torch is imported only by the functions that need it.
"""

from __future__ import annotations

import copy
import hashlib
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from faultlab.errors import ArgumentError, SpecError
from faultlab.spec import is_digest
from faultlab.spec_text import short

if TYPE_CHECKING:
    import torch
    from torch import nn

IMAGE_KEYS = ("x_train", "y_train", "x_test", "y_test")
GRAPH_KEYS = ("x", "edge_index", "y", "train_mask", "test_mask")
_CHUNK = 1 << 20


def bytes_digest(blob: bytes) -> str:
    """``sha256:<hex>`` of ``blob``: an artifact's id."""
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def file_digest(path: str | Path) -> str:
    """``sha256:<hex>`` of a file's content, read in chunks."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _default_label(section: dict[str, Any], stem: str) -> str:
    name = str(section.get("name", ""))
    label = stem if name in ("exported", "tensors", "") else f"{name}[{stem}]"
    return label[:100]


def _file_sections(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every mapping of the spec with a ``file`` key (a model or dataset), with its field."""
    found: list[tuple[str, dict[str, Any]]] = []
    stack: list[tuple[str, Any]] = [("", spec)]
    while stack:
        field, node = stack.pop()
        if isinstance(node, dict):
            if "file" in node and field:
                found.append((field, node))
            stack.extend((f"{field}.{k}" if field else str(k), v) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((f"{field}.{i}", v) for i, v in enumerate(node))
    return found


def localize_spec(
    spec: dict[str, Any], base_dir: str | Path | None = None
) -> tuple[dict[str, Any], dict[str, Path | bytes]]:
    """A copy of ``spec`` with every client ``file`` replaced by its digest, and the files to
    upload by digest. Relative paths resolve against ``base_dir`` (the spec file's folder;
    default the working directory); values that already are digests are kept."""
    spec = copy.deepcopy(spec)
    uploads: dict[str, Path | bytes] = {}
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    for field, section in _file_sections(spec):
        value = section["file"]
        if not isinstance(value, str | Path) or (isinstance(value, str) and is_digest(value)):
            continue
        path = Path(value).expanduser()
        path = path if path.is_absolute() else base / path
        if not path.is_file():
            raise SpecError(f"{field}.file", f"file {short(str(path))} does not exist on "
                            "this machine")
        ref = file_digest(path)
        uploads[ref] = path
        section["file"] = ref
        section.setdefault("label", _default_label(section, path.stem))
    return spec, uploads


def _uses_pyg(module: nn.Module) -> bool:
    return any(type(m).__module__.startswith("torch_geometric") for m in module.modules())


def export_module(module: nn.Module, example_inputs: Any) -> bytes:
    """``torch.export`` program of ``module`` in eval mode, as ``.pt2`` bytes.

    ``example_inputs`` is a tensor or a tuple of the forward's positional arguments; every
    dimension may vary at run time (``Dim.AUTO``), so give a batch of at least two inputs. The
    program keeps the module's qualified names (``layer1.0.conv1.weight``)."""
    import torch
    from torch.export import Dim

    args = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    dynamic = tuple(
        {i: Dim.AUTO for i in range(a.dim())} if isinstance(a, torch.Tensor) else None
        for a in args
    )
    training = module.training
    module.eval()
    try:
        program = torch.export.export(module, args, dynamic_shapes=dynamic)
    except Exception as exc:  # torch.export raises many types for untraceable code
        hint = ("; for a PyG model, name its architecture instead: model: {name: 'pyg:<Class>', "
                "options: {...}, file: weights.safetensors}") if _uses_pyg(module) else ""
        raise ArgumentError("model", f"torch.export could not export {type(module).__name__} "
                            f"({type(exc).__name__}: {str(exc)[:160]}){hint}") from None
    finally:
        module.train(training)
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


def _tensor_dict(dataset: Any) -> dict[str, torch.Tensor]:
    import torch

    if isinstance(dataset, tuple | list) and len(dataset) == 4:
        parts = dict(zip(IMAGE_KEYS, dataset, strict=True))
    elif all(hasattr(dataset, k) for k in GRAPH_KEYS):
        parts = {k: getattr(dataset, k) for k in GRAPH_KEYS}
        if getattr(dataset, "edge_weight", None) is not None:
            parts["edge_weight"] = dataset.edge_weight
    else:
        raise ArgumentError("dataset", "must be (x_train, y_train, x_test, y_test) or a PyG "
                            f"Data with {', '.join(GRAPH_KEYS)}")
    for key, value in parts.items():
        if not isinstance(value, torch.Tensor):
            raise ArgumentError("dataset", f"{key} must be a tensor, got {type(value).__name__}")
    return {k: v.detach().cpu().contiguous() for k, v in parts.items()}


def tensors_to_safetensors(dataset: Any) -> bytes:
    """A ``tensors`` dataset file from ``(x_train, y_train, x_test, y_test)`` (images) or a PyG
    ``Data`` with ``x, edge_index, y, train_mask, test_mask`` (and optional ``edge_weight``)."""
    from safetensors.torch import save

    return save(_tensor_dict(dataset))


def attach_objects(
    spec: dict[str, Any], *, model: nn.Module | None = None, example_inputs: Any = None,
    dataset: Any = None,
) -> tuple[dict[str, Any], dict[str, Path | bytes]]:
    """A copy of ``spec`` whose model / dataset are the given Python objects (an exported
    program, a ``tensors`` file), and their bytes by digest."""
    spec = copy.deepcopy(spec)
    uploads: dict[str, Path | bytes] = {}
    if model is not None:
        if example_inputs is None:
            raise ArgumentError("example_inputs", "is required with model= (to export it)")
        blob = export_module(model, example_inputs)
        uploads[bytes_digest(blob)] = blob
        kept = {k: v for k, v in spec.get("model", {}).items() if k in ("label", "transforms")}
        spec["model"] = {"label": type(model).__name__[:100], **kept, "name": "exported",
                         "file": bytes_digest(blob)}
    if dataset is not None:
        blob = tensors_to_safetensors(dataset)
        uploads[bytes_digest(blob)] = blob
        kept = {k: v for k, v in spec.get("dataset", {}).items()
                if k in ("label", "split", "size")}
        spec["dataset"] = {**kept, "name": "tensors", "file": bytes_digest(blob)}
    return spec, uploads
