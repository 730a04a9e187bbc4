"""Exact resumes of custom training loops from ``tf.train.CheckpointManager`` checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import NNSaveError
from .discovery import Candidate, CheckpointKind, Unusable, check_tf, first_sentence, first_usable
from .folder import CheckpointFolder

__all__ = ["restore_tf_checkpoint"]


def restore_tf_checkpoint(checkpoint: Any, manager: Any) -> Path | None:
    """Restore the newest intact checkpoint of a ``tf.train.CheckpointManager``, exactly.

    A custom training loop resumes exactly when everything that shapes the
    next step comes back: the model's weights, the optimizer's slots and
    step counter, and the epoch (or step) from which the data order is
    derived. This helper restores ``checkpoint`` from the newest complete
    checkpoint of ``manager``, skipping torn ones with a warning, and then
    insists that every value in the file found a variable and every
    variable got a value, so nothing is silently left at its initial value.

    Build every variable before calling it: give the model a ``keras.Input``
    and call ``optimizer.build(model.trainable_variables)``. Otherwise the
    optimizer's slots would be restored lazily, or not at all.

    Parameters
    ----------
    checkpoint : tf.train.Checkpoint
        Holds the model, the optimizer and a counter such as
        ``epoch=tf.Variable(0, dtype=tf.int64)``.
    manager : tf.train.CheckpointManager
        The manager that saves ``checkpoint``.

    Returns
    -------
    pathlib.Path or None
        The prefix restored, or None if there was no checkpoint yet (a fresh start).

    Raises
    ------
    NNSaveError
        The checkpoint and the objects do not match (an unbuilt optimizer,
        a different architecture); the message lists what did not match.

    Warns
    -----
    CheckpointFallbackWarning
        The newest checkpoint was incomplete or unreadable and an older one was used.

    Examples
    --------
    The recipe, with a data order that depends only on the epoch::

        model = make_model()                              # built: starts with keras.Input
        optimizer = keras.optimizers.Adam(1e-2)
        optimizer.build(model.trainable_variables)
        epoch = tf.Variable(0, dtype=tf.int64)
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch)
        manager = tf.train.CheckpointManager(checkpoint, "runs/loop", max_to_keep=3)
        nnsave.restore_tf_checkpoint(checkpoint, manager)  # None on a fresh start
        while int(epoch) < 10:
            for xb, yb in batches(int(epoch)):            # fixed order, or seeded by the epoch
                train_step(model, optimizer, xb, yb)
            epoch.assign_add(1)
            manager.save(checkpoint_number=int(epoch))
    """
    import tensorflow as tf

    folder = CheckpointFolder(manager.directory)
    if not folder.directory.is_dir():
        return None

    def restore(candidate: Candidate) -> None:
        check_tf(candidate)
        try:
            status = checkpoint.restore(str(candidate.path))
        except (tf.errors.OpError, ValueError) as error:
            raise Unusable(first_sentence(str(error))) from None
        try:
            status.assert_consumed()
        except AssertionError as error:
            # TensorFlow appends the unmatched object's proto; its first line names it.
            first_line = str(error).splitlines()[0].split(": attributes")[0]
            raise NNSaveError(
                f"{candidate.path} does not match the objects being restored ({first_line}). "
                "Build the model (keras.Input) and the optimizer "
                "(optimizer.build(model.trainable_variables)) before restoring, and "
                "track the same objects under the same names as when it was saved."
            ) from None

    chosen = first_usable(folder, restore, kinds=(CheckpointKind.TF,)).chosen
    return chosen.path if chosen else None
