"""Make TensorFlow quiet and training repeatable, for the book and for exact resumes."""

from __future__ import annotations

import os
import random

__all__ = ["seed_everything"]


def seed_everything(seed: int = 0) -> None:
    """Seed Python, numpy and Keras, turn on op determinism and silence TensorFlow.

    Call it before building a model. TensorFlow's C++ logging can only be
    silenced before TensorFlow is first imported, so call it early.

    Parameters
    ----------
    seed : int, default 0
        The seed for every random number generator.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ["PYTHONHASHSEED"] = str(seed)
    import keras
    import numpy as np
    import tensorflow as tf

    # TensorFlow's Python warnings otherwise reach stdout, with absolute paths.
    tf.get_logger().setLevel("ERROR")
    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
