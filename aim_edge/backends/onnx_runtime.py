"""The onnxruntime backend: CPU by default; CUDA and TensorRT execution providers as options.

CPU: one intra-op thread by default, sequential execution, all graph optimisations.
GPU (Jetson, desktop): ``providers=["tensorrt", "cuda", "cpu"]`` or ``["cuda", "cpu"]``;
TensorRT builds an engine on first load and caches it under ``cache_dir`` (default
``~/.cache/aim-edge/trt``), so later loads are fast. ``warmup`` steps run at load (default 1 on
CPU, 3 with a GPU provider) so the first real chunk is not the slow one. A requested GPU
provider that onnxruntime does not have, or that fails to initialise (onnxruntime would fall
back to CPU silently), raises :class:`~aim_edge.errors.BackendUnavailableError`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import BackendUnavailableError, BundleError, ConfigError
from . import check_input_shapes, check_io, zero_feeds

if TYPE_CHECKING:
    from ..bundle import Artifact, Bundle

__all__ = ["OnnxRuntimeBackend", "open_backend", "require", "resolve_providers"]

PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
}
GPU_HINT = ("install onnxruntime-gpu (desktop: `pip install onnxruntime-gpu`; Jetson: the"
            " JetPack wheel of onnxruntime-gpu) with the matching CUDA / TensorRT libraries")


def _import_ort():  # noqa: ANN202
    try:
        import onnxruntime
    except ImportError:
        raise BackendUnavailableError(
            "the onnxruntime backend", "`pip install onnxruntime` (it is a dependency of"
            " aim-edge: reinstall with `pip install aim-edge`)") from None
    return onnxruntime


def require() -> None:
    """Raise BackendUnavailableError when onnxruntime cannot be imported."""
    _import_ort()


def resolve_providers(providers: Sequence[str] | str | None) -> list[str]:
    """Short names (``cpu``, ``cuda``, ``tensorrt``) or onnxruntime names -> onnxruntime names;
    CPU is appended as the last fallback."""
    if providers is None:
        return ["CPUExecutionProvider"]
    if isinstance(providers, str):
        providers = [p.strip() for p in providers.split(",") if p.strip()]
    out = []
    for p in providers:
        full = PROVIDERS.get(p.lower(), p)
        if not full.endswith("ExecutionProvider"):
            raise ConfigError(
                f"providers: {p!r} is unknown; use cpu, cuda, tensorrt or an onnxruntime"
                " provider name")
        if full not in out:
            out.append(full)
    if "CPUExecutionProvider" not in out:
        out.append("CPUExecutionProvider")
    return out


class OnnxRuntimeBackend:
    """One ``onnxruntime.InferenceSession`` over a bundle's step artifact."""

    name = "onnxruntime"

    def __init__(self, bundle: Bundle, artifact: Artifact, *, threads: int = 1,
                 providers: Sequence[str] | str | None = None,
                 provider_options: Mapping[str, Mapping[str, Any]] | None = None,
                 cache_dir: str | Path | None = None, warmup: int | None = None) -> None:
        ort = _import_ort()
        self.artifact = artifact
        wanted = resolve_providers(providers)
        have = set(ort.get_available_providers())
        missing = [p for p in wanted if p not in have]
        if missing:
            raise BackendUnavailableError(
                f"onnxruntime provider(s) {', '.join(missing)}",
                f"this onnxruntime has {sorted(have)}; {GPU_HINT}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        cache = Path(cache_dir or os.environ.get("AIM_EDGE_CACHE", "~/.cache/aim-edge"))
        cache = cache.expanduser()
        per_provider: list[dict[str, Any]] = []
        for p in wanted:
            o: dict[str, Any] = dict((provider_options or {}).get(p, {}))
            if p == "TensorrtExecutionProvider":
                trt_dir = cache / "trt"
                trt_dir.mkdir(parents=True, exist_ok=True)
                o.setdefault("trt_engine_cache_enable", True)
                o.setdefault("trt_engine_cache_path", str(trt_dir))
                o.setdefault("trt_timing_cache_enable", True)
                o.setdefault("trt_timing_cache_path", str(trt_dir))
                o.setdefault("trt_fp16_enable", artifact.precision in ("fp16", "fp32"))
            per_provider.append(o)
        try:
            self.session = ort.InferenceSession(str(artifact.path), opts, providers=wanted,
                                                provider_options=per_provider)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BundleError(f"onnxruntime cannot load {artifact.file}: {exc}") from exc
        active = self.session.get_providers()
        if wanted[0] not in active:
            raise BackendUnavailableError(
                f"onnxruntime provider {wanted[0]}",
                f"it failed to initialise (active: {active}); check the CUDA/TensorRT"
                f" installation or run on CPU; {GPU_HINT}")
        self.providers = tuple(active)
        self.input_names = tuple(i.name for i in self.session.get_inputs())
        self.output_names = tuple(o.name for o in self.session.get_outputs())
        check_io(self.name, artifact, bundle, self.input_names, self.output_names)
        check_input_shapes(self.name, artifact, bundle,
                           {i.name: i.shape for i in self.session.get_inputs()})
        self._check_metadata(bundle)
        self.threads = threads
        import onnxruntime

        self.description = (f"onnxruntime {onnxruntime.__version__} [{', '.join(active)}],"
                            f" {artifact.file} ({artifact.precision}), {threads} thread(s)")
        gpu = active[0] != "CPUExecutionProvider"
        n_warm = (3 if gpu else 1) if warmup is None else int(warmup)
        feeds = zero_feeds(bundle)
        for _ in range(n_warm):
            self.run(feeds)

    def _check_metadata(self, bundle: Bundle) -> None:
        meta = self.session.get_modelmeta().custom_metadata_map
        raw = meta.get("aim_edge.features")
        if not raw:
            return
        try:
            stamped = json.loads(raw)
        except json.JSONDecodeError:
            return
        ours = bundle.features.to_dict()
        diff = [k for k in ours if k in stamped and stamped[k] != ours[k]]
        if diff:
            k = diff[0]
            raise BundleError(
                f"{self.artifact.file}: its metadata says features.{k} = {stamped[k]!r} but the"
                f" manifest says {ours[k]!r}; the model file and manifest do not belong together")

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        outs = self.session.run(self.output_names, {k: feeds[k] for k in self.input_names})
        return dict(zip(self.output_names, outs, strict=True))

    def close(self) -> None:
        self.session = None  # type: ignore[assignment]


def open_backend(bundle: Bundle, artifact: Artifact, *, threads: int = 1,
                 **options: Any) -> OnnxRuntimeBackend:
    return OnnxRuntimeBackend(bundle, artifact, threads=threads, **options)
