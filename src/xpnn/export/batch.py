"""A symbolic batch axis for layers that need every size: two fixed traces made one graph.

The convolution, pooling and reshaping layers compute their output sizes,
their paddings and their reshapes from the input's shape as Python ints, so
they need every size known: on an ndonnx argument whose first axis is
symbolic they raise. A model with one of them is traced twice instead,
for two fixed batch sizes (:data:`SIZES`). The two graphs are the same but
for the integer constants that hold the batch size, reshape targets and the
shapes of zero paddings such as ``(2, 4, 12, 2)`` against ``(3, 4, 12, 2)``.
Each such constant is rebuilt from the batch size read off the input at run
time (``Shape``), as ``base + coefficient * batch``, which also covers a
size that merges the batch axis with others (``2 * 12`` against
``3 * 12``).

Anything else that differs between the two traces, a floating constant (a
mean over the batch), a node, a size that is not a multiple of the batch
size, means the graph depends on the batch size in a way this cannot
express; the export is then refused, with the advice to fix the batch.
What the two traces cannot show is a choice a layer makes only for batch
sizes other than theirs (an empty batch, one row). The convolution treats
an empty batch apart, for Dask, which cannot reshape empty arrays; the
graph of its general path gives the same empty output in onnxruntime. The
tests run the graphs on 0, 1 and odd numbers of rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ._common import BATCH, ExportError

if TYPE_CHECKING:
    import onnx

__all__ = ["SIZES", "symbolic_batch"]

#: The batch sizes of the two fixed traces: distinct, small (nothing is
#: computed while tracing), and neither 0 nor 1, which layers may treat
#: apart (an empty batch, one value per channel).
SIZES = (2, 3)

#: The name of the 0-d int64 batch size that the rebuilt constants read.
_BATCH_VALUE = "xpnn_batch_size"


class _Differs(Exception):
    """The two traces differ in something no batch size explains; the text says where."""


@dataclass
class _Rewrite:
    """What the merge of two traces needs: the sizes, and whether the batch is read."""

    sizes: tuple[int, int]
    used: bool = False
    casts: dict[int, str] = field(default_factory=dict)
    new_nodes: list[onnx.NodeProto] = field(default_factory=list)

    def batch_as(self, elem_type: int) -> str:
        """Return the name of the batch size as a tensor of ``elem_type``, adding a cast once."""
        import onnx

        self.used = True
        if elem_type == onnx.TensorProto.INT64:
            return _BATCH_VALUE
        if elem_type not in self.casts:
            name = f"{_BATCH_VALUE}_as_{elem_type}"
            self.new_nodes.append(
                onnx.helper.make_node("Cast", [_BATCH_VALUE], [name], to=elem_type)
            )
            self.casts[elem_type] = name
        return self.casts[elem_type]


def symbolic_batch(
    first: onnx.ModelProto, second: onnx.ModelProto, input_name: str, what: str
) -> onnx.ModelProto:
    """Merge two traces at the batch sizes :data:`SIZES` into one graph for any batch size.

    Parameters
    ----------
    first, second : onnx.ModelProto
        The graphs ``ndonnx.build`` returned for inputs of shape
        ``(SIZES[0], ...)`` and ``(SIZES[1], ...)``, otherwise alike.
    input_name : str
        The graph input whose first axis is the batch.
    what : str
        The model's class name, for the message.

    Returns
    -------
    onnx.ModelProto
        ``first``, changed in place: every integer constant that holds the
        batch size computed from the input's first axis, and every axis of
        a graph input, output or value that was the batch size named
        ``"batch"`` (or left unnamed, where it was a multiple of it).

    Raises
    ------
    ExportError
        If the two graphs differ in anything else: the graph depends on
        the batch size in a way a symbolic axis cannot follow.
    """
    import onnx

    rewrite = _Rewrite(sizes=(SIZES[0], SIZES[1]))
    try:
        _merge_graph(first.graph, second.graph, rewrite, "the graph")
    except _Differs as exc:
        raise ExportError(
            f"{what} traces to a graph that depends on the batch size in a way a symbolic batch "
            f"axis cannot follow ({exc}); export it for a fixed batch instead: "
            "dynamic_batch=False and input_shape=(rows, ...)"
        ) from None
    if rewrite.used:
        # Read first, before any node that uses it; subgraphs see it from the outer scope.
        read = [
            onnx.helper.make_node("Shape", [input_name], [f"{_BATCH_VALUE}_1d"], start=0, end=1),
            onnx.helper.make_node(
                "Reshape", [f"{_BATCH_VALUE}_1d", f"{_BATCH_VALUE}_0d_shape"], [_BATCH_VALUE]
            ),
        ]
        scalar_shape = onnx.helper.make_node(
            "Constant",
            [],
            [f"{_BATCH_VALUE}_0d_shape"],
            value=onnx.numpy_helper.from_array(np.zeros((0,), dtype=np.int64)),
        )
        nodes = [scalar_shape, *read, *rewrite.new_nodes, *first.graph.node]
        del first.graph.node[:]
        first.graph.node.extend(nodes)
    return first


def _merge_graph(a: onnx.GraphProto, b: onnx.GraphProto, rewrite: _Rewrite, where: str) -> None:
    """Make graph ``a`` follow the batch size, comparing it with ``b`` node by node."""
    import onnx

    if len(a.node) != len(b.node):
        raise _Differs(
            f"{where} has {len(a.node)} nodes at one batch size, {len(b.node)} at another"
        )
    nodes: list[onnx.NodeProto] = []
    for node, other in zip(a.node, b.node, strict=True):
        if (node.op_type, node.domain, list(node.input), list(node.output)) != (
            other.op_type,
            other.domain,
            list(other.input),
            list(other.output),
        ) or [attr.name for attr in node.attribute] != [attr.name for attr in other.attribute]:
            raise _Differs(f"{where}: node {node.name or node.op_type} differs")
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            nodes.extend(_merge_constant(node, other, rewrite, where))
            continue
        for attr, other_attr in zip(node.attribute, other.attribute, strict=True):
            inner = f"{where}, {node.op_type} {node.name}.{attr.name}"
            if attr.type == onnx.AttributeProto.GRAPH:
                _merge_graph(attr.g, other_attr.g, rewrite, inner)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for index, (g, h) in enumerate(zip(attr.graphs, other_attr.graphs, strict=True)):
                    _merge_graph(g, h, rewrite, f"{inner}[{index}]")
            elif attr.SerializeToString() != other_attr.SerializeToString():
                raise _Differs(f"{inner} differs")
        nodes.append(node)
    del a.node[:]
    a.node.extend(nodes)
    for kind in ("initializer", "sparse_initializer"):
        ours, theirs = getattr(a, kind), getattr(b, kind)
        if [t.SerializeToString() for t in ours] != [t.SerializeToString() for t in theirs]:
            raise _Differs(f"{where}: the constants stored as {kind}s differ")
    for kind in ("input", "output", "value_info"):
        ours, theirs = getattr(a, kind), getattr(b, kind)
        if [v.name for v in ours] != [v.name for v in theirs]:
            raise _Differs(f"{where}: the {kind} names differ")
        for value, other_value in zip(ours, theirs, strict=True):
            _merge_type(value, other_value, rewrite.sizes, where)


def _merge_type(
    value: onnx.ValueInfoProto, other: onnx.ValueInfoProto, sizes: tuple[int, int], where: str
) -> None:
    """Name an axis that is the batch size ``"batch"``; leave one that is a multiple unknown."""
    ours, theirs = value.type, other.type
    if ours.WhichOneof("value") != "tensor_type" or theirs.WhichOneof("value") != "tensor_type":
        if ours.SerializeToString() != theirs.SerializeToString():
            raise _Differs(f"{where}: the type of {value.name} differs")
        return
    a, b = ours.tensor_type, theirs.tensor_type
    if a.elem_type != b.elem_type or a.HasField("shape") != b.HasField("shape"):
        raise _Differs(f"{where}: the type of {value.name} differs")
    if not a.HasField("shape"):
        return
    if len(a.shape.dim) != len(b.shape.dim):
        raise _Differs(f"{where}: the rank of {value.name} differs")
    for dim, other_dim in zip(a.shape.dim, b.shape.dim, strict=True):
        if dim.SerializeToString() == other_dim.SerializeToString():
            continue
        is_batch = (dim.dim_value, other_dim.dim_value) == sizes
        dim.Clear()
        if is_batch:
            dim.dim_param = BATCH


def _merge_constant(
    node: onnx.NodeProto, other: onnx.NodeProto, rewrite: _Rewrite, where: str
) -> list[onnx.NodeProto]:
    """Return the nodes that compute ``node``'s constant for any batch size.

    The constant itself where both traces agree; otherwise ``base +
    coefficient * batch``, elementwise, which both traces must fit with
    integer coefficients and a base of zero wherever they differ (a size
    that is a multiple of the batch size, nothing added).
    """
    import onnx
    from onnx import numpy_helper

    if node.SerializeToString() == other.SerializeToString():
        return [node]
    (attr,), (other_attr,) = node.attribute, other.attribute
    name = node.output[0]
    if attr.name != "value" or attr.type != onnx.AttributeProto.TENSOR:
        raise _Differs(f"{where}: the constant {name} ({attr.name}) differs")
    ours, theirs = numpy_helper.to_array(attr.t), numpy_helper.to_array(other_attr.t)
    if ours.shape != theirs.shape or ours.dtype != theirs.dtype:
        raise _Differs(f"{where}: the shape or dtype of the constant {name} differs")
    if ours.dtype.kind not in "iu":
        raise _Differs(
            f"{where}: the {ours.dtype} constant {name} differs (a value computed from the "
            "batch size, such as a mean over the batch)"
        )
    first, second = rewrite.sizes
    differs = ours != theirs
    wide, wide_other = ours.astype(np.int64), theirs.astype(np.int64)
    linear = (wide * second == wide_other * first) & (wide % first == 0)
    if not np.all(linear | ~differs):
        raise _Differs(
            f"{where}: the integer constant {name} ({ours.tolist()} against "
            f"{theirs.tolist()}) is not a multiple of the batch size"
        )
    coefficient = np.where(differs, wide // first, 0).astype(ours.dtype)
    base = np.where(differs, 0, ours).astype(ours.dtype)
    names = {part: f"{name}_{part}" for part in ("base", "coefficient", "scaled")}
    batch = rewrite.batch_as(attr.t.data_type)
    return [
        onnx.helper.make_node("Constant", [], [names["base"]], value=numpy_helper.from_array(base)),
        onnx.helper.make_node(
            "Constant", [], [names["coefficient"]], value=numpy_helper.from_array(coefficient)
        ),
        onnx.helper.make_node("Mul", [names["coefficient"], batch], [names["scaled"]]),
        onnx.helper.make_node("Add", [names["base"], names["scaled"]], [name]),
    ]
