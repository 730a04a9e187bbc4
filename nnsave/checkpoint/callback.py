"""The Keras callback that writes checkpoints, keeps a few, and indexes them.

One checkpoint's steps run in an order chosen so that a crash between any
two of them, or a reader at any moment, sees a directory that
:func:`nnsave.latest_checkpoint` reads correctly:

1. save ``ckpt-NNNNN.keras`` and its manifest;
2. decide, with pure retention policies, which checkpoints to keep;
3. rewrite ``checkpoint.json``;
4. delete what retention dropped, which the index no longer lists.

At no moment does the directory lack a whole checkpoint once it had one.
When training was restarted from an earlier epoch, the checkpoints of later
epochs belong to the abandoned run: the index marks them ``abandoned``
before step 1, and they are deleted in step 4, once the new one is in place.

All four run under the directory's writers' lock, so several processes may
checkpoint into one directory; each starts from what the index says now.

With ``background=True`` the same four steps run in a background thread,
after the model's state, its optimizer's and its config have been copied
into host memory on the training thread (a *snapshot*): training goes on
while the file is written, and changes to the model after the snapshot
cannot reach the file. One save at most is in flight; the next one waits
for it, and so does the end of training. An error in the background is
raised on the training thread at the first epoch boundary after it happened,
at the latest by the next save or the end of training.
"""

from __future__ import annotations

import atexit
import functools
import threading
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from .. import api
from ..errors import CheckpointFallbackWarning, InvalidArgumentError, MissingDependencyError, deferred_warnings, warn_caller
from ..formats import handler_for_path
from ..paths import Location, PathLike
from .folder import CheckpointFolder
from .index import (
    INDEX_NAME,
    MAX_INDEX_BYTES,
    build_index,
    checkpoint_name,
    epoch_of,
    finite_value,
    index_bytes,
    parse_index,
)
from .retention import CheckpointEntry, any_of, check_count, check_mode, keep_latest_n, plan_retention
from .retention import keep_best as keep_best_policy

__all__ = ["CheckpointerBase", "checkpointer_class"]


class CheckpointerBase:
    """Save the whole model every few epochs, keep a few, and index them.

    ``nnsave.Checkpointer`` is this class combined with
    ``keras.callbacks.Callback``, so pass it to ``model.fit(callbacks=[...])``.

    Each save goes through :func:`nnsave.save` as ``ckpt-{epoch:05d}.keras``
    (architecture, weights and optimizer state), with the epoch and that
    epoch's logs in the manifest's metadata, signed with your key. ``epoch``
    counts completed epochs, so it is exactly the ``initial_epoch`` to
    resume from.

    Parameters
    ----------
    directory : str, bytes, os.PathLike or URL
        Where the checkpoints go; created when training starts if missing.
        Leftover temporary files of interrupted saves are removed then. A URL
        (``s3://bucket/runs/digits``) keeps them on an object store, with the
        same retention, index and resume; there, one writer per directory
        (an object store has no lock), and leftovers are removed once older
        than :data:`nnsave.objectstore.STALE_SECONDS`.
    every_n_epochs : int, default 1
        Save after every epoch whose count is a multiple of this.
    max_to_keep : int, default 5
        Keep the newest ``max_to_keep`` checkpoints and delete older ones.
        The newest checkpoint is never deleted.
    monitor : str, optional
        A key of the epoch logs, such as ``"val_loss"``, recorded in the index
        for each checkpoint; required by ``keep_best``.
    mode : {"min", "max"}, default "min"
        Whether a lower or a higher ``monitor`` value is better.
    keep_best : bool, default False
        Also keep the checkpoint with the best ``monitor`` value, beyond
        ``max_to_keep`` if need be.
    save_on_train_end : bool, default True
        When training ends after an epoch that was not saved (12 epochs with
        ``every_n_epochs=5``, or an early stop), save that last epoch too, so
        that no trained epoch is lost.
    storage_options : dict, optional
        For a URL: options for fsspec, as :func:`nnsave.save` takes them.
    background : bool, default False
        Copy the model's state into host memory at the end of the epoch and
        write the checkpoint in a background thread while training goes on.
        The file is the one a synchronous save at that moment would write.
        One save at most is in flight: the next one waits for it, and so do
        the end of training and ``wait()``. The memory of one more copy of
        the model's weights and optimizer state is held while it is written.
        If the background save fails, its error is raised on the training
        thread at the next epoch's start or end (at the latest by the next
        save or the end of training); the previous checkpoint stays intact.

    Raises
    ------
    nnsave.InvalidArgumentError
        An argument is out of range (it is a ``ValueError``).
    ValueError
        When a checkpoint is due, ``monitor`` is not in that epoch's logs (the
        message lists the keys that are).
    NotADirectoryError
        ``directory`` is a file.

    Warns
    -----
    CheckpointFallbackWarning
        A save removed checkpoints of later epochs left by an earlier run.
        The warning points at your ``fit`` call. With ``background=True``,
        warnings of a background save are given at the next epoch; the
        warning also says when this Keras cannot be snapshotted, so that
        checkpoints are saved synchronously.

    Notes
    -----
    Saving epoch ``e`` into a directory that holds checkpoints of epochs after
    ``e`` means training was restarted from an earlier point; those later
    checkpoints belong to the abandoned run. They are deleted, with a
    warning, once the new checkpoint is in place; until then the index marks
    them abandoned, and readers use one only if nothing else is left.

    Examples
    --------
    >>> ckpt = nnsave.Checkpointer("runs/digits", every_n_epochs=2, monitor="val_loss",
    ...                            keep_best=True)  # doctest: +SKIP
    >>> model.fit(X, y, validation_split=0.2, epochs=10, callbacks=[ckpt])  # doctest: +SKIP
    >>> model, initial_epoch = nnsave.resume("runs/digits")  # doctest: +SKIP
    >>> model.fit(X, y, validation_split=0.2, epochs=20, initial_epoch=initial_epoch)  # doctest: +SKIP
    """

    # Set by keras.callbacks.Callback.set_model when fit() starts.
    model: Any

    def __init__(
        self,
        directory: PathLike,
        *,
        every_n_epochs: int = 1,
        max_to_keep: int = 5,
        monitor: str | None = None,
        mode: str = "min",
        keep_best: bool = False,
        save_on_train_end: bool = True,
        storage_options: Mapping[str, Any] | None = None,
        background: bool = False,
    ) -> None:
        super().__init__()
        check_count("every_n_epochs", every_n_epochs)
        check_count("max_to_keep", max_to_keep)
        check_mode(mode)
        if monitor is not None and (not isinstance(monitor, str) or not monitor):
            raise InvalidArgumentError(f"monitor must be a key of the epoch logs such as 'val_loss', not {monitor!r}.")
        for name, flag in (("keep_best", keep_best), ("save_on_train_end", save_on_train_end), ("background", background)):
            if not isinstance(flag, bool):
                raise InvalidArgumentError(f"{name} must be True or False, not {flag!r}.")
        if keep_best and monitor is None:
            raise InvalidArgumentError(
                "keep_best=True needs monitor=..., the log key that decides which checkpoint is best."
            )
        self._folder = CheckpointFolder(directory, storage_options)
        self.directory = self._folder.directory
        self._folder.require(may_be_missing=True)
        self.every_n_epochs = every_n_epochs
        self.max_to_keep = max_to_keep
        self.monitor = monitor
        self.mode = mode
        self.keep_best = keep_best
        self.save_on_train_end = save_on_train_end
        self.background = background
        rules = [keep_latest_n(max_to_keep)]
        if keep_best:
            rules.append(keep_best_policy(1, mode=mode))
        self._policy = any_of(*rules)
        #: The last completed epoch and its logs, and the last epoch saved.
        self._last_epoch: tuple[int, dict[str, Any]] | None = None
        self._saved_epoch: int | None = None
        #: The background save in flight, if any.
        self._in_flight: _BackgroundSave | None = None

    # ------------------------------------------------------------------- Keras's hooks

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        self.wait()
        self._folder.create()
        self._folder.recover()
        self._last_epoch = self._saved_epoch = None

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._collect(wait=False)

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._collect(wait=False)
        completed = epoch + 1
        self._last_epoch = (completed, dict(logs or {}))
        if completed % self.every_n_epochs == 0:
            self.save(completed, logs or {})

    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        if self.save_on_train_end and self._last_epoch is not None and self._last_epoch[0] != self._saved_epoch:
            self.save(*self._last_epoch)
        self.wait()

    def wait(self) -> None:
        """Wait for the background save in flight, if any; raise the error it met.

        ``fit`` calls this when training ends. Call it yourself after calling
        :meth:`save` outside ``fit`` with ``background=True``.
        """
        self._collect(wait=True)

    def _collect(self, *, wait: bool) -> None:
        """Hand over a finished background save's warnings and error; with ``wait``, let it finish first."""
        job = self._in_flight
        if job is None or (job.is_alive() and not wait):
            return
        job.join()
        self._in_flight = None
        for message, category in job.warnings:
            warn_caller(message, category)
        job.raise_error()

    # ------------------------------------------------------------------- saving

    def save(self, epoch: int, logs: Mapping[str, Any]) -> Location:
        """Save the model as the checkpoint of ``epoch``, then apply retention.

        ``fit`` calls this through the callback; call it yourself only to
        save outside ``fit``. With ``background=True`` it returns once the
        model's state is copied, and the checkpoint is written in a background
        thread; :meth:`wait` waits for it.
        """
        plain_logs = _plain_logs(logs)
        value = self._monitored_value(plain_logs)
        metadata = {"epoch": epoch, "monitor": self.monitor, "logs": plain_logs}
        self._folder.create()
        target = self._folder.path(checkpoint_name(epoch))
        self.wait()  # one save at most in flight
        snapshot = self._snapshot(target) if self.background else None
        if snapshot is None:
            self._write(epoch, value, metadata, self.model)
        else:
            self._in_flight = _BackgroundSave(functools.partial(self._write, epoch, value, metadata, snapshot), snapshot.release)
        self._saved_epoch = epoch
        return target

    def _snapshot(self, target: Location) -> Any | None:
        """The model's state copied now, or None (with a warning) if this Keras cannot be snapshotted."""
        try:
            return handler_for_path(target).snapshot(self.model, target)
        except MissingDependencyError as error:
            warn_caller(f"{self.directory}: this checkpoint is saved synchronously. {error}", CheckpointFallbackWarning)
            return None

    def _write(self, epoch: int, value: float | None, metadata: dict[str, Any], model: Any) -> None:
        """Steps 1-4 of one checkpoint, under the directory's lock; ``model`` may be a snapshot."""
        # Another process may checkpoint into the same directory: take turns,
        # and start from what the directory holds now rather than from memory.
        with self._folder.writing():
            entries, abandoned = self._existing_entries()
            later = [entry for entry in entries if entry.epoch > epoch]
            if later:
                entries = self._abandon(epoch, entries, later, abandoned)
                abandoned += [entry.file for entry in later]
            name = checkpoint_name(epoch)
            abandoned = [stale for stale in abandoned if stale != name]  # replaced by this save
            api.save(model, self._folder.path(name), metadata=metadata)
            entries = [entry for entry in entries if entry.epoch != epoch] + [CheckpointEntry(name, epoch, value)]
            kept, dropped = plan_retention(entries, self._policy)
            self._publish_index(kept, abandoned)
            # Only now that the index no longer lists them (a reader that
            # finds one gone surveys again), and that a newer checkpoint is
            # in place (a reader never finds the directory empty).
            for stale in [*abandoned, *(entry.file for entry in dropped)]:
                self._folder.remove_checkpoint(stale)

    def _abandon(
        self, epoch: int, entries: list[CheckpointEntry], later: list[CheckpointEntry], abandoned: list[str]
    ) -> list[CheckpointEntry]:
        """Mark the checkpoints of a run that went further as abandoned; return the rest."""
        names = ", ".join(entry.file for entry in later)
        warn_caller(
            f"{self.directory}: saving epoch {epoch} over a run that went further; deleting "
            f"its later checkpoints {names}.",
            CheckpointFallbackWarning,
        )
        # Recorded before the new checkpoint is saved: should the process die
        # before it deletes them, readers still know them for what they are,
        # and use one only if nothing else is left.
        current = [entry for entry in entries if entry.epoch <= epoch]
        self._publish_index(current, [*abandoned, *(entry.file for entry in later)])
        return current

    def _publish_index(self, entries: list[CheckpointEntry], abandoned: list[str]) -> None:
        index = build_index(entries, self.monitor, self.mode, abandoned)
        self._folder.publish(INDEX_NAME, index_bytes(index))

    def _monitored_value(self, logs: Mapping[str, Any]) -> float | None:
        if self.monitor is None:
            return None
        if self.monitor not in logs:
            available = ", ".join(sorted(logs)) or "(none)"
            hint = " Pass validation data to fit() to get 'val_' keys." if self.monitor.startswith("val_") else ""
            raise ValueError(
                f"Checkpointer(monitor={self.monitor!r}): this epoch's logs have no such key. "
                f"Available keys: {available}.{hint}"
            )
        return finite_value(logs[self.monitor])

    def _existing_entries(self) -> tuple[list[CheckpointEntry], list[str]]:
        """What earlier runs and other writers left here, so that retention covers it too.

        Returns the checkpoints that exist, and the abandoned ones that
        still exist (an earlier save died before deleting them).
        """
        try:
            index = parse_index(self._folder.read(INDEX_NAME, MAX_INDEX_BYTES), str(self._folder.path(INDEX_NAME)))
        except (OSError, ValueError):  # missing or damaged: the files alone decide
            index = None
        listed: dict[str, CheckpointEntry] = {}
        if index is not None:
            same_metric = index.monitor == self.monitor and index.mode == self.mode
            for entry in index.entries:
                listed[entry.file] = entry if same_metric else CheckpointEntry(entry.file, entry.epoch)
        for name in self._folder.names():
            epoch = epoch_of(name)
            if epoch is not None:
                listed.setdefault(name, CheckpointEntry(name, epoch))
        abandoned = [name for name in (index.abandoned if index else ()) if self._folder.exists(name)]
        entries = [entry for name, entry in listed.items() if name not in abandoned and self._folder.exists(name)]
        return entries, abandoned


class _BackgroundSave(threading.Thread):
    """One checkpoint written off the training thread; its warnings and error wait for that thread.

    Not a daemon: a process that ends while a checkpoint is being written
    waits for it. An error nobody collected (training stopped by an
    exception, say) is reported when the process exits, never dropped.
    """

    def __init__(self, write: Callable[[], None], release: Callable[[], None]) -> None:
        super().__init__(name="nnsave-checkpoint", daemon=False)
        self._write: Callable[[], None] | None = write
        self._release: Callable[[], None] | None = release
        self.warnings: list[tuple[str, type[Warning]]] = []
        self._error: BaseException | None = None
        self.start()

    def run(self) -> None:
        assert self._write is not None and self._release is not None
        try:
            with deferred_warnings() as self.warnings:
                self._write()
        except BaseException as error:  # noqa: BLE001 - handed to the training thread, which raises it
            self._error = error
            _UNCOLLECTED.add(self)
        finally:
            self._release()
            self._write = self._release = None  # drop the snapshot and the model now

    def raise_error(self) -> None:
        """Raise the error the save met, if any (the thread must have ended)."""
        error, self._error = self._error, None
        _UNCOLLECTED.discard(self)
        if error is not None:
            raise error


#: Background saves that failed and whose error nobody has raised yet.
_UNCOLLECTED: set[_BackgroundSave] = set()


@atexit.register
def _report_uncollected() -> None:
    # Runs after the interpreter has waited for every background save.
    for job in list(_UNCOLLECTED):
        error = job._error
        warnings.warn(
            f"nnsave.Checkpointer: a background checkpoint save failed and training ended "
            f"before the error could be raised: {type(error).__name__}: {error}. The "
            "previous checkpoint is intact.",
            CheckpointFallbackWarning,
            stacklevel=1,
        )
    _UNCOLLECTED.clear()


def _plain_logs(logs: Mapping[str, Any]) -> dict[str, Any]:
    """Epoch logs as JSON can hold them: exact floats, text kept, anything else (NaN, inf) as None."""
    return {str(key): value if isinstance(value, str) else finite_value(value) for key, value in logs.items()}


@functools.cache
def checkpointer_class() -> type:
    """``Checkpointer``: :class:`CheckpointerBase` as a ``keras.callbacks.Callback``; imports Keras."""
    import keras

    class Checkpointer(CheckpointerBase, keras.callbacks.Callback):
        __doc__ = CheckpointerBase.__doc__

    Checkpointer.__module__, Checkpointer.__qualname__ = "nnsave.checkpoint", "Checkpointer"
    return Checkpointer
