"""`python -m export` lists the export-stage commands."""

print("""export-stage commands (run from a checkout):
  python -m export.data build ...   generate labelled streaming scenes
  python -m export.bundle ...       checkpoint -> runtime bundle (ONNX fp32 / int8)
  python -m export.confirm ...      per-label alert confirmation, chosen through the runtime""")
