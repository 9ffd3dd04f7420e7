"""Real sound recordings from Debian sound packages, mapped to event labels, with licences.

:data:`RECORDING_RULES` maps files to event labels (first matching rule wins; a file no rule
matches is not used). Files that are speech (ALSA's channel names) or test signals are left
out on purpose: they would be mislabelled as events.

Every file's licence and copyright holder are read from ``/usr/share/doc/PKG/copyright``
(machine-readable DEP-5 stanzas, last match wins); gnome-audio's copyright file is free text,
so its per-file licences are transcribed in :data:`_GNOME_AUDIO`. Files whose licence is not
stated are usable for local data but not shippable.

Splits hold out whole files: per label, :func:`export.data.splits.stratified` puts about 15 %
of the files (at least one when a label has three or more) in test and as many in dev.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .splits import stratified

__all__ = ["RECORDING_RULES", "Recording", "list_recordings", "load_recording"]

SR = 16000
SOUNDS = "/usr/share/sounds"

#: (Debian package, glob under /usr/share/sounds, event label or None to exclude)
RECORDING_RULES: tuple[tuple[str, str, str | None], ...] = (
    # excluded: spoken channel names and test signals
    ("alsa-utils", "alsa/*", None),
    ("sound-theme-freedesktop", "freedesktop/stereo/audio-channel-*", None),
    ("sound-theme-freedesktop", "freedesktop/stereo/audio-test-signal.oga", None),
    # alarm clock / phone / bells
    ("sound-theme-freedesktop", "freedesktop/stereo/alarm-clock-elapsed.oga", "alarm_clock"),
    ("sound-theme-freedesktop", "freedesktop/stereo/phone-incoming-call.oga", "phone_ring"),
    ("oxygen-sounds", "Oxygen-Im-Phone-Ring.ogg", "phone_ring"),
    ("gnome-audio", "phone.wav", "phone_ring"),
    ("sound-theme-freedesktop", "freedesktop/stereo/bell.oga", "bell"),
    ("yaru-theme-sound", "Yaru/stereo/bell.oga", "bell"),
    # other sounds: music stings, clicks, shutters, paper, the ringback/busy tones
    ("sound-theme-freedesktop", "freedesktop/stereo/phone-outgoing-*", "other_sound"),
    ("sound-theme-freedesktop", "freedesktop/stereo/camera-shutter.oga", "other_sound"),
    ("sound-theme-freedesktop", "freedesktop/stereo/trash-empty.oga", "other_sound"),
    ("sound-theme-freedesktop", "freedesktop/stereo/audio-volume-change.oga", "other_sound"),
    ("sound-theme-freedesktop", "freedesktop/stereo/service-log*", "other_sound"),
    ("sound-theme-freedesktop", "freedesktop/stereo/*", "notification"),
    ("yaru-theme-sound", "Yaru/stereo/desktop-log*", "other_sound"),
    ("yaru-theme-sound", "Yaru/stereo/system-ready.oga", "other_sound"),
    ("yaru-theme-sound", "Yaru/stereo/trash-empty.oga", "other_sound"),
    ("yaru-theme-sound", "Yaru/stereo/audio-volume-change.oga", "other_sound"),
    ("yaru-theme-sound", "Yaru/stereo/*", "notification"),
    ("deepin-sound-theme", "deepin/stereo/camera-shutter.wav", "other_sound"),
    ("deepin-sound-theme", "deepin/stereo/screen-capture*", "other_sound"),
    ("deepin-sound-theme", "deepin/stereo/desktop-log*", "other_sound"),
    ("deepin-sound-theme", "deepin/stereo/system-shutdown.wav", "other_sound"),
    ("deepin-sound-theme", "deepin/stereo/trash-empty.wav", "other_sound"),
    ("deepin-sound-theme", "deepin/stereo/audio-volume-change.wav", "other_sound"),
    ("deepin-sound-theme", "deepin/stereo/*", "notification"),
    ("oxygen-sounds", "Oxygen-Sys-Log-*", "other_sound"),
    ("oxygen-sounds", "Oxygen-Window-*", "other_sound"),
    ("oxygen-sounds", "Oxygen-Sys-Trash-Emptied.ogg", "other_sound"),
    ("oxygen-sounds", "Oxygen-*", "notification"),
    ("gnome-audio", "startup3.wav", "other_sound"),
    ("gnome-audio", "shutdown1.wav", "other_sound"),
    ("gnome-audio", "card_shuffle.wav", "other_sound"),
    ("gnome-audio", "gtk-events/*", "other_sound"),
    ("gnome-audio", "panel/*", "other_sound"),
    ("gnome-audio", "login.wav", "other_sound"),
    ("gnome-audio", "logout.wav", "other_sound"),
    ("gnome-audio", "*.wav", "notification"),
    ("sound-icons", "sound-icons/prompt.wav", "notification"),
    ("sound-icons", "sound-icons/*.wav", "other_sound"),
)

# gnome-audio's copyright file is free text: transcribed here (file -> (licence, holder))
_GNOME_AUDIO = {
    "startup3.wav": ("CC-BY-SA-2.0", "Andreas Karlsson (Silvertheme)"),
    "shutdown1.wav": ("CC-BY-SA-2.0", "Andreas Karlsson (Silvertheme)"),
    "gtk-events/*": ("CC-BY-SA-2.0", "Martyn Clement (Cleanus-Gnome)"),
    "question.wav": ("CC-BY-3.0", "Ivica Ico Bukvic (Borealis)"),
    "generic.wav": ("CC-BY-3.0", "Ivica Ico Bukvic (Borealis)"),
    "error.wav": ("CC-BY-3.0", "Ivica Ico Bukvic (Borealis)"),
}

_FREE_LICENCE_PREFIXES = ("CC-BY", "CC0", "GPL", "LGPL", "BSD", "MIT", "Apache", "public")

_MAX_SECONDS = 8.0  # long music stings are cut (with a fade) to this


@dataclass(frozen=True)
class Recording:
    """One real recording and everything recorded about it in the manifest."""

    path: str
    package: str
    label: str
    licence: str
    copyright: str
    split: str

    @property
    def shippable(self) -> bool:
        return self.licence.startswith(_FREE_LICENCE_PREFIXES)


def _dep5_stanzas(package: str) -> list[dict[str, str]]:
    path = Path(f"/usr/share/doc/{package}/copyright")
    if not path.exists():
        return []
    stanzas, cur, key = [], {}, None
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            if cur:
                stanzas.append(cur)
            cur, key = {}, None
        elif line[0] in " \t":
            if key is not None and key != "License":  # keep the short licence name only
                cur[key] += " " + line.strip()
        elif ":" in line:
            key, _, val = line.partition(":")
            cur[key] = val.strip()
    if cur:
        stanzas.append(cur)
    return stanzas


def _licence_of(package: str, path: str) -> tuple[str, str]:
    rel = os.path.relpath(path, SOUNDS)
    if package == "gnome-audio":
        for pat, (lic, holder) in _GNOME_AUDIO.items():
            if fnmatch.fnmatch(rel, pat):
                return lic, holder
        return "unstated (file not listed in /usr/share/doc/gnome-audio/copyright)", "unknown"
    lic, holder = "unstated", "unknown"
    for st in _dep5_stanzas(package):
        files = st.get("Files")
        if not files or "License" not in st:
            continue
        for pat in files.split():
            if fnmatch.fnmatch(path, pat) or fnmatch.fnmatch(path, "*/" + pat):
                lic, holder = st["License"], st.get("Copyright", "unknown")
                break
    return lic, holder


def _package_installed(package: str) -> bool:
    return Path(f"/usr/share/doc/{package}").is_dir()


@functools.cache
def list_recordings() -> tuple[Recording, ...]:
    """Every usable recording installed on this machine, with label, licence and split."""
    found: list[tuple[str, str, str]] = []
    seen_real: set[str] = set()
    root = Path(SOUNDS)
    if not root.is_dir():
        return ()
    files = sorted(str(p) for p in root.rglob("*")
                   if p.suffix in (".wav", ".ogg", ".oga") and p.is_file())
    for f in files:
        real = os.path.realpath(f)
        if real in seen_real:  # themes symlink one file under several names
            continue
        seen_real.add(real)
        rel = os.path.relpath(f, SOUNDS)
        for package, pat, label in RECORDING_RULES:
            if fnmatch.fnmatch(rel, pat) and rel.count("/") == pat.count("/"):
                if label is not None and _package_installed(package):
                    found.append((f, package, label))
                break
    by_label: dict[str, list[str]] = {}
    for f, _, label in found:
        by_label.setdefault(label, []).append(f)
    split_of_file: dict[str, str] = {}
    for label, paths in by_label.items():
        split_of_file.update(stratified(f"recording:{label}", paths))
    out = []
    for f, package, label in found:
        lic, holder = _licence_of(package, f)
        out.append(Recording(f, package, label, lic, holder, split_of_file[f]))
    return tuple(out)


@functools.lru_cache(maxsize=256)
def load_recording(path: str) -> np.ndarray:
    """Decode a recording to float32 mono 16 kHz with sox; long files are cut to 8 s."""
    if shutil.which("sox") is None:
        raise FileNotFoundError("sox not found: apt-get install sox")
    res = subprocess.run(["sox", path, "-t", "f32", "-r", str(SR), "-c", "1", "-"],
                         capture_output=True, check=True)
    x = np.frombuffer(res.stdout, dtype="<f4").astype(np.float32)
    n = int(_MAX_SECONDS * SR)
    if x.size > n:
        x = x[:n].copy()
        fade = int(0.3 * SR)
        x[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    # trim near-silence at both ends so labels are tight
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak > 0:
        idx = np.flatnonzero(np.abs(x) > peak * 10 ** (-45 / 20))
        x = x[idx[0]: idx[-1] + 1]
    x.setflags(write=False)
    return x
