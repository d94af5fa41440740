"""What crosses citizens goes through an exchange: the identity in one process, messages across shards.

A run is cut into contiguous citizen ranges ``[cuts[k], cuts[k+1])``; the loop of range ``k``
owns those citizens. A stage whose effect reaches another citizen (a contact's response, an
association record, a tie cut from the other side) calls :meth:`Exchange.send` with the
citizen it is about; the rows go to that citizen's owner. At a barrier (a ``yield`` in the
stage) the outbox is handed over and the rows addressed to this range come back in
:attr:`Exchange.inbox`, in a fixed order (sources in range order), so delivery is
deterministic.

With one range (a single-process run) the loop loops the outbox straight back at each
barrier: the same code path as a sharded run, with nothing leaving the process.
"""

from __future__ import annotations

import numpy as np

Inbox = dict[str, list[np.ndarray]]  # message kind -> row blocks (2-D int64: one row per column)
Outbox = dict[int, Inbox]  # destination range -> messages


class Exchange:
    """Routes rows to the owner of a citizen and counts what leaves this range."""

    def __init__(self, cuts: list[int], index: int = 0) -> None:
        self.cuts = [int(c) for c in cuts]
        self.index = index
        self.lo, self.hi = self.cuts[index], self.cuts[index + 1]
        self.outbox: Outbox = {}
        self.inbox: Inbox = {}
        self.sent = 0  # bytes sent to other ranges (exchange volume)
        self.sent_kind: dict[str, int] = {}  # rows sent to other ranges, by message kind

    @property
    def ranges(self) -> int:
        return len(self.cuts) - 1

    def owner(self, cit: np.ndarray) -> np.ndarray:
        return np.searchsorted(np.asarray(self.cuts[1:-1], dtype=np.int64), cit, side="right")

    def mine(self, cit: np.ndarray) -> np.ndarray:
        return (cit >= self.lo) & (cit < self.hi)

    def _put(self, dest: int, kind: str, rows: np.ndarray) -> None:
        self.outbox.setdefault(dest, {}).setdefault(kind, []).append(rows)
        if dest != self.index:
            self.sent += int(rows.nbytes)
            self.sent_kind[kind] = self.sent_kind.get(kind, 0) + int(rows.shape[1])

    def send(self, kind: str, cit: np.ndarray, *cols: np.ndarray) -> None:
        """Send rows ``(cit, *cols)`` to the owners of ``cit`` (own rows too: one code path)."""
        if cit.shape[0] == 0:
            return
        dest = self.owner(cit)
        for d in np.unique(dest).tolist():
            sel = dest == d
            self._put(int(d), kind, np.stack([cit[sel], *(c[sel] for c in cols)]).astype(np.int64))

    def send_to(self, dest: int, kind: str, rows: np.ndarray) -> None:
        """Send a block of rows to one range (for messages not addressed by citizen)."""
        self._put(dest, kind, rows)

    def received(self, kind: str) -> list[np.ndarray]:
        return self.inbox.get(kind, [])

    def collect(self) -> Outbox:
        """Hand over what was sent since the last barrier."""
        box, self.outbox = self.outbox, {}
        return box

    def deliver(self, inbox: Inbox) -> None:
        self.inbox = inbox

    def loopback(self) -> None:
        """One range: what was sent comes straight back (the identity exchange)."""
        box = self.collect()
        if set(box) - {self.index}:
            raise RuntimeError("a single-range exchange was asked to send to another range")
        self.inbox = box.get(self.index, {})

    def end_day(self) -> None:
        self.inbox = {}


def deliver(boxes: list[Outbox], k: int) -> Inbox:
    """The inbox of range ``k``: every source's rows for it, sources in range order."""
    inbox: Inbox = {}
    for box in boxes:
        for kind, arrays in box.get(k, {}).items():
            inbox.setdefault(kind, []).extend(arrays)
    return inbox
