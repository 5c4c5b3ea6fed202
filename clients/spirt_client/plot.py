"""A job's rounds on one page (matplotlib, drawn by the Agg backend, no
pyplot: it changes no global state and needs no display): loss and
accuracy, participants, the time of each phase, and the bytes exchanged,
all per round."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from spirt_client.errors import require
from spirt_client.history import PHASES
from spirt_client.results import JobStatus, RoundEvent

FIGURE_SIZE_IN = (12.0, 8.0)
DPI = 100
# The phase chart's axis ends at this multiple of this quantile of the rounds' times.
OUTLIER_QUANTILE = 0.9
OUTLIER_HEADROOM = 2.0
# Up to this many rounds, the phase chart's bars have gaps between them.
GAPPED_BARS = 50
# The slowest rounds are labelled with their time, at most this many, each
# at least this fraction of the axis from the next (labels must not overlap).
MAX_LABELS = 5
LABEL_GAP = 0.12
# Up to this many evaluations, each is marked on the accuracy line.
MARKED_EVALUATIONS = 30
# A loss that falls by this factor or more is drawn on a log scale (else
# the first rounds' loss flattens all the others').
LOG_LOSS_SPAN = 100.0
# A palette that stays apart for readers with the common colour blindnesses (Okabe and Ito).
COLOURS = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")


def plot_job(status: JobStatus, events: Sequence[RoundEvent], output: str | Path | None = None):
    """The Figure of the job's rounds; saved as PNG (or any format its
    suffix names) to output when given."""
    require("matplotlib", "plotting a job")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rounds = [e for e in events if not (e.state.ended and not e.phase_s)]  # the end repeats the last round
    figure = Figure(figsize=FIGURE_SIZE_IN, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    figure.suptitle(_title(status, rounds), fontsize=13)
    for ax, (title, draw) in zip(figure.subplots(2, 2).flat, PANELS):
        ax.set_title(title)
        ax.set_xlabel("round")
        if rounds:
            draw(ax, rounds)
        else:
            ax.set_xticks([])
            ax.set_yticks([])
            _empty(ax, "no round done yet")
    if output is not None:
        figure.savefig(output)
    return figure


def _title(status: JobStatus, rounds: Sequence[RoundEvent]) -> str:
    what = f"{status.model} on {status.dataset}" if status.model else "?"
    test = f", test accuracy {status.test_accuracy:.3f}" if status.test_accuracy is not None else ""
    shown = f"rounds {rounds[0].round}-{rounds[-1].round}" if rounds else "no rounds yet"
    return f"job {status.job_id} ({what}): {status.state.value}, round {status.round}/{status.total_rounds}{test} ({shown})"


def _loss_and_accuracy(ax, rounds: Sequence[RoundEvent]) -> None:
    ax.set_ylabel("training loss")
    points = [(e.round, e.loss) for e in rounds if e.loss is not None]
    lines = ax.plot(*_columns(points), color=COLOURS[0], label="training loss")
    losses = [loss for _, loss in points]
    if losses and min(losses) > 0 and max(losses) >= LOG_LOSS_SPAN * min(losses):
        ax.set_yscale("log")
        ax.set_ylabel("training loss (log scale)")
    right = ax.twinx()
    right.set_ylabel("validation accuracy")
    right.set_ylim(0.0, 1.0)
    # Each event repeats the last evaluation's accuracy: mark the rounds that evaluated.
    evaluated = [(e.round, e.accuracy) for e in rounds if e.accuracy is not None and "evaluate" in e.phase_s]
    evaluated = evaluated or [(e.round, e.accuracy) for e in rounds if e.accuracy is not None]
    marker = "o" if len(evaluated) <= MARKED_EVALUATIONS else None
    lines += right.plot(*_columns(evaluated), color=COLOURS[1], marker=marker, label="validation accuracy")
    ax.legend(lines, [line.get_label() for line in lines], loc="center right")


def _participants(ax, rounds: Sequence[RoundEvent]) -> None:
    ax.set_ylabel("peers")
    xs = [e.round for e in rounds]
    ax.step(xs, [len(e.participants) for e in rounds], where="mid", color=COLOURS[2], label="took part")
    ax.step(xs, [len(e.excluded) for e in rounds], where="mid", color=COLOURS[3], linestyle="--",
            label="left out")  # fmt: skip
    ax.set_ylim(0, max([len(e.participants) for e in rounds], default=0) + 1)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.legend(loc="lower right")


def _phases(ax, rounds: Sequence[RoundEvent]) -> None:
    from matplotlib.collections import PolyCollection

    ax.set_ylabel("seconds")
    names = [p for p in PHASES if any(p in e.phase_s for e in rounds)]
    names += sorted({p for e in rounds for p in e.phase_s} - set(names))
    xs = [e.round for e in rounds]
    bottom = [0.0] * len(rounds)
    half = (0.9 if len(rounds) <= GAPPED_BARS else 1.0) / 2  # thin gaps between many bars only flicker
    # Stacked bars, a collection of rectangles per phase: one artist each
    # (ax.bar's patch per bar took 10-25 s to draw a thousand rounds).
    for i, name in enumerate(names):
        heights = [e.phase_s.get(name, 0.0) for e in rounds]
        boxes = [((x - half, b), (x + half, b), (x + half, b + h), (x - half, b + h))
                 for x, b, h in zip(xs, bottom, heights)]  # fmt: skip
        ax.add_collection(PolyCollection(boxes, facecolors=COLOURS[i % len(COLOURS)], linewidths=0, label=name))
        bottom = [b + h for b, h in zip(bottom, heights)]
    ax.autoscale_view()
    ax.set_ylim(bottom=0)
    # Beside the chart, not on it: its top holds the slowest rounds' labels.
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    _clip_outliers(ax, xs, bottom)


def _clip_outliers(ax, xs: Sequence[int], totals: Sequence[float]) -> None:
    """A round far slower than the rest (the first: the workers start) would
    flatten every other bar: the axis stops above the typical round and such
    a bar says its time at the top (the slowest ones, labels apart)."""
    typical = sorted(totals)[int(OUTLIER_QUANTILE * (len(totals) - 1))]
    top = typical * OUTLIER_HEADROOM
    if top <= 0 or max(totals) <= top:
        return
    ax.set_ylim(0, top)
    gap = LABEL_GAP * (max(xs) - min(xs))
    labelled: list[int] = []
    for total, x in sorted(zip(totals, xs), reverse=True):
        if total <= top or len(labelled) == MAX_LABELS:
            break
        if all(abs(x - other) > gap for other in labelled):
            labelled.append(x)
            ax.annotate(f"{total:.1f} s", (x, top), xytext=(0, -3), textcoords="offset points", ha="center",
                        va="top", fontsize="small", bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "0.5"})  # fmt: skip


def _bytes(ax, rounds: Sequence[RoundEvent]) -> None:
    scale, unit = _byte_unit(max([max(e.sent_bytes, e.received_bytes) for e in rounds], default=0))
    ax.set_ylabel(unit)
    xs = [e.round for e in rounds]
    ax.plot(xs, [e.sent_bytes / scale for e in rounds], color=COLOURS[0], label="sent")
    ax.plot(xs, [e.received_bytes / scale for e in rounds], color=COLOURS[3], linestyle="--", label="received")
    ax.set_ylim(bottom=0)
    ax.legend(loc="lower right")
    if not any(e.sent_bytes or e.received_bytes for e in rounds):
        ax.set_yticks([])
        _empty(ax, "nothing exchanged: one peer trained alone")


PANELS = (
    ("Training loss and validation accuracy", _loss_and_accuracy),
    ("Participants per round", _participants),
    ("Time of each phase per round", _phases),
    ("Bytes exchanged with the other peers per round", _bytes),
)


def _byte_unit(largest: int) -> tuple[float, str]:
    for scale, unit in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if largest >= scale:
            return float(scale), unit
    return 1.0, "bytes"


def _columns(points: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    return [x for x, _ in points], [y for _, y in points]


def _empty(ax, words: str) -> None:
    ax.text(0.5, 0.5, words, transform=ax.transAxes, ha="center", va="center", color="0.4")
