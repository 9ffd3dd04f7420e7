"""Streaming-native training and evaluation data for aim-edge.

``python -m export.data build --out DIR --hours H --seed S --split train|dev|test`` writes long
labelled household scenes (speech from several TTS engines, real and synthesised sound events,
instructions, noise, rooms) with JSON-lines manifests; see ``export/data/README.md``.

Modules: :mod:`.labels` (label sets), :mod:`.text` (sentences, instructions),
:mod:`.speech` (TTS), :mod:`.sources` (real recordings), :mod:`.hazards` (synthesised events),
:mod:`.background` (noise, rooms, channel), :mod:`.scene` (one stream), :mod:`.cli` (the build).
"""
