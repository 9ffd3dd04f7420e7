"""Model bundles: the contract between the export stage and the runtime.

A bundle is a folder (or a ``.zip`` of one) holding ``manifest.json`` and model files. The
manifest is the single source of truth and is validated on load: schema version, field types,
and the sha256 and size of every file it lists. A bundle is data, never code: files that could
carry code (pickles, Python) are refused.

Manifest, schema version 1 (fields marked ``?`` are optional)::

    schema_version   1
    name             str
    created          ISO-8601 str
    features         FbankConfig fields (sample_rate, n_mels, ...); the runtime refuses a
                     mismatch with its own front end, naming the field
    model            {chunk_frames, subsampling, lookahead_frames, instruction_dim,
                      instruction_encoder?: hashed-bow|all-minilm-l6-v2 (what the model was
                      trained with; the bundle's encoder must match), architecture?: {...,
                      event_branch?: bool (events do not read the instruction)}}
    state            [{name, shape, dtype, init}]  fed back chunk to chunk
    labels           {vocab: [str] (index 0 = CTC blank), events: [{name, safety,
                      aliases?: [str], ...}], intents: [str] (index 0 = stay silent)}
    thresholds       {speak_now: float, events: {label: float}, false_alerts_per_hour?: float,
                      calibrated_on?: str, recall_at_rate?: {...},
                      hysteresis?: float in [0, 1), refractory_s?: float | {label: float},
                      confirm_chunks?: int >= 1 | {label: int >= 1},
                      rearm_s?: float | {label: float},
                      caption_confidence?: float in [0, 1)}
    artifacts        [{file, format: onnx|tflite, precision: fp32|fp16|int8-dynamic|
                      int8-static, size, sha256, role: step|instruction_encoder|asr_*,
                      encoder?: str (instruction_encoder artifacts),
                      tokenizer?: {file, size, sha256}, parity?: {..., known_answer?: {...}}}]
    instructions?    {encoder?: {kind: "hashed-bow", dim, buckets, seed}, known: [{text}], ...}
    provenance?      {data, teachers, metrics, command, ...}
    asr?             {kind: "whisper", dir, config, files: [{file, size, sha256}],
                      parity: {...}, ...}  optional second pass for final captions

Optional runtime fields (all validated when present):

* ``labels.events[i].aliases`` -- extra phrases that name the label in an instruction
  ("tell me if the *chime* goes"), used by :func:`aim_edge.instructions.parse_instruction`.
* ``thresholds.hysteresis`` -- ``off = on - hysteresis`` per label (default 0.1, see
  :mod:`aim_edge.policy`); ``thresholds.refractory_s`` -- seconds before a label may alert again;
  ``thresholds.confirm_chunks`` -- chunks at or above threshold before a sound alerts (default
  1; ``python -m export.confirm`` chooses it per label on dev scenes through the runtime);
  ``thresholds.rearm_s`` -- seconds a label must stay quiet before its next activation is a
  new sound (default :class:`aim_edge.policy.PolicyConfig` ``rearm_s``; ``python -m
  export.rearm`` chooses it per label on dev scenes);
  ``thresholds.caption_confidence`` -- mean letter posterior below which a final caption is
  dropped as not speech (``python -m export.caption_gate`` chooses it on dev scenes).
* ``artifacts[i].tokenizer`` -- the tokenizer file of an ``instruction_encoder`` artifact,
  size- and sha256-checked like the artifact itself.
* ``artifacts[i].parity.known_answer`` -- ``{chunks, speak_logit: [..], event_logits: [[..]],
  atol}``: outputs of the fp32 reference on :func:`aim_edge.backends.known_answer_feeds`; the
  legacy tflite-runtime backend refuses an artifact without it, LiteRT checks it when present.
* ``instructions.encoder`` -- a weight-free instruction encoder (see
  :mod:`aim_edge.text_embedding`) when no ``instruction_encoder`` artifact is shipped.
* ``asr`` -- a second-pass recogniser (Whisper tiny.en from ``python -m export.whisper``,
  attached with ``python -m export.whisper.attach``): ``dir`` (its folder inside the bundle),
  ``config`` (its ``whisper.json``), every file with size and sha256 (checked like artifacts),
  and ``parity`` figures (at least one number, e.g. ``onnx_int8.wer``). ``Bundle.asr_dir`` is
  the validated folder or None.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .config import FbankConfig
from .errors import BundleError, ConfigError

__all__ = [
    "SCHEMA_VERSION",
    "Artifact",
    "Bundle",
    "StateSpec",
    "load_bundle",
    "sha256_file",
]

SCHEMA_VERSION = 1
FORMATS = ("onnx", "tflite")
PRECISIONS = ("fp32", "fp16", "int8-dynamic", "int8-static")
FORBIDDEN_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".ckpt", ".py", ".pyc", ".npy", ".npz")
DTYPES = ("float32", "float16", "int64", "int32")


def sha256_file(path: Path, block: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


@dataclasses.dataclass(frozen=True)
class StateSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str
    init: float


@dataclasses.dataclass(frozen=True)
class Artifact:
    file: str
    format: str
    precision: str
    role: str
    size: int
    sha256: str
    parity: Mapping[str, Any]
    path: Path
    tokenizer: Path | None = None


@dataclasses.dataclass(frozen=True)
class EventLabel:
    name: str
    safety: bool
    aliases: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Bundle:
    """A validated bundle. Build it with :func:`load_bundle`."""

    root: Path
    manifest: Mapping[str, Any]
    features: FbankConfig
    chunk_frames: int
    subsampling: int
    lookahead_frames: int
    instruction_dim: int
    state: tuple[StateSpec, ...]
    vocab: tuple[str, ...]
    events: tuple[EventLabel, ...]
    intents: tuple[str, ...]
    speak_threshold: float
    event_thresholds: Mapping[str, float]
    artifacts: tuple[Artifact, ...]
    #: step artifacts listed in the manifest whose files were removed: (file, format, precision)
    missing: tuple[tuple[str, str, str], ...] = ()

    @property
    def name(self) -> str:
        return str(self.manifest["name"])

    @property
    def chunk_samples(self) -> int:
        return self.chunk_frames * self.features.frame_shift

    @property
    def chunk_seconds(self) -> float:
        return self.chunk_samples / self.features.sample_rate

    @property
    def algorithmic_latency_ms(self) -> float:
        """Chunk plus lookahead plus the fbank window overhang, in milliseconds."""
        f = self.features
        frames = self.chunk_frames + self.lookahead_frames
        overhang = f.frame_length_ms - f.frame_shift_ms
        return frames * f.frame_shift_ms + overhang

    @property
    def asr_dir(self) -> Path | None:
        """Folder of the bundle's validated ``asr`` component (second pass), or None."""
        asr = self.manifest.get("asr")
        return None if asr is None else self.root / str(asr["dir"])

    def per_label(self, key: str) -> dict[str, Any]:
        """Manifest ``thresholds.<key>`` per event label: a number applies to every label, a
        ``{label: value}`` object to the labels it names; ``{}`` when the field is absent."""
        value = self.manifest.get("thresholds", {}).get(key)
        if value is None:
            return {}
        if isinstance(value, Mapping):
            return dict(value)
        return {e.name: value for e in self.events}

    @property
    def confirm_chunks(self) -> dict[str, int]:
        """Chunks at or above threshold before a sound of each label alerts (default 1)."""
        per = self.per_label("confirm_chunks")
        return {e.name: int(per.get(e.name, 1)) for e in self.events}

    @property
    def safety_events(self) -> tuple[str, ...]:
        return tuple(e.name for e in self.events if e.safety)

    @property
    def events_read_instruction(self) -> bool:
        """Whether the model's event logits depend on its instruction input: true for every
        shipped model so far (v0.8 included), false where ``model.architecture.event_branch``
        says the events come from their own decide branch without the instruction (then the
        runtime's safety re-check, ``PolicyConfig.safety_without_instruction``, has nothing to
        fix and is skipped)."""
        arch = self.manifest["model"].get("architecture") or {}
        return not arch.get("event_branch", False)

    def artifact(self, *, format: str = "onnx", precision: str | None = None,
                 role: str = "step") -> Artifact:
        """The artifact for a backend format and precision (default: smallest of that format)."""
        matches = [a for a in self.artifacts if a.format == format and a.role == role
                   and (precision is None or a.precision == precision)]
        if not matches:
            have = sorted({(a.format, a.precision) for a in self.artifacts if a.role == role})
            gone = [f for f, fmt, prec in self.missing if fmt == format
                    and (precision is None or prec == precision)]
            if gone and role == "step":
                backend = {"onnx": "onnxruntime", "tflite": "litert"}
                same = sorted({p for f, p in have if f == format})
                other = sorted({backend[f] for f, _ in have if f != format})
                hint = (f" (--precision {' or '.join(same)})" if same
                        else f" (--backend {' or '.join(other)})" if other else "")
                raise BundleError(
                    f"bundle {self.name!r}: {', '.join(gone)} is listed in the manifest but was"
                    f" removed from {self.root}; copy it back, or use what the bundle still"
                    f" has: {have}{hint}")
            raise BundleError(
                f"bundle {self.name!r} has no {role} artifact with format={format!r}"
                f" precision={precision!r}; it has {have}"
            )
        return min(matches, key=lambda a: a.size)


def _require(obj: Mapping[str, Any], key: str, types: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, Mapping) or key not in obj:
        raise BundleError(f"manifest: missing field {where}{key}")
    value = obj[key]
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise BundleError(f"manifest: field {where}{key} = {value!r} has the wrong type")
    if not isinstance(value, types):
        names = types.__name__ if isinstance(types, type) else "/".join(t.__name__ for t in types)
        raise BundleError(
            f"manifest: field {where}{key} = {value!r} has type {type(value).__name__},"
            f" expected {names}"
        )
    return value


def _open_root(path: Path) -> Path:
    if path.is_dir():
        return path
    if path.is_file() and zipfile.is_zipfile(path):
        # unpack next to a cache keyed by content so repeated loads are cheap and read-only
        digest = sha256_file(path)[:16]
        import tempfile

        target = Path(tempfile.gettempdir()) / f"aim-edge-bundle-{digest}"
        if not (target / "manifest.json").is_file():
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    name = Path(info.filename)
                    if name.is_absolute() or ".." in name.parts:
                        raise BundleError(f"{path}: unsafe path {info.filename!r} in the zip")
                zf.extractall(target)
            inner = [p for p in target.iterdir() if p.is_dir()]
            if not (target / "manifest.json").is_file() and len(inner) == 1:
                return inner[0]
        return target
    if not path.exists():
        raise BundleError(f"bundle not found: {path} (give a bundle folder or .zip)")
    raise BundleError(f"{path} is neither a bundle folder nor a zip file")


def load_bundle(path: str | Path, *, verify_hashes: bool = True,
                expect_features: FbankConfig | None = None) -> Bundle:
    """Load and validate a bundle.

    Parameters
    ----------
    path : folder or ``.zip`` containing ``manifest.json``.
    verify_hashes : check size and sha256 of every listed file (on by default; costs a read).
    expect_features : the front end the caller will use; any differing field is refused.

    Raises
    ------
    BundleError
        Anything wrong with the bundle, with the field or file named.
    """
    root = _open_root(Path(path))
    mpath = root / "manifest.json"
    if not mpath.is_file():
        raise BundleError(f"{root}: no manifest.json (is this a model bundle?)")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{mpath}: not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict):
        raise BundleError(f"{mpath}: top level must be an object, got {type(manifest).__name__}")

    version = _require(manifest, "schema_version", int, "")
    if version != SCHEMA_VERSION:
        raise BundleError(
            f"manifest: schema_version {version} is not supported by this runtime (it reads "
            f"version {SCHEMA_VERSION}); upgrade aim-edge or re-export the bundle"
        )
    _require(manifest, "name", str, "")

    for p in root.rglob("*"):
        if p.suffix.lower() in FORBIDDEN_SUFFIXES:
            raise BundleError(
                f"{p.relative_to(root)}: {p.suffix} files are not allowed in a bundle "
                "(a bundle is data, never code or pickles)"
            )

    feats = _require(manifest, "features", dict, "")
    try:
        features = FbankConfig.from_dict(feats)
    except ConfigError as exc:
        raise BundleError(f"manifest: features: {exc}") from exc
    if expect_features is not None and features != expect_features:
        ours, theirs = expect_features.to_dict(), features.to_dict()
        diff = [k for k in ours if ours[k] != theirs[k]]
        field = diff[0]
        raise BundleError(
            f"bundle front end mismatch: features.{field} = {theirs[field]!r} in the bundle but "
            f"{ours[field]!r} in the runtime; re-export the bundle or configure the runtime to"
            " match"
        )

    model = _require(manifest, "model", dict, "")
    chunk_frames = _require(model, "chunk_frames", int, "model.")
    subsampling = _require(model, "subsampling", int, "model.")
    lookahead = _require(model, "lookahead_frames", int, "model.")
    instruction_dim = _require(model, "instruction_dim", int, "model.")
    arch = model.get("architecture")
    if arch is not None and not isinstance(arch, dict):
        raise BundleError(f"manifest: field model.architecture = {arch!r} must be an object")
    if arch and "event_branch" in arch and not isinstance(arch["event_branch"], bool):
        raise BundleError(f"manifest: field model.architecture.event_branch = "
                          f"{arch['event_branch']!r} must be true or false")
    if chunk_frames <= 0 or subsampling <= 0 or chunk_frames % subsampling or lookahead < 0:
        raise BundleError(
            f"manifest: model chunk_frames={chunk_frames}, subsampling={subsampling},"
            f" lookahead_frames={lookahead} are inconsistent"
        )

    states = []
    for i, s in enumerate(_require(manifest, "state", list, "")):
        where = f"state[{i}]."
        name = _require(s, "name", str, where)
        shape = _require(s, "shape", list, where)
        if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise BundleError(f"manifest: {where}shape = {shape!r} must be non-negative ints")
        dtype = _require(s, "dtype", str, where)
        if dtype not in DTYPES:
            raise BundleError(f"manifest: {where}dtype = {dtype!r}, expected one of {DTYPES}")
        init = _require(s, "init", (int, float), where)
        states.append(StateSpec(name, tuple(shape), dtype, float(init)))

    labels = _require(manifest, "labels", dict, "")
    vocab = tuple(_require(labels, "vocab", list, "labels."))
    events_raw = _require(labels, "events", list, "labels.")
    events = tuple(
        EventLabel(_require(e, "name", str, f"labels.events[{i}]."),
                   bool(_require(e, "safety", bool, f"labels.events[{i}].")),
                   _aliases(e, f"labels.events[{i}]."))
        for i, e in enumerate(events_raw)
    )
    intents = tuple(_require(labels, "intents", list, "labels."))

    thr = _require(manifest, "thresholds", dict, "")
    speak = float(_require(thr, "speak_now", (int, float), "thresholds."))
    ev_thr_raw = _require(thr, "events", dict, "thresholds.")
    names = {e.name for e in events}
    unknown = sorted(set(ev_thr_raw) - names)
    if unknown:
        raise BundleError(f"manifest: thresholds.events names unknown labels {unknown}")
    for name, value in ev_thr_raw.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BundleError(f"manifest: thresholds.events.{name} = {value!r} must be a "
                              "probability in (0, 1)")
    ev_thr = {e.name: float(ev_thr_raw.get(e.name, 0.5)) for e in events}
    for key, value in [("speak_now", speak), *ev_thr.items()]:
        if not 0.0 < value < 1.0:
            raise BundleError(
                f"manifest: threshold {key} = {value} must be a probability in (0, 1)")
    _check_runtime_thresholds(thr, names)
    instructions = manifest.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, dict):
            raise BundleError(f"manifest: field instructions = {instructions!r} must be an object")
        enc = instructions.get("encoder")
        if enc is not None:
            _require(enc if isinstance(enc, dict) else {}, "kind", str, "instructions.encoder.")

    artifacts = []
    missing: list[tuple[str, str, str]] = []
    for i, a in enumerate(_require(manifest, "artifacts", list, "")):
        where = f"artifacts[{i}]."
        fname = _require(a, "file", str, where)
        fmt = _require(a, "format", str, where)
        prec = _require(a, "precision", str, where)
        if fmt not in FORMATS:
            raise BundleError(f"manifest: {where}format = {fmt!r}, expected one of {FORMATS}")
        if prec not in PRECISIONS:
            raise BundleError(f"manifest: {where}precision = {prec!r}, expected {PRECISIONS}")
        size = _require(a, "size", int, where)
        digest = _require(a, "sha256", str, where)
        fpath = root / fname
        if Path(fname).is_absolute() or ".." in Path(fname).parts:
            raise BundleError(f"manifest: {where}file = {fname!r} must stay inside the bundle")
        if not fpath.is_file():
            if str(a.get("role", "step")) == "step":  # either model file alone is enough
                missing.append((fname, fmt, prec))
                continue
            raise BundleError(f"bundle {root}: {fname} is listed in the manifest but missing")
        if verify_hashes:
            _verify_file(root, fname, fpath, size, digest)
        tokenizer = None
        if "tokenizer" in a:
            tok = _require(a, "tokenizer", dict, where)
            tname = _require(tok, "file", str, f"{where}tokenizer.")
            tsize = _require(tok, "size", int, f"{where}tokenizer.")
            tdigest = _require(tok, "sha256", str, f"{where}tokenizer.")
            if Path(tname).is_absolute() or ".." in Path(tname).parts:
                raise BundleError(f"manifest: {where}tokenizer.file = {tname!r} must stay"
                                  " inside the bundle")
            tokenizer = root / tname
            if not tokenizer.is_file():
                raise BundleError(f"bundle {root}: {tname} is listed in the manifest but missing")
            if verify_hashes:
                _verify_file(root, tname, tokenizer, tsize, tdigest)
        artifacts.append(Artifact(fname, fmt, prec, str(a.get("role", "step")), size, digest,
                                  dict(a.get("parity", {})), fpath, tokenizer))
    if not any(a.role == "step" for a in artifacts):
        if missing:
            names = ", ".join(f for f, _, _ in missing)
            raise BundleError(f"bundle {root}: {names} {'is' if len(missing) == 1 else 'are'}"
                              " listed in the manifest but missing; no streaming model file is"
                              " left (copy one back or re-export)")
        raise BundleError("manifest: no artifact with role 'step' (the streaming model)")
    _check_instruction_encoder(manifest, model)
    if "asr" in manifest:
        _check_asr(manifest, root, verify_hashes)

    return Bundle(
        root=root, manifest=manifest, features=features, chunk_frames=chunk_frames,
        subsampling=subsampling, lookahead_frames=lookahead, instruction_dim=instruction_dim,
        state=tuple(states), vocab=vocab, events=events, intents=intents,
        speak_threshold=speak, event_thresholds=ev_thr, artifacts=tuple(artifacts),
        missing=tuple(missing),
    )


#: Instruction embeddings a model can be trained with (``model.instruction_encoder``).
INSTRUCTION_ENCODERS = ("hashed-bow", "all-minilm-l6-v2")


def _check_instruction_encoder(manifest: Mapping[str, Any], model: Mapping[str, Any]) -> None:
    """Refuse a bundle whose instruction encoder is not the one its model was trained with.

    ``model.instruction_encoder`` (optional; older bundles lack it and are not checked) names
    the embedding the model saw in training. An ``instruction_encoder`` artifact must carry the
    same ``encoder``; without one, ``instructions.encoder.kind`` must match.
    """
    if "instruction_encoder" not in model:
        return
    trained = _require(model, "instruction_encoder", str, "model.")
    if trained not in INSTRUCTION_ENCODERS:
        raise BundleError(f"manifest: model.instruction_encoder = {trained!r}, expected one of"
                          f" {INSTRUCTION_ENCODERS}")
    shipped = [a for a in manifest.get("artifacts", [])
               if isinstance(a, Mapping) and a.get("role") == "instruction_encoder"]
    fix = ("re-export the bundle with the encoder the model was trained with"
           " (python -m export.bundle; see its --instruction-encoder)")
    for a in shipped:
        if a.get("encoder") != trained:
            raise BundleError(
                f"manifest: instruction encoder mismatch: artifact {a.get('file')!r} is the"
                f" {a.get('encoder')!r} encoder, but the model was trained with {trained!r}"
                f" instruction embeddings (model.instruction_encoder); {fix}")
    if shipped:
        return
    spec = (manifest.get("instructions") or {}).get("encoder")
    kind = spec.get("kind") if isinstance(spec, Mapping) else None
    if kind != trained:
        raise BundleError(
            f"manifest: instruction encoder mismatch: instructions.encoder.kind = {kind!r} but"
            f" the model was trained with {trained!r} instruction embeddings"
            f" (model.instruction_encoder) and no instruction_encoder artifact is shipped; {fix}")


def _verify_file(root: Path, fname: str, fpath: Path, size: int, digest: str) -> None:
    actual_size = fpath.stat().st_size
    if actual_size != size:
        raise BundleError(
            f"bundle {root}: {fname} has {actual_size} bytes, the manifest says {size}"
            " (corrupt or replaced file)"
        )
    actual = sha256_file(fpath)
    if actual != digest:
        raise BundleError(
            f"bundle {root}: sha256 of {fname} is {actual[:12]}..., the manifest says"
            f" {digest[:12]}... (corrupt or replaced file)"
        )


def _inside(root: Path, name: str, where: str) -> Path:
    if Path(name).is_absolute() or ".." in Path(name).parts:
        raise BundleError(f"manifest: {where} = {name!r} must stay inside the bundle")
    return root / name


def _has_number(obj: Any) -> bool:
    if isinstance(obj, bool):
        return False
    if isinstance(obj, (int, float)):
        return True
    return isinstance(obj, Mapping) and any(_has_number(v) for v in obj.values())


def _check_asr(manifest: Mapping[str, Any], root: Path, verify_hashes: bool) -> None:
    """The optional ``asr`` component: its folder, config and files (size, sha256) and
    parity figures."""
    asr = _require(manifest, "asr", dict, "")
    _require(asr, "kind", str, "asr.")
    folder = _inside(root, _require(asr, "dir", str, "asr."), "asr.dir")
    if not folder.is_dir():
        raise BundleError(f"bundle {root}: asr.dir {asr['dir']!r} is missing (attach the second"
                          " pass with python -m export.whisper.attach, or remove asr)")
    config = _require(asr, "config", str, "asr.")
    files = _require(asr, "files", list, "asr.")
    listed = set()
    for i, f in enumerate(files):
        where = f"asr.files[{i}]."
        fname = _require(f, "file", str, where)
        size = _require(f, "size", int, where)
        digest = _require(f, "sha256", str, where)
        fpath = _inside(root, fname, f"{where}file")
        if not fpath.is_file():
            raise BundleError(f"bundle {root}: {fname} is listed in the manifest (asr) but"
                              " missing")
        if verify_hashes:
            _verify_file(root, fname, fpath, size, digest)
        listed.add(fname)
    if config not in listed:
        raise BundleError(f"manifest: asr.config = {config!r} is not one of asr.files (its"
                          " size and sha256 must be listed)")
    parity = _require(asr, "parity", dict, "asr.")
    if not _has_number(parity):
        raise BundleError("manifest: asr.parity holds no figures (re-export with parity clips:"
                          " python -m export.whisper --clips 100)")


def _aliases(event: Mapping[str, Any], where: str) -> tuple[str, ...]:
    if "aliases" not in event:
        return ()
    value = _require(event, "aliases", list, where)
    if not all(isinstance(v, str) and v.strip() for v in value):
        raise BundleError(f"manifest: {where}aliases = {value!r} must be non-empty strings")
    return tuple(value)


def _check_runtime_thresholds(thr: Mapping[str, Any], names: set[str]) -> None:
    if "hysteresis" in thr:
        h = _require(thr, "hysteresis", (int, float), "thresholds.")
        if not 0.0 <= h < 1.0:
            raise BundleError(f"manifest: thresholds.hysteresis = {h} must be in [0, 1)")
    _check_per_label(thr, "refractory_s", (int, float), 0, names,
                     "a number of seconds >= 0")
    _check_per_label(thr, "rearm_s", (int, float), 0, names, "a number of seconds >= 0")
    _check_per_label(thr, "confirm_chunks", int, 1, names,
                     "a whole number of chunks >= 1 (1 = alert at the first chunk above"
                     " threshold)")
    if "caption_confidence" in thr:
        c = _require(thr, "caption_confidence", (int, float), "thresholds.")
        if not 0.0 <= c < 1.0:
            raise BundleError(f"manifest: thresholds.caption_confidence = {c} must be in [0, 1)"
                              " (a mean letter posterior; 0 keeps every caption)")
    for key in ("confirm_chosen_on", "caption_confidence_chosen_on", "rearm_chosen_on"):
        if key in thr:
            _require(thr, key, dict, "thresholds.")


def _check_per_label(thr: Mapping[str, Any], key: str, types: type | tuple[type, ...],
                     minimum: float, names: set[str], expected: str) -> None:
    """``thresholds.<key>``: a value of ``types`` >= ``minimum`` for every label, or an object
    of such values keyed by known labels."""
    if key not in thr:
        return
    value = _require(thr, key, (*(types if isinstance(types, tuple) else (types,)), dict),
                     "thresholds.")
    items = value.items() if isinstance(value, dict) else [("", value)]
    for label, v in items:
        where = f"thresholds.{key}{'.' + label if label else ''}"
        if isinstance(value, dict) and label not in names:
            raise BundleError(f"manifest: {where} names unknown label {label!r}; labels are"
                              f" {', '.join(sorted(names))}")
        if (isinstance(v, bool) or not isinstance(v, types) or not math.isfinite(v)
                or v < minimum):
            raise BundleError(f"manifest: {where} = {v!r} must be {expected}")


def describe_artifacts(artifacts: Iterable[Artifact]) -> list[str]:
    """One line per artifact for ``aim-edge info``."""
    return [f"{a.file:<32} {a.format:<6} {a.precision:<12} {a.size / 1e6:6.2f} MB  role={a.role}"
            for a in artifacts]
