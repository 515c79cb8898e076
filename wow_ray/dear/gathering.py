"""DeAR's forward half: the all-gathers that bring every rank's updated shard into the
parameters, started after the step in bucket order and waited for by the modules that need
them (see synchroniser.py for the whole iteration).

A base class of `DeAR`; `flush()` is public: everything complete, everywhere.
"""

from __future__ import annotations


class ParameterGathering:
    """The all-gathers of `DeAR` (which holds the buckets and the handles in flight)."""

    def _top_up_all_gathers(self, needed: int) -> None:
        """Start all-gathers in bucket order up to `needed` plus the configured lookahead."""
        lookahead = self.config.all_gather_lookahead
        limit = len(self._buckets) if lookahead is None else min(
            len(self._buckets), needed + 1 + lookahead)
        while self._ag_next < limit:
            bucket = self._buckets[self._ag_next]
            flat = self._spaces[bucket.space].params[bucket.start:bucket.stop]
            self._ag_inflight[self._ag_next] = self._comm.all_gather(flat)
            self._ag_next += 1

    def _wait_all_gather(self, index: int) -> None:
        if index >= self._ag_next and self._ag_next < len(self._buckets):
            self._top_up_all_gathers(index)
        handle = self._ag_inflight.pop(index, None)
        if handle is not None:
            handle.wait()
            self._top_up_all_gathers(index)

    def flush(self) -> None:
        """Wait until every rank's latest update is in this rank's parameters."""
        if self._ag_next < len(self._buckets):
            self._top_up_all_gathers(len(self._buckets))
        for index in sorted(self._ag_inflight):
            self._ag_inflight.pop(index).wait()

    synchronize = flush
