"""Looking after a response cache: where a results directory's cache is, its size and hit
rate (`db check`, `cache stats`, `report`), and pruning what no journal refers to."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import StorageError
from .cache import CacheStats, ResponseCache, cache_path


def find_cache(out_dir: Path, cache_dir: Path | None = None) -> Path | None:
    """The cache file a results directory uses: `cache_dir`'s, the one its run recorded, its own."""
    if cache_dir is not None:
        return cache_path(out_dir, cache_dir)
    from .transcripts import recorded_cache_path

    recorded = recorded_cache_path(out_dir)
    for path in (recorded, cache_path(out_dir)):
        if path is not None and path.exists():
            return path
    return None


def hit_rate(out_dir: Path) -> tuple[int, int]:
    """(requests answered from the cache, requests sent) over the journal of `out_dir`."""
    from ..types import TestResult
    from .storage import JOURNAL_FILE, iter_journal

    cached = sent = 0
    for entry in iter_journal(Path(out_dir) / JOURNAL_FILE):
        if isinstance(entry, TestResult):
            cached += entry.cached
            sent += entry.requests
    return cached, sent


@dataclass(slots=True)
class CacheReport:
    """What `db check`, `cache stats` and `report` say about a results directory's cache."""

    stats: CacheStats
    cached: int
    sent: int

    @property
    def hit_rate(self) -> float | None:
        total = self.cached + self.sent
        return self.cached / total if total else None

    def _rate(self) -> str:
        return "n/a" if self.hit_rate is None else f"{100 * self.hit_rate:.1f}%"

    def line(self) -> str:
        """One short line (fits any report width)."""
        return (
            f"cache: {self.stats.entries} entries, {self.stats.bytes / 1e6:.2f} MB, hit rate "
            f"{self._rate()} ({self.cached} of {self.cached + self.sent} requests)"
        )

    def lines(self) -> list[str]:
        return [
            f"cache: {self.stats.path}",
            f"  entries: {self.stats.entries}",
            f"  size: {self.stats.bytes / 1e6:.2f} MB",
            f"  hit rate: {self._rate()} ({self.cached} requests answered from the cache, "
            f"{self.sent} sent, over the journal)",
        ]


def cache_report(out_dir: Path, cache_dir: Path | None = None) -> CacheReport | None:
    """Size, entries and hit rate of the cache `out_dir` uses; None when it has none."""
    path = find_cache(out_dir, cache_dir)
    if path is None or not path.exists():
        return None
    cache = ResponseCache(path, readonly=True)
    try:
        stats = cache.stats()
    finally:
        cache.close()
    cached, sent = hit_rate(out_dir)
    return CacheReport(stats, cached, sent)


NO_CACHE = "cache: none (a run with --cache use, the default, creates one)"


def prune(out_dir: Path, cache_dir: Path | None = None) -> tuple[Path, int, int]:
    """Drop entries no journal refers to; returns (cache file, entries dropped, entries kept).

    The results directories that used the cache (recorded in it) are all consulted, so a
    shared cache keeps what any of them needs. A running writer on any of them is an error.
    """
    from .storage import JOURNAL_FILE, ensure_unlocked
    from .transcripts import referenced_keys

    path = find_cache(out_dir, cache_dir)
    if path is None:
        raise StorageError(f"no response cache for {out_dir}; nothing to prune")
    cache = ResponseCache(path)
    try:
        users = {p for p in cache.users() if (p / JOURNAL_FILE).exists()}
        users.add(Path(out_dir).resolve())
        for user in users:
            ensure_unlocked(user / JOURNAL_FILE)
        keep: set[bytes] = set()
        for user in users:
            keep |= referenced_keys(user)
        dropped = cache.prune(keep)
        kept = cache.stats().entries
    finally:
        cache.close()
    return path, dropped, kept
