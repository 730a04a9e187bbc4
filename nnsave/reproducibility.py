"""Make TensorFlow quiet and training repeatable, for the book and for exact resumes.

:func:`seed_everything` makes every run give the same numbers. Seeding has a
side effect that is easy to miss: Keras's own shuffling then repeats one order
in every epoch. :func:`epoch_order` and :class:`ShuffledEpochs` give a new
order every epoch that a resumed run reproduces exactly.
"""

from __future__ import annotations

import functools
import math
import os
import random
from typing import Any

__all__ = ["seed_everything", "epoch_order", "ShuffledEpochs"]


def seed_everything(seed: int = 0) -> None:
    """Seed Python, numpy and Keras; on TensorFlow, turn on op determinism and silence it.

    Call it before building a model. TensorFlow's C++ logging can only be
    silenced before TensorFlow is first imported, so call it early.

    Parameters
    ----------
    seed : int, default 0
        The seed for every random number generator.

    Notes
    -----
    Seeding makes ``model.fit(x, y, shuffle=True)`` visit the examples in one
    permutation and repeat that same permutation in every epoch, and in every
    later call of ``fit`` in the process (Keras 3.15.1 on TensorFlow 2.21).
    Keras draws each epoch's order with ``tf.random.shuffle`` inside a new
    ``tf.data`` iterator, and with a global seed set every new iterator starts
    from the same random state. ``keras.utils.set_random_seed`` or
    ``tf.random.set_seed`` alone does the same. For a new order every epoch
    that a resumed run reproduces, give ``fit`` a
    ``nnsave.reproducibility.ShuffledEpochs`` instead of the arrays.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ["PYTHONHASHSEED"] = str(seed)
    import keras
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)
    if keras.config.backend() == "tensorflow":
        import tensorflow as tf

        # TensorFlow's Python warnings otherwise reach stdout, with absolute paths.
        tf.get_logger().setLevel("ERROR")
        tf.config.experimental.enable_op_determinism()


def epoch_order(n: int, epoch: int, seed: int = 0) -> Any:
    """The order in which epoch ``epoch`` visits ``n`` examples.

    Every epoch gets its own permutation, and it depends on ``n``, ``epoch``
    and ``seed`` alone: a run resumed at epoch 5 visits the examples in the
    order an uninterrupted run used at epoch 5.

    Examples
    --------
    >>> epoch_order(6, epoch=0).tolist(), epoch_order(6, epoch=1).tolist()
    ([3, 2, 5, 4, 0, 1], [1, 4, 3, 0, 2, 5])
    >>> bool((epoch_order(6, epoch=1) == epoch_order(6, epoch=1)).all())
    True
    """
    import numpy as np

    return np.random.default_rng([seed, epoch]).permutation(n)


class _ShuffledEpochs:
    """Batches of ``(x, y)`` in a new order every epoch, the same orders on every run.

    A Keras ``PyDataset`` to give ``fit`` instead of the arrays, with
    ``shuffle=False``: the dataset does the shuffling itself, in the order
    :func:`epoch_order` gives each epoch. (With ``shuffle=True``, ``fit``
    would also reorder the batches with Python's ``random`` module, which a
    resumed run does not reproduce.)

    The dataset counts the epochs that ``fit`` runs with it, so use one
    dataset for one run (calls of ``fit`` that continue each other may share
    it), and only as training data. To resume, make a new one with the same
    ``initial_epoch`` that you give ``fit``.

    Parameters
    ----------
    x, y : array
        The inputs and targets, numpy arrays with one example per row.
    batch_size : int, default 32
        The number of examples in a batch; the last batch may be smaller.
    seed : int, default 0
        Chooses the sequence of orders; a run with another seed sees others.
    initial_epoch : int, default 0
        The epoch that training starts at, as in ``fit(initial_epoch=...)``.

    Examples
    --------
    >>> batches = ShuffledEpochs(x, y, batch_size=32)  # doctest: +SKIP
    >>> model.fit(batches, epochs=10, shuffle=False)  # doctest: +SKIP
    >>> # resumed after six epochs, with the model restored from a checkpoint:
    >>> batches = ShuffledEpochs(x, y, batch_size=32, initial_epoch=6)  # doctest: +SKIP
    >>> model.fit(batches, epochs=10, initial_epoch=6, shuffle=False)  # doctest: +SKIP
    """

    def __init__(self, x, y, batch_size: int = 32, *, seed: int = 0, initial_epoch: int = 0):
        super().__init__()
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} examples but y has {len(y)}")
        self.x, self.y = x, y
        self.batch_size, self.seed = batch_size, seed
        self._next_epoch = initial_epoch
        # Keras reads a first batch to learn the shapes before the first epoch begins.
        self._order = epoch_order(len(x), initial_epoch, seed)

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, index: int) -> tuple:
        rows = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        return self.x[rows], self.y[rows]

    def on_epoch_begin(self) -> None:
        self._order = epoch_order(len(self.x), self._next_epoch, self.seed)
        self._next_epoch += 1


@functools.cache
def _shuffled_epochs_class() -> type:
    import keras

    class ShuffledEpochs(_ShuffledEpochs, keras.utils.PyDataset):
        __doc__ = _ShuffledEpochs.__doc__

    ShuffledEpochs.__module__, ShuffledEpochs.__qualname__ = __name__, "ShuffledEpochs"
    return ShuffledEpochs


def __getattr__(name: str) -> Any:
    # ShuffledEpochs must subclass keras.utils.PyDataset, and TensorFlow must not
    # be imported before seed_everything has quieted it: build the class on first use.
    if name == "ShuffledEpochs":
        return _shuffled_epochs_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
