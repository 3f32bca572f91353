"""Suffix re-execution: after a fault in layer L, recompute only what depends on L.

The model is traced once with ``torch.fx``; the fault-free value of every graph node that
feeds the recomputed part is cached from one golden pass. For a parameter of module ``m`` the
*dirty* nodes are the calls of ``m`` (or reads of the parameter) and everything downstream of
them; a small ``GraphModule`` takes the cached boundary values as inputs and runs only the dirty
nodes, calling the very same submodules (so in-place faults, hooks and mitigations apply).
Everything before the faulted layer, and side branches that do not depend on it, are never
recomputed. An exported program (unflattened, see :mod:`faultlab.workers.zoo.sources.exported`)
already is a graph over the original submodules and is used as it stands; models that
``torch.fx`` cannot trace fall back to the full forward.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import fx, nn


class _Program:
    def __init__(self, module: fx.GraphModule, boundary: list[str]) -> None:
        self.module = module
        self.boundary = boundary


def _program_graph(model: nn.Module) -> fx.GraphModule | None:
    """The graph of an unflattened ``torch.export`` program taking one tensor and returning
    one (a ``GraphModule`` over the same submodules), else None."""
    from torch.export.unflatten import UnflattenedModule

    if not isinstance(model, UnflattenedModule):
        return None
    signature = model.module_call_graph[0].signature
    if signature is None or (signature.in_spec.num_leaves, signature.out_spec.num_leaves) != (1, 1):
        return None
    graph = fx.Graph()
    outputs = graph.graph_copy(model.graph, {})  # the flat outputs: a 1-tuple
    graph.output(outputs[0] if isinstance(outputs, tuple | list) else outputs)
    return fx.GraphModule(model, graph)


class SuffixRunner:
    """Runs the part of a traced model downstream of a faulted parameter."""

    def __init__(self, model: nn.Module) -> None:
        self.traced = _program_graph(model) or fx.symbolic_trace(model)
        self.graph = self.traced.graph
        self.nodes = list(self.graph.nodes)
        self.programs: dict[str, _Program | None] = {}
        self.env: list[dict[str, Any]] = []
        self.outputs: list[Any] = []
        """The golden output of each input chunk (:meth:`cache_golden`)."""

    @staticmethod
    def try_build(model: nn.Module) -> SuffixRunner | None:
        """A runner, or None when the model cannot be traced (then run full forwards)."""
        try:
            return SuffixRunner(model)
        except Exception:  # noqa: BLE001 - any tracing failure means: no suffix reuse
            return None

    def program(self, module_name: str, tensor: str) -> _Program | None:
        """Recomputes every call of ``module_name`` (or read of its parameter) and after."""
        key = f"{module_name}.{tensor}"
        if key not in self.programs:
            self.programs[key] = self._build(module_name, key, include_starts=True)
        return self.programs[key]

    def after(self, module_name: str) -> tuple[fx.Node, _Program] | None:
        """The single call of ``module_name`` and a program of everything downstream of it,
        taking that call's output as an input (for batched faults); None if it is called
        more than once or its parameters are read directly."""
        key = f"after:{module_name}"
        if key not in self.programs:
            self.programs[key] = self._build(module_name, module_name, include_starts=False)
        program = self.programs[key]
        calls = [n for n in self.nodes if n.op == "call_module" and n.target == module_name]
        reads = [n for n in self.nodes
                 if n.op == "get_attr" and str(n.target).startswith(module_name + ".")]
        if program is None or len(calls) != 1 or reads:
            return None
        return calls[0], program

    def _build(self, module_name: str, param: str, include_starts: bool) -> _Program | None:
        starts = {
            n for n in self.nodes
            if (n.op == "call_module" and n.target == module_name)
            or (n.op == "get_attr" and n.target == param)
        }
        if not starts:
            return None
        dirty: list[fx.Node] = []
        dirty_set: set[fx.Node] = set()
        for n in self.nodes:
            if (include_starts and n in starts) or any(
                a in dirty_set or (not include_starts and a in starts) for a in n.all_input_nodes
            ):
                dirty.append(n)
                dirty_set.add(n)
        output = next(n for n in self.nodes if n.op == "output")
        if output not in dirty_set:
            return None
        graph = fx.Graph()
        env: dict[fx.Node, fx.Node] = {}
        boundary: list[str] = []
        for n in dirty:
            for a in n.all_input_nodes:
                if a not in dirty_set and a not in env:
                    env[a] = graph.placeholder(f"cached_{a.name}")
                    boundary.append(a.name)
        for n in dirty:
            if n.op == "output":
                graph.output(fx.map_arg(n.args[0], lambda a: env[a]))
            else:
                env[n] = graph.node_copy(n, lambda a: env[a])
        return _Program(fx.GraphModule(self.traced, graph), boundary)

    def cache_golden(self, chunks: list[tuple[Any, ...]]) -> list[torch.Tensor]:
        """Runs the golden pass over input chunks, keeping every node's value; returns outputs."""
        outputs = []
        self.env = []
        for args in chunks:
            values: dict[str, Any] = {}
            interp = _Recording(self.traced, values)
            with torch.no_grad():
                outputs.append(interp.run(*args))
            self.env.append(values)
        self.outputs = outputs
        return outputs

    def run(self, program: _Program, chunk: int) -> Any:
        values = self.env[chunk]
        with torch.no_grad():
            return program.module(*[values[name] for name in program.boundary])


class _Recording(fx.Interpreter):
    def __init__(self, module: fx.GraphModule, values: dict[str, Any]) -> None:
        super().__init__(module)
        self.values = values

    def run_node(self, n: fx.Node) -> Any:
        out = super().run_node(n)
        self.values[n.name] = out
        return out
