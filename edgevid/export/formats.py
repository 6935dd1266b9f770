"""Each stage to one runtime's artifact; the delegation report of ExecuTorch's XNNPACK lowering.

    executorch  torch.export -> constant propagation -> XNNPACK partitioner -> .pte
    onnx        torch.onnx.export (dynamo) -> .onnx, run by onnxruntime
    litert      litert_torch.convert -> .tflite, run by the LiteRT interpreter
    coreml      coremltools.convert (ML program) -> .mlpackage; predictions need macOS

Every exporter takes (module, example inputs, input/output names, path, precision) and returns
facts for the manifest. The toolchains are imported only here, only when used.
"""
from __future__ import annotations

import collections
import importlib.metadata
import warnings
from pathlib import Path

import torch

FORMATS = ("executorch", "onnx", "litert", "coreml")
SUFFIX = {"executorch": ".pte", "onnx": ".onnx", "litert": ".tflite", "coreml": ".mlpackage"}
RUNS_HERE = ("executorch", "onnx", "litert")  # Core ML predicts on macOS only
MULTI_METHOD = ("executorch",)  # formats whose files hold several graphs (methods) sharing weights
PACKAGES = {"executorch": ("executorch",), "onnx": ("onnx", "onnxruntime", "onnxscript"),
            "litert": ("litert-torch", "ai-edge-litert"), "coreml": ("coremltools",)}
# Ops that move no data through arithmetic: graph plumbing, not compute.
NON_COMPUTE = {"getitem", "executorch_call_delegate", "alloc", "view", "_local_scalar_dense"}


def toolchain_versions(fmt: str) -> dict[str, str]:
    out = {"torch": torch.__version__}
    for pkg in PACKAGES[fmt]:
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            raise ValueError(f"--format {fmt} needs the {pkg} package: pip install 'edgevid[export]'") from None
    return out


def _export(module, inputs):
    with torch.no_grad():
        return torch.export.export(module, inputs, strict=False)


def _op_name(node) -> str:
    target = node.target
    name = getattr(target, "__name__", str(target))
    return name.split(".")[-2] if name.count(".") >= 2 else name.split(".")[0]


def delegation_report(edge_program) -> dict:
    """Partitions and delegated share of a lowered program: compute ops inside XNNPACK delegates
    against those left on portable kernels (by name)."""
    from executorch.exir.lowered_backend_module import get_lowered_submodules

    gm = edge_program.graph_module
    delegated = 0
    for _, lowered, _ in get_lowered_submodules(gm):
        for node in lowered.original_module.graph.nodes:
            if node.op == "call_function" and _op_name(node) not in NON_COMPUTE:
                delegated += 1
    portable = collections.Counter(_op_name(n) for n in gm.graph.nodes
                                   if n.op == "call_function" and _op_name(n) not in NON_COMPUTE)
    partitions = sum(1 for n in gm.graph.nodes if n.op == "call_function" and _op_name(n) == "executorch_call_delegate")
    total = delegated + sum(portable.values())
    return {"partitions": partitions, "delegated_ops": delegated, "portable_ops": dict(portable.most_common()),
            "delegated_share": round(delegated / total, 4) if total else 1.0}


def export_executorch(module, inputs, input_names, output_names, path: Path, precision: str = "fp32",
                      methods: dict | None = None) -> dict:
    """fp32, or int8: `module` is then already quantized (export.quantize). methods: more graphs
    {name: (module, inputs)} in the same .pte beside "forward" (the denoiser at a second chunk
    length): the program stores weights once, however many methods use them."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    methods = methods or {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        programs = {"forward": _export(module, inputs), **{name: _export(m, x) for name, (m, x) in methods.items()}}
        edge = to_edge_transform_and_lower(programs, partitioner=[XnnpackPartitioner()])
        reports = {name: delegation_report(edge.exported_program(name)) for name in programs}
        path.write_bytes(edge.to_executorch().buffer)
    return {"delegation": reports["forward"],
            **({"methods": {name: {"delegation": reports[name]} for name in methods}} if methods else {})}


def export_onnx(module, inputs, input_names, output_names, path: Path, precision: str = "fp32") -> dict:
    if precision != "fp32":
        raise ValueError("--precision int8 is exported for executorch only")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, inputs, dynamo=True, input_names=input_names, output_names=output_names,
                                    optimize=True, verbose=False)
        program.save(str(path), external_data=False)
    return {}


def export_litert(module, inputs, input_names, output_names, path: Path, precision: str = "fp32") -> dict:
    if precision != "fp32":
        raise ValueError("--precision int8 is exported for executorch only")
    import litert_torch

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        litert_torch.convert(module.eval(), inputs).export(str(path))
    return {}


def export_coreml(module, inputs, input_names, output_names, path: Path, precision: str = "fp32") -> dict:
    """An ML program .mlpackage (fp32 compute); validated on any OS by `coreml_spec_facts`."""
    if precision != "fp32":
        raise ValueError("--precision int8 is exported for executorch only")
    import coremltools as ct

    ep = _export(module, inputs).run_decompositions({})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ct.convert(ep, inputs=[ct.TensorType(name=n, shape=tuple(x.shape)) for n, x in zip(input_names, inputs)],
                           outputs=[ct.TensorType(name=n) for n in output_names], convert_to="mlprogram",
                           compute_precision=ct.precision.FLOAT32, minimum_deployment_target=ct.target.iOS17)
    model.save(str(path))
    return {"coreml": coreml_spec_facts(path)}


def coreml_spec_facts(path: Path) -> dict:
    """Inputs, outputs, op count and compute precision read from a saved .mlpackage's spec (no
    prediction: that needs macOS)."""
    import coremltools as ct

    model = ct.models.MLModel(str(path), skip_model_load=True)
    spec = model.get_spec()
    ops = collections.Counter()
    dtypes = collections.Counter()
    for fn in spec.mlProgram.functions.values():
        for block in fn.block_specializations.values():
            for op in block.operations:
                ops[op.type] += 1
                for out in op.outputs:
                    dtypes[out.type.tensorType.dataType] += 1

    def io(features):
        return [{"name": f.name, "shape": list(f.type.multiArrayType.shape)} for f in features]

    fp16 = sum(n for d, n in dtypes.items() if d == 10)  # MILSpec DataType FLOAT16
    return {"inputs": io(spec.description.input), "outputs": io(spec.description.output),
            "ops": sum(ops.values()), "op_types": dict(ops.most_common()),
            "compute_precision": "fp16" if fp16 else "fp32", "spec_version": spec.specificationVersion}


EXPORTERS = {"executorch": export_executorch, "onnx": export_onnx, "litert": export_litert, "coreml": export_coreml}
