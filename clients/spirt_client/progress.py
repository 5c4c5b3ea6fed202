"""A progress bar of a job's rounds (tqdm.auto: a widget in a notebook
with ipywidgets, text elsewhere), fed round events: round of total, loss,
accuracy and the round's participants."""

from __future__ import annotations

import warnings
from typing import IO, Any

from spirt_client.results import RoundEvent


class RoundBar:
    def __init__(self, *, file: IO[str] | None = None, description: str = "") -> None:
        self._file = file
        self._description = description
        self._bar: Any = None
        # The last evaluation's accuracy (most rounds have none) and the last
        # round's peers (the job's end has none): shown until there are new ones.
        self._accuracy: float | None = None
        self._peers = 0

    def update(self, event: RoundEvent) -> None:
        if self._bar is None:
            tqdm = _auto_tqdm()
            self._bar = tqdm(total=event.total_rounds or None, unit="round", desc=self._description or None,
                             file=self._file, dynamic_ncols=True)  # fmt: skip
        self._accuracy = event.accuracy if event.accuracy is not None else self._accuracy
        self._peers = len(event.participants) or self._peers
        self._bar.n = event.round
        self._bar.set_postfix(postfix(event, self._accuracy, self._peers), refresh=True)
        if event.state.ended:
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _auto_tqdm() -> type:
    """tqdm.auto's bar class. In a notebook without ipywidgets, tqdm.auto
    falls back to text after warning "IProgress not found. Please update
    jupyter and ipywidgets": advice for a widget nobody asked for, shown
    above a bar that works; that one warning is left out."""
    from tqdm import TqdmWarning

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found", category=TqdmWarning)
        from tqdm.auto import tqdm
    return tqdm


def postfix(event: RoundEvent, accuracy: float | None, peers: int) -> dict[str, Any]:
    post: dict[str, Any] = {"loss": "-" if event.loss is None else f"{event.loss:.4f}"}
    if accuracy is not None:
        post["acc"] = f"{accuracy:.3f}"
    if peers:
        post["peers"] = peers
    if event.retried or event.dropped:
        post["retried"], post["dropped"] = event.retried, event.dropped
    return post
