"""The warning a checkpoint directory in an unexpected state gives, aimed at the caller's line."""

from __future__ import annotations

import sys
import warnings

__all__ = ["CheckpointFallbackWarning", "warn_caller"]

# Frames of these packages are never "the caller": a Checkpointer's warning is
# raised from inside Keras's fit loop, and the line to show is the fit call.
_LIBRARY_PACKAGES = ("nnsave", "keras", "tensorflow")


class CheckpointFallbackWarning(UserWarning):
    """A checkpoint directory was torn, and an older or unindexed checkpoint was used.

    Also given when a save deletes the checkpoints of a run that went further,
    and when a checkpoint is skipped because it is not signed with the key
    that was named.
    """


def warn_caller(message: str, category: type[Warning] = CheckpointFallbackWarning) -> None:
    """Warn at the first frame outside nnsave, Keras and TensorFlow: the caller's own line.

    A fixed ``stacklevel`` cannot do this: the same warning is reached from
    the caller's ``resume`` call through a few nnsave frames, and from the
    caller's ``fit`` call through dozens of Keras frames.
    """
    frame = sys._getframe(1)
    level = 2  # warnings.warn counts this function as level 1
    while frame is not None and _is_library(frame.f_globals.get("__name__", "")):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)


def _is_library(module: str) -> bool:
    return module.split(".", 1)[0] in _LIBRARY_PACKAGES
