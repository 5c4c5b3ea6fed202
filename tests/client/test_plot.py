"""The plot's choices that a person reading it relies on, on rounds made up
here: an empty page says so; a slow first round does not flatten the rest."""

from __future__ import annotations

from spirt_client.plot import plot_job
from spirt_client.results import JobState, JobStatus, RoundEvent

ROUNDS = 100
TYPICAL_S = {"compute": 0.02, "aggregate": 0.001, "exchange": 0.01, "update": 0.002}


def status(state: JobState, done: int) -> JobStatus:
    return JobStatus(job_id="j0", name="", state=state, round=done, total_rounds=ROUNDS, loss=None, accuracy=None,
                     val_loss=None, test_accuracy=None, digest="", error="", elapsed_s=0.0, model="mlp",
                     dataset="digits", minibatches_retried=0, minibatches_dropped=0, owner="client",
                     participants=(), participant_digests={})  # fmt: skip


def event(r: int, phase_s: dict[str, float]) -> RoundEvent:
    return RoundEvent(job_id="j0", round=r, total_rounds=ROUNDS, state=JobState.RUNNING, loss=1.0 / r,
                      accuracy=0.5 if r >= 10 else None, val_loss=None, phase_s=phase_s, minibatches=4, retried=0,
                      dropped=0, message="", participants=("node1", "node2"), excluded={}, sent_bytes=3 << 20,
                      received_bytes=3 << 20, digest="", participant_digests={})  # fmt: skip


def test_a_job_with_no_round_yet_is_a_page_that_says_so(tmp_path):
    figure = plot_job(status(JobState.QUEUED, 0), [], tmp_path / "empty.png")
    assert (tmp_path / "empty.png").stat().st_size > 0
    words = [t.get_text() for ax in figure.axes for t in ax.texts]
    assert words == ["no round done yet"] * 4
    assert "queued, round 0/100 (no rounds yet)" in figure.get_suptitle()


def test_a_slow_first_round_is_written_on_its_bar_and_does_not_flatten_the_others():
    events = [event(1, {**TYPICAL_S, "compute": 4.8})] + [event(r, TYPICAL_S) for r in range(2, ROUNDS + 1)]
    figure = plot_job(status(JobState.RUNNING, ROUNDS), events)
    loss, peers, phases, traffic = figure.axes[:4]
    assert phases.get_ylim()[1] < 0.1 and [t.get_text() for t in phases.texts] == ["4.8 s"]
    assert [t.get_text() for t in phases.get_legend().get_texts()] == ["compute", "aggregate", "exchange", "update"]
    assert traffic.get_ylabel() == "MiB" and peers.get_ylim() == (0, 3)
    titles = [ax.get_title() for ax in (loss, peers, phases, traffic)]
    assert titles == ["Training loss and validation accuracy", "Participants per round", "Time of each phase per round",
                      "Bytes exchanged with the other peers per round"]  # fmt: skip


def test_slow_rounds_close_together_get_one_label_the_slowest_and_the_legend_is_beside_the_chart():
    slow = {1: 4.8, 50: 3.2, 52: 10.3, 56: 0.5}  # 50, 52 and 56: within a label's width of each other
    events = [event(r, {**TYPICAL_S, "propose": slow.get(r, 0.0)}) for r in range(1, ROUNDS + 1)]
    phases = plot_job(status(JobState.RUNNING, ROUNDS), events).axes[2]
    assert sorted(t.get_text() for t in phases.texts) == ["10.3 s", "4.8 s"]
    assert phases.get_legend().get_bbox_to_anchor().x0 > phases.get_window_extent().x1 - 1  # labels under no legend


def test_a_long_job_has_its_loss_on_a_log_scale_and_its_evaluations_unmarked():
    events = [event(r, TYPICAL_S) for r in range(1, ROUNDS + 1)]  # the loss falls from 1 to 0.01, 91 evaluations
    loss = plot_job(status(JobState.RUNNING, ROUNDS), events).axes[0]
    assert loss.get_yscale() == "log" and loss.get_ylabel() == "training loss (log scale)"
    accuracy = [line for ax in plot_job(status(JobState.RUNNING, ROUNDS), events).axes for line in ax.lines
                if line.get_label() == "validation accuracy"]  # fmt: skip
    assert len(accuracy) == 1 and accuracy[0].get_marker() in (None, "None", "")
    short = plot_job(status(JobState.RUNNING, 20), events[:20]).axes[0]
    assert short.get_yscale() == "linear"  # 1 to 0.05


def test_a_thousand_rounds_of_phases_are_one_artist_per_phase_not_a_bar_each():
    """7,000 bars (1,000 rounds of 7 phases) took 10-25 s to draw on two cores; a collection each takes under 1."""
    rounds = 1000
    events = [event(r, {**TYPICAL_S, "evaluate": 0.01, "propose": 0.003, "agree": 0.001})
              for r in range(1, rounds + 1)]  # fmt: skip
    phases = plot_job(status(JobState.RUNNING, rounds), events).axes[2]
    assert len(phases.patches) == 0 and len(phases.collections) == 7
    assert phases.get_ylim()[0] == 0 and phases.get_xlim()[0] < 1 and phases.get_xlim()[1] > rounds
