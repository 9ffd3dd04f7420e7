"""Markdown tables of an evaluation report (``benchmarks/results/eval.md``)."""

from __future__ import annotations

from typing import Any

ASR_NAMES = {
    "student_streaming": "aim-edge student, streaming captions (runtime)",
    "student_whole_utterance": "aim-edge student, each utterance alone",
    "student_plus_whisper_streaming": "aim-edge student + Whisper second pass, streaming",
    "whisper_onnx_int8_whole_utterance": "aim-edge Whisper tiny.en ONNX INT8, whole utterances",
    "faster_whisper": "peer: faster-whisper tiny.en (beam 5), whole utterances",
    "pocketsphinx": "peer: pocketsphinx 5.1.1 en-us, whole utterances",
}


def _f(x: Any, digits: int = 2, pct: bool = False) -> str:
    if x is None:
        return "–"
    if pct:
        return f"{100 * x:.1f} %"
    return f"{x:.{digits}f}"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out + [""]


def _asr(res: dict[str, Any]) -> list[str]:
    rows = []
    for key, r in res.items():
        rows.append([ASR_NAMES.get(key, key), _f(r["wer"], pct=True), _f(r["cer"], pct=True),
                     str(r["words"]), _f(r.get("rtf_cpu"), 3)])
    return _table(["system", "WER", "CER", "ref words", "CPU RTF"], rows)


def _events(ev: dict[str, Any]) -> list[str]:
    ours, yam = ev["aim_edge"], ev.get("yamnet")
    head = ["class", "n", "aim-edge P", "R", "F1", "delay med / p95 s"]
    if yam:
        head += ["YAMNet P", "R", "F1", "delay med / p95 s"]
    rows = []
    for label, o in ours["per_class"].items():
        n = o["tp"] + o["fn"]
        if n == 0 and o["fp"] == 0:
            continue
        d = o["delay_s"]
        row = [label, str(n), _f(o["precision"]), _f(o["recall"]), _f(o["f1"]),
               f"{_f(d['median'])} / {_f(d['p95'])}"]
        if yam:
            y = yam["per_class"].get(label)
            if y is None:
                row += ["no class", "", "", ""]
            else:
                yd = y["delay_s"]
                row += [_f(y["precision"]), _f(y["recall"]), _f(y["f1"]),
                        f"{_f(yd['median'])} / {_f(yd['p95'])}"]
        rows.append(row)
    d = ours["delay_s"]
    total = ["**macro F1 / all delays**", "", "", "", f"**{_f(ours['macro_f1'])}**",
             f"{_f(d['median'])} / {_f(d['p95'])}"]
    if yam:
        yd = yam["delay_s"]
        total += ["", "", f"**{_f(yam['macro_f1'])}**", f"{_f(yd['median'])} / {_f(yd['p95'])}"]
    rows.append(total)
    lines = _table(head, rows)
    if yam:
        lines.append(f"YAMNet thresholds: {yam['thresholds_from']}; CPU RTF "
                     f"{_f(yam['rtf_cpu'], 4)}. YAMNet's macro F1 is over the classes it has "
                     "(no `other_sound`).")
        lines.append("")
    return lines


def _proactive(p: dict[str, Any]) -> list[str]:
    hz = p["hazards"]
    rows = [[str(p["windows"]), str(p["hits"]), str(p["late"]), str(p["misses"]),
             str(p["false_alerts"]), _f(p["precision"]), _f(p["recall"]), f"**{_f(p['f1'])}**",
             _f(p["false_alerts_per_hour"], 1), f"{hz['missed']} of {hz['windows']}",
             f"{_f(p['delay_s']['median'])} / {_f(p['delay_s']['p95'])}"]]
    lines = _table(["windows", "on time", "late", "missed", "false alerts", "P", "R",
                    "proactive F1", "false alerts / h", "missed hazards",
                    "delay med / p95 s"], rows)
    by = p["by_instruction"]
    if by:
        rows = [[k, str(v["windows"]), str(v["hits"]), str(v["late"]), str(v["misses"]),
                 str(v["false_alerts"]), _f(v["quiet_s"] / 3600, 3),
                 _f(v["false_alerts_per_hour"], 1)] for k, v in sorted(by.items())]
        lines += ["Instruction-following cases (by the instruction in force):", ""]
        lines += _table(["instruction intent", "windows", "on time", "late", "missed",
                         "false alerts", "no-response h", "false alerts / h"], rows)
    if p["by_kind"]:
        rows = [[k, str(v["windows"]), str(v["hits"]), str(v["late"]), str(v["misses"])]
                for k, v in sorted(p["by_kind"].items())]
        lines += _table(["response kind", "windows", "on time", "late", "missed"], rows)
    src = p.get("false_alerts_by_source") or {}
    if src:
        lines += ["False alerts by what said them (`alert/<why allowed>/<label>`, "
                  "`answer/<intent>/<source>`): "
                  + ", ".join(f"{k} {v}" for k, v in src.items()) + ".", ""]
    return lines


def _speech(sa: dict[str, Any]) -> list[str]:
    names = {"aim_edge_captions": "aim-edge (runtime caption spans)",
             "silero_vad": "peer: silero-vad 6.2.3 (p >= 0.5)"}
    rows = [[names.get(k, k), _f(v["precision"]), _f(v["recall"]), _f(v["f1"]),
             _f(v.get("rtf_cpu"), 4)] for k, v in sa.items() if v]
    return _table(["system", "P", "R", "F1 (10 ms frames)", "CPU RTF"], rows)


def _cmp(ours_better_if_larger: float, other: float) -> str:
    """"leads" / "trails" / "ties with": the first argument is the one larger-is-better."""
    if abs(ours_better_if_larger - other) < 1e-9:
        return "ties with"
    return "leads" if ours_better_if_larger > other else "trails"


def verdicts(rep: dict[str, Any]) -> list[str]:
    """Where aim-edge leads and trails its peers, one line per comparison, from the numbers."""
    lines = []
    for name, r in rep["results"].items():
        asr = r.get("asr", {})
        s, w = asr.get("student_streaming"), asr.get("student_whole_utterance")
        if s and w:
            lines.append(f"- {name}: streaming vs whole-utterance captions of the student: WER "
                         f"{_f(s['wer'], pct=True)} vs {_f(w['wer'], pct=True)}, CER "
                         f"{_f(s['cer'], pct=True)} vs {_f(w['cer'], pct=True)}.")
        ours = asr.get("whisper_onnx_int8_whole_utterance")
        for peer in ("faster_whisper", "pocketsphinx"):
            if peer in asr:
                best = ours or s
                tag = "Whisper ONNX second pass" if ours else "student"
                lead = _cmp(asr[peer]["wer"], best["wer"])
                lines.append(f"- {name}: aim-edge {tag} {lead} {peer} on WER "
                             f"({_f(best['wer'], pct=True)} vs {_f(asr[peer]['wer'], pct=True)});"
                             f" CPU RTF {_f(best.get('rtf_cpu'), 3)} vs "
                             f"{_f(asr[peer].get('rtf_cpu'), 3)}.")
        ev = r.get("events", {})
        if "yamnet" in ev:
            o, y = ev["aim_edge"], ev["yamnet"]
            common = [k for k in y["per_class"] if o["per_class"][k]["tp"] + o["per_class"][k]
                      ["fn"] > 0]
            of = sum(o["per_class"][k]["f1"] for k in common) / max(1, len(common))
            yf = sum(y["per_class"][k]["f1"] for k in common) / max(1, len(common))
            lead = _cmp(of, yf)
            lines.append(f"- {name}: events, macro F1 over the {len(common)} classes both "
                         f"cover: aim-edge {lead} YAMNet ({_f(of)} vs {_f(yf)}); median delay "
                         f"{_f(o['delay_s']['median'])} s vs {_f(y['delay_s']['median'])} s.")
        sa = r.get("speech_activity", {})
        if sa.get("silero_vad") and sa.get("aim_edge_captions"):
            a, b = sa["aim_edge_captions"]["f1"], sa["silero_vad"]["f1"]
            lines.append(f"- {name}: speech activity F1: aim-edge {_cmp(a, b)}"
                         f" silero-vad ({_f(a)} vs {_f(b)}).")
        p = r.get("proactive")
        if p:
            lines.append(f"- {name}: proactive F1 {_f(p['f1'])}, "
                         f"{_f(p['false_alerts_per_hour'], 1)} false alerts/h, "
                         f"{p['hazards']['missed']} of {p['hazards']['windows']} hazards missed"
                         " (no peer makes speak-now decisions).")
        p2 = r.get("proactive_second_pass")
        if p and p2:
            lines.append(f"- {name}: with the Whisper second pass, proactive F1 "
                         f"{_f(p2['f1'])} ({_f(p['f1'])} without), "
                         f"{_f(p2['false_alerts_per_hour'], 1)} false alerts/h, "
                         f"{p2['hazards']['missed']} of {p2['hazards']['windows']} hazards "
                         "missed.")
    return lines


def markdown(rep: dict[str, Any]) -> str:
    env = rep["environment"]
    out = ["# aim-edge evaluation: the runtime in streaming mode, beside real peers", "",
           f"Command: `{rep['command']}`", "",
           f"Bundle: {rep['bundle']['bundle']} — backend {rep['bundle']['backend']}; "
           f"second pass: {rep['second_pass'] or 'none'}.", "",
           f"Machine: {env['cpu_model']} x{env['cpu_count']}, {env['platform']}, python "
           f"{env['python']}, numpy {env['numpy']}. Versions: "
           + ", ".join(f"{k} {v}" for k, v in rep["versions"].items() if v) + ".", ""]
    if rep["peers_unavailable"]:
        out += ["Peers not run: " + "; ".join(f"{k} ({v})" for k, v in
                                            rep["peers_unavailable"].items()) + ".", ""]
    for name, r in rep["results"].items():
        out += [f"## Set `{name}`", "",
                f"{r['scenes']} scene(s), {r['audio_s'] / 60:.1f} min, "
                f"{r['speech_segments']} speech segments, {r['event_count']} events, "
                f"{r['response_windows']} response windows. Source: {r['source']}. Runtime CPU "
                f"RTF {_f(r['runtime']['rtf_cpu'], 4)} (model + policy + features, one thread).",
                "", "### ASR", ""]
        out += _asr(r["asr"])
        if "events" in r:
            out += ["### Sound events", ""] + _events(r["events"])
        out += ["### Proactive behaviour (what the runtime said)", ""]
        out += _proactive(r["proactive"])
        if "proactive_second_pass" in r:
            out += ["With the Whisper second pass (final captions, wake phrases and spoken "
                    "instructions from Whisper's text; `--asr` or a bundle's `asr` component):",
                    ""] + _proactive(r["proactive_second_pass"])
        out += ["### Speech activity", ""] + _speech(r["speech_activity"])
    out += ["## Where aim-edge leads and trails", ""] + verdicts(rep) + [""]
    return "\n".join(out)
