"""Run one profile configuration in a fresh process (used by the sweep).

    python -m aim_edge.profile.worker SPEC_JSON OUT_JSON

``SPEC_JSON`` is a :class:`~aim_edge.profile.measure.RunSpec` as JSON text; the result of
:func:`~aim_edge.profile.measure.measure` is written to ``OUT_JSON``. A known failure (a
missing backend, an absent artifact, a bad file: any ``AimEdgeError``) is written as
``{"error": message, "kind": class name}`` with exit status 0, so the sweep can report it in
its table; anything else prints its traceback on stderr, writes ``{"crash": "Type: first line
of the message"}`` and exits 1, so the sweep names the exception rather than a stray last
line of stderr.
"""

from __future__ import annotations

import time

_T0 = time.perf_counter_ns()  # before the runtime is imported: the import is cold start

import json  # noqa: E402
import sys  # noqa: E402


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m aim_edge.profile.worker SPEC_JSON OUT_JSON", file=sys.stderr)
        return 2
    import onnxruntime  # noqa: F401  - part of the cold start we report

    from ..errors import AimEdgeError
    from .measure import RunSpec, measure

    import_ms = (time.perf_counter_ns() - _T0) / 1e6
    spec = RunSpec.from_dict(json.loads(argv[0]))
    status = 0
    try:
        result = measure(spec, import_ms=import_ms)
    except AimEdgeError as exc:
        result = {"error": str(exc), "kind": type(exc).__name__}
    except Exception as exc:  # a bug or a backend's own error: name it, keep the traceback
        import traceback

        traceback.print_exc(file=sys.stderr)
        first = (str(exc).strip().splitlines() or [""])[0]
        result = {"crash": f"{type(exc).__name__}: {first}".rstrip(": ")}
        status = 1
    with open(argv[1], "w", encoding="utf-8") as f:
        json.dump(result, f)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
