"""Group commit: many threads' small transactions made durable by one commit.

Each C-STORE must be committed before it is acknowledged. When several associations
store at once, committing each instance on its own costs a flush of the database log
and of the instance's folder per instance; here whoever finds no commit in progress
leads, takes every pending piece of work, flushes the folders they name, runs each in
its own savepoint of one transaction and commits once. The others wait for the
outcome of their own piece: nothing is acknowledged before its commit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from sqlalchemy.orm import Session

from store.db import Database
from store.errors import FileStoreError
from store.files import fsync_dir

__all__ = ["GroupCommitter"]

_T = TypeVar("_T")


@dataclass(eq=False)
class _Work(Generic[_T]):
    work: Callable[[Session], _T]
    sync_dirs: Sequence[Path]
    done: bool = False
    result: Any = None
    error: BaseException | None = None


@dataclass(eq=False)
class GroupCommitter:
    """Runs units of work in shared, durable transactions.

    Parameters
    ----------
    database:
        The store.
    max_batch:
        The most units one commit takes.
    """

    database: Database
    max_batch: int = 64
    _pending: list[_Work[Any]] = field(default_factory=list, init=False)
    _leading: bool = field(default=False, init=False)
    _cv: threading.Condition = field(default_factory=threading.Condition, init=False)

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ValueError(f"`max_batch` must be >= 1, {self.max_batch} is given")

    def run(self, work: Callable[[Session], _T], *, sync_dirs: Sequence[Path] = ()) -> _T:
        """Run ``work`` in a committed transaction, after flushing ``sync_dirs``.

        Returns what ``work`` returned once the transaction holding it has committed;
        raises what ``work`` raised (its savepoint is rolled back, the others commit),
        or the error that kept the shared commit from happening.
        """
        item: _Work[_T] = _Work(work, tuple(sync_dirs))
        with self._cv:
            self._pending.append(item)
        while True:
            with self._cv:
                while not item.done and self._leading:
                    self._cv.wait()
                if item.done:
                    break
                self._leading = True
                batch = self._pending[: self.max_batch]
                del self._pending[: len(batch)]
            try:
                self._commit(batch)
            finally:
                with self._cv:
                    self._leading = False
                    self._cv.notify_all()
        if item.error is not None:
            raise item.error
        result: _T = item.result
        return result

    def _commit(self, batch: list[_Work[Any]]) -> None:
        try:
            for folder in sorted({folder for item in batch for folder in item.sync_dirs}):
                fsync_dir(folder)
            with self.database.write() as session:
                for item in batch:
                    try:
                        with session.begin_nested():
                            item.result = item.work(session)
                    except Exception as exc:  # noqa: BLE001 - handed back to its own caller
                        item.error = exc
        except (FileStoreError, OSError) as exc:
            failure: BaseException = FileStoreError(f"cannot flush instance folders: {exc}")
            self._fail(batch, failure)
        except BaseException as exc:
            self._fail(batch, exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            for item in batch:
                item.done = True

    @staticmethod
    def _fail(batch: list[_Work[Any]], error: BaseException) -> None:
        for item in batch:
            if item.error is None:
                item.error = error
                item.result = None
