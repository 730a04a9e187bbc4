"""Training checkpoints: a Keras callback, an index, retention, and a torn-proof resume.

A checkpoint directory written by :class:`Checkpointer` looks like this::

    runs/digits/
      checkpoint.json                 the index: kept checkpoints, latest, best
      ckpt-00004.keras                a whole model (architecture, weights, optimizer)
      ckpt-00004.keras.nnsave.json    its signed manifest: digest, versions, epoch and logs
      ckpt-00006.keras
      ckpt-00006.keras.nnsave.json

The package's modules, each with one job:

- :mod:`~nnsave.checkpoint.retention`: which checkpoints to keep (pure policies);
- :mod:`~nnsave.checkpoint.index`: ``checkpoint.json``, written and parsed defensively;
- :mod:`~nnsave.checkpoint.folder`: every file-system call the package makes;
- :mod:`~nnsave.checkpoint.callback`: :class:`Checkpointer`, which saves, indexes and prunes;
- :mod:`~nnsave.checkpoint.discovery`: :func:`latest_checkpoint`, :func:`resume`
  and :func:`list_checkpoints`, which survey a directory without a lock and
  fall back past anything damaged, with a :class:`CheckpointFallbackWarning`;
- :mod:`~nnsave.checkpoint.tf_restore`: :func:`restore_tf_checkpoint`, for
  custom training loops that use ``tf.train.CheckpointManager``.

:class:`Checkpointer` subclasses ``keras.callbacks.Callback``, and Keras takes
seconds to import, so it is built the first time it is used; everything else
here imports quickly.

>>> from nnsave.checkpoint import checkpoint_name, CheckpointEntry, keep_latest_n, plan_retention
>>> entries = [CheckpointEntry(checkpoint_name(epoch), epoch) for epoch in (2, 4, 6)]
>>> kept, dropped = plan_retention(entries, keep_latest_n(2))
>>> [entry.file for entry in kept], [entry.file for entry in dropped]
(['ckpt-00004.keras', 'ckpt-00006.keras'], ['ckpt-00002.keras'])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .discovery import TF_STATE_NAME, CheckpointKind, CheckpointStatus, latest_checkpoint, list_checkpoints, resume
from .index import INDEX_NAME, checkpoint_name
from .retention import CheckpointEntry, RetentionPolicy, any_of, keep_best, keep_latest_n, plan_retention
from .tf_restore import restore_tf_checkpoint
from ..errors import CheckpointFallbackWarning

if TYPE_CHECKING:
    from .callback import CheckpointerBase as Checkpointer

__all__ = [
    "INDEX_NAME",
    "TF_STATE_NAME",
    "Checkpointer",
    "CheckpointEntry",
    "CheckpointKind",
    "CheckpointStatus",
    "CheckpointFallbackWarning",
    "RetentionPolicy",
    "keep_latest_n",
    "keep_best",
    "any_of",
    "plan_retention",
    "checkpoint_name",
    "latest_checkpoint",
    "resume",
    "list_checkpoints",
    "restore_tf_checkpoint",
]


def __getattr__(name: str) -> Any:
    # Checkpointer must subclass keras.callbacks.Callback, and importing Keras
    # takes seconds. Building the class on first use keeps this package, and
    # with it latest_checkpoint and `nnsave ls`, quick to import.
    if name == "Checkpointer":
        from .callback import checkpointer_class

        return checkpointer_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
