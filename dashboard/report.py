"""The session report as PDF (fpdf2, plots drawn with matplotlib): who and what, consent state, task scores beside
the clinician's ratings, the continuous score over time, kinematics per task, quality, and the model versions.
"""

from __future__ import annotations

import datetime as dt
import io
import math
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from fpdf import FPDF

from common.messages import Score
from common.protocols import get_protocol

KINEMATIC_GROUPS = (("range of motion", "rom"), ("asymmetry", "asym"), ("blink rate", "blink"))


def _text(value: object) -> str:
    """Text the PDF's core font can draw (Latin-1)."""
    return str(value).encode("latin-1", errors="replace").decode("latin-1")


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if ts else "-"


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _png(fig: Any) -> io.BytesIO:
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=130, bbox_inches="tight")
    plt.close(fig)
    out.seek(0)
    return out


def score_plot(
    windows: Sequence[Score],
    task_scores: Sequence[dict[str, Any]],
    ratings: Sequence[dict[str, Any]],
    scale: tuple[float, float],
) -> io.BytesIO:
    """Continuous scores (line), task scores (dots) and clinician ratings (crosses) over session time."""
    fig, ax = plt.subplots(figsize=(7.5, 2.8))
    # withheld windows are gaps in the line, not joined over
    live = [(w.ts, math.nan if w.score is None else w.score) for w in windows if w.kind == "window"]
    t0 = min([w.ts for w in windows] + [s["ts"] for s in task_scores] + [math.inf])
    t0 = 0.0 if not math.isfinite(t0) else t0
    if live:
        ax.plot([t - t0 for t, _ in live], [v for _, v in live], lw=1.2, color="#3b6ea8", label="continuous")
    scored = [s for s in task_scores if s["score"] is not None]
    if scored:
        ax.scatter(
            [s["ts"] - t0 for s in scored], [s["score"] for s in scored], color="#c0392b", zorder=3, label="task score"
        )
        for s in scored:
            ax.annotate(
                s["task"],
                (s["ts"] - t0, s["score"]),
                textcoords="offset points",
                xytext=(0, 6),
                ha="center",
                fontsize=7,
            )
    by_task = {(s["task"], s["rep"]): s["ts"] for s in task_scores}
    rated = [(by_task[(r["task"], r["rep"])], r["value"]) for r in ratings if (r["task"], r["rep"]) in by_task]
    if rated:
        ax.scatter(
            [t - t0 for t, _ in rated],
            [v for _, v in rated],
            marker="x",
            color="#27ae60",
            s=50,
            zorder=4,
            label="clinician",
        )
    ax.set_ylim(scale[0] - 0.2, scale[1] + 0.2)
    ax.set_xlabel("seconds into the session")
    ax.set_ylabel("score (higher = worse)")
    ax.grid(alpha=0.3)
    if live or scored or rated:
        ax.legend(loc="upper right", fontsize=7)
    else:
        ax.text(0.5, 0.5, "no scores in this session", transform=ax.transAxes, ha="center", color="#777")
    return _png(fig)


def kinematics_plot(task_scores: Sequence[dict[str, Any]]) -> io.BytesIO | None:
    """One panel per kinematic group: each task's values as bars."""
    panels = []
    for title, prefix in KINEMATIC_GROUPS:
        values: dict[str, dict[str, float]] = {}
        for s in task_scores:
            for name, v in s["kinematics"].items():
                if prefix in name and math.isfinite(v):
                    values.setdefault(name, {})[f"{s['task']}#{s['rep']}"] = v
        if values:
            panels.append((title, values))
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(7.5, 2.6), squeeze=False)
    for ax, (title, values) in zip(axes[0], panels, strict=True):
        names = sorted(values)
        tasks = sorted({t for v in values.values() for t in v})
        width = min(0.3, 0.8 / max(1, len(names)))
        for i, name in enumerate(names):
            ax.bar(
                [j + i * width for j in range(len(tasks))], [values[name].get(t, 0.0) for t in tasks], width, label=name
            )
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(tasks))], tasks, rotation=45, ha="right", fontsize=6)
        ax.set_title(title, fontsize=8)
        ax.tick_params(axis="y", labelsize=6)
        ax.legend(fontsize=5)
    return _png(fig)


class _Report(FPDF):
    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("helvetica", size=7)
        self.set_text_color(120)
        self.cell(0, 5, _text(f"feqa session report - page {self.page_no()}"), align="C")


def _table(pdf: FPDF, header: Sequence[str], rows: Sequence[Sequence[str]], widths: Sequence[float]) -> None:
    pdf.set_font("helvetica", "B", 8)
    pdf.set_fill_color(230, 236, 243)
    for text, w in zip(header, widths, strict=True):
        pdf.cell(w, 6, _text(text), border=1, fill=True)
    pdf.ln()
    pdf.set_font("helvetica", size=8)
    for row in rows:
        for text, w in zip(row, widths, strict=True):
            pdf.cell(w, 5.5, _text(text)[: int(w / 1.6)], border=1)
        pdf.ln()


def session_pdf(detail: dict[str, Any], windows: Sequence[Score]) -> bytes:
    """The report of one session from :func:`dashboard.sessions_api.session_detail` and its window scores."""
    session, patient = detail["session"], detail["patient"] or {}
    protocol = get_protocol(session["protocol"])
    scores, ratings = detail["task_scores"], detail["ratings"]
    latest: dict[tuple[str, int], dict[str, Any]] = {}
    for r in ratings:
        latest[(r["task"], r["rep"])] = r

    pdf = _Report(format="A4")
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()
    pdf.set_font("helvetica", "B", 16)
    pdf.cell(0, 10, "Session report", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("helvetica", size=9)
    lines = [
        f"Patient: {patient.get('display_name', '-')}   record no. {patient.get('mrn', '-')}   "
        f"ref {patient.get('ref', '-')}",
        f"Session {session['sid']}   protocol: {protocol.title}   scale: {protocol.scale.source} "
        f"({protocol.scale.label}, higher is worse)",
        f"Created {_when(session['created_ts'])}   started {_when(session['started_ts'])}   "
        f"ended {_when(session['ended_ts'])}   state: {session['state']} {session['end_reason']}",
        "Consent: " + ", ".join(f"{k.replace('_', ' ')} {'yes' if v else 'no'}" for k, v in session["consent"].items()),
    ]
    for line in lines:
        pdf.multi_cell(0, 5, _text(line), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)

    pdf.set_font("helvetica", "B", 11)
    pdf.cell(0, 7, "Task scores and clinician ratings", new_x="LMARGIN", new_y="NEXT")
    rows = []
    for s in scores:
        r = latest.get((s["task"], s["rep"]))
        rows.append(
            [
                s["task"],
                str(s["rep"]),
                _num(s["score"]),
                s["withheld"] or "",
                _num(r["value"], 1) if r else "-",
                (r["by"] if r else ""),
                (r["note"] if r else ""),
            ]
        )
    if rows:
        _table(
            pdf,
            ["task", "rep", "model", "withheld", "clinician", "rated by", "note"],
            rows,
            [30, 10, 16, 34, 18, 24, 58],
        )
    else:
        pdf.set_font("helvetica", "I", 9)
        pdf.cell(0, 6, "No task was scored in this session.", new_x="LMARGIN", new_y="NEXT")
    notes = [r for r in latest.values() if r["note"]]
    if notes:
        pdf.set_font("helvetica", size=8)
        for r in notes:
            line = f"{r['task']} #{r['rep'] + 1}, {r['by']} ({_when(r['ts'])}): {r['note']}"
            pdf.multi_cell(0, 4.5, _text(line), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)

    pdf.set_font("helvetica", "B", 11)
    pdf.cell(0, 7, "Score over the session", new_x="LMARGIN", new_y="NEXT")
    pdf.image(score_plot(windows, scores, ratings, (protocol.scale.min, protocol.scale.max)), w=180)
    kin = kinematics_plot(scores)
    if kin is not None:
        pdf.set_font("helvetica", "B", 11)
        pdf.cell(0, 7, "Kinematics per task", new_x="LMARGIN", new_y="NEXT")
        pdf.image(kin, w=180)

    pdf.set_font("helvetica", "B", 11)
    pdf.cell(0, 7, "Quality and models", new_x="LMARGIN", new_y="NEXT")
    qrows = []
    for s in scores:
        q = ", ".join(f"{k} {_num(v)}" for k, v in sorted(s["quality"].items())[:5])
        qrows.append([s["task"], str(s["rep"]), s["model"] or "-", s["version"] or "-", q])
    if qrows:
        _table(pdf, ["task", "rep", "model", "version", "quality"], qrows, [30, 10, 50, 20, 80])
    withheld = sum(1 for w in windows if w.kind == "window" and w.withheld)
    total = sum(1 for w in windows if w.kind == "window")
    pdf.set_font("helvetica", size=8)
    pdf.ln(1)
    pdf.multi_cell(
        0,
        4.5,
        _text(
            f"Continuous windows: {total} ({withheld} withheld by the quality gate or consent). "
            f"Report made {_when(dt.datetime.now(dt.UTC).timestamp())}."
        ),
    )
    return bytes(pdf.output())
