#!/usr/bin/env bash
# Fine-tune one checkpoint with several training configs at once on a lent GPU machine: one
# process per config, all sharing the GPU (a 4 M-parameter model leaves most of it idle, and the
# batcher runs on the CPU, so three runs cost about what one does). The learning rate decays over
# the time budget (--lr-by-time), since the step rate of a lent machine is not known in advance.
#
#   PACK=/tmp/aim-pack OUT=/tmp/aim-ft export/finetune_on_gpu.sh INIT.npz MINUTES CONFIG.json...
#
# PACK holds the packed splits (python -m export.pack; *.npz, or *.npz.xz, unpacked here): every
# pack but dev.npz is trained on, dev.npz picks best.pt. OUT gets NAME-best.npz and NAME-last.npz
# per config (float16 weights, save_weights_npz) and logs.tgz (training logs and metrics.jsonl).
set -euo pipefail
export PYTHONUNBUFFERED=1
PACK=${PACK:-/tmp/aim-pack}
OUT=${OUT:-/tmp/aim-ft}
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
[ $# -ge 3 ] || { echo "usage: $0 INIT.npz MINUTES CONFIG.json..." >&2; exit 2; }
INIT=$1; MIN=$2; shift 2
mkdir -p "$OUT"
for f in "$PACK"/*.npz.xz; do [ -e "$f" ] && xz -d -f -T0 "$f"; done
[ -f "$PACK/dev.npz" ] || { echo "$PACK/dev.npz is missing (the pack that picks best.pt)" >&2; exit 2; }
mapfile -t train < <(ls "$PACK"/*.npz | grep -v '/dev\.npz$')
echo "train packs: ${train[*]}"
[ "$DEVICE" = cpu ] || nvidia-smi -L || true
"$PY" -c "import torch; print('torch', torch.__version__, torch.cuda.is_available())"
pids=()
for cfg in "$@"; do
  name=$(basename "$cfg" .json)
  "$PY" -m export.train --config "$cfg" --data "${train[@]}" --dev "$PACK/dev.npz" \
    --out "/tmp/ft-$name" --name "aim-student-$name" --init "$INIT" --minutes "$MIN" \
    --lr-by-time --device "$DEVICE" --threads 4 --ckpt-every 500 > "/tmp/ft-$name.log" 2>&1 &
  pids+=($!)
done
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
"$PY" - "$OUT" "$@" <<'PYEOF'
import sys
from pathlib import Path

from export.bundle import load_checkpoint, save_weights_npz

out = Path(sys.argv[1])
for cfg in sys.argv[2:]:
    name = Path(cfg).stem
    for which in ("best", "last"):
        pt = Path(f"/tmp/ft-{name}/{which}.pt")
        if pt.is_file():
            model, meta = load_checkpoint(pt)
            meta.pop("optimizer", None)
            save_weights_npz(model, out / f"{name}-{which}.npz", meta)
            print(f"{name}-{which}: step {meta.get('step')}, dev loss {meta.get('best')}")
PYEOF
for cfg in "$@"; do name=$(basename "$cfg" .json); tr '\r' '\n' < "/tmp/ft-$name.log" \
  | grep -v 'step/s\]$' | tail -5; done
tar czf "$OUT/logs.tgz" -C /tmp $(cd /tmp && ls -d ft-*.log ft-*/metrics.jsonl)
ls -la "$OUT"
exit "$failed"
