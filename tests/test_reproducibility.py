"""Seeded training: what Keras's own shuffling does, and epoch orders that survive a resume."""

from __future__ import annotations

import numpy as np
import pytest

import nnsave
from nnsave.reproducibility import epoch_order

N, BATCH, EPOCHS = 12, 4, 3


@pytest.fixture
def keras():
    nnsave.seed_everything(0)
    import keras

    return keras


def recording_model(keras):
    """A model whose inputs are example numbers, and a list of the numbers it trains on."""
    seen: list[int] = []

    class Recorder(keras.layers.Layer):
        def call(self, x, training=False):
            if training:
                seen.extend(int(v) for v in np.asarray(x[:, 0]))
            return x

    model = keras.Sequential([keras.Input(shape=(1,)), Recorder(), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", run_eagerly=True)
    return model, seen


def example_numbers():
    return np.arange(N, dtype="float32").reshape(-1, 1), np.zeros(N, dtype="float32")


def orders_seen(seen, epochs=EPOCHS):
    return np.array(seen).reshape(epochs, N)


def test_seeded_fit_repeats_one_permutation_every_epoch(keras):
    # The fact that seed_everything's Notes state: if Keras changes it, update them.
    model, seen = recording_model(keras)
    model.fit(*example_numbers(), epochs=EPOCHS, batch_size=BATCH, shuffle=True, verbose=0)
    model.fit(*example_numbers(), epochs=1, batch_size=BATCH, shuffle=True, verbose=0)
    orders = orders_seen(seen, EPOCHS + 1)
    assert sorted(orders[0]) == list(range(N)) and list(orders[0]) != list(range(N))
    assert all((order == orders[0]).all() for order in orders)


def test_epoch_order_is_new_each_epoch_and_the_same_for_the_same_epoch():
    orders = [epoch_order(N, epoch) for epoch in range(5)]
    assert all(sorted(order) == list(range(N)) for order in orders)
    assert len({tuple(order) for order in orders}) == 5
    assert (epoch_order(N, 3) == orders[3]).all()
    assert not (epoch_order(N, 3, seed=1) == orders[3]).all()


def test_shuffled_epochs_gives_fit_the_order_of_each_epoch(keras):
    from nnsave.reproducibility import ShuffledEpochs

    model, seen = recording_model(keras)
    model.fit(ShuffledEpochs(*example_numbers(), BATCH), epochs=EPOCHS, shuffle=False, verbose=0)
    expected = np.array([epoch_order(N, epoch) for epoch in range(EPOCHS)])
    assert (orders_seen(seen) == expected).all()


def test_a_resumed_run_sees_the_orders_of_the_uninterrupted_one(keras):
    from nnsave.reproducibility import ShuffledEpochs

    model, seen = recording_model(keras)
    batches = ShuffledEpochs(*example_numbers(), BATCH, initial_epoch=1)
    model.fit(batches, epochs=EPOCHS, initial_epoch=1, shuffle=False, verbose=0)
    expected = np.array([epoch_order(N, epoch) for epoch in range(1, EPOCHS)])
    assert (orders_seen(seen, EPOCHS - 1) == expected).all()


def test_training_resumed_from_a_saved_model_ends_with_identical_weights(keras, digits, tmp_path):
    from nnsave.reproducibility import ShuffledEpochs

    X, y = digits

    def fresh_model():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input(shape=(64,)), keras.layers.Dense(10, activation="softmax")])
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
        return model

    straight = fresh_model()
    straight.fit(ShuffledEpochs(X, y, 32), epochs=4, shuffle=False, verbose=0)

    interrupted = fresh_model()
    interrupted.fit(ShuffledEpochs(X, y, 32), epochs=2, shuffle=False, verbose=0)
    interrupted.save(tmp_path / "after-2.keras")
    resumed = keras.models.load_model(tmp_path / "after-2.keras")
    resumed.fit(ShuffledEpochs(X, y, 32, initial_epoch=2), epochs=4, initial_epoch=2, shuffle=False, verbose=0)

    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        assert np.array_equal(a, b)


def test_inputs_and_targets_of_different_lengths_are_refused(keras):
    from nnsave.reproducibility import ShuffledEpochs

    with pytest.raises(ValueError, match="x has 12 examples but y has 11"):
        ShuffledEpochs(np.zeros((12, 1)), np.zeros(11))


def test_shuffled_epochs_is_a_keras_dataset(keras):
    from nnsave.reproducibility import ShuffledEpochs

    batches = ShuffledEpochs(*example_numbers(), BATCH)
    assert isinstance(batches, keras.utils.PyDataset)
    assert len(batches) == 3 and ShuffledEpochs.__module__ == "nnsave.reproducibility"


def test_docstring_examples():
    import doctest

    import nnsave.reproducibility

    results = doctest.testmod(nnsave.reproducibility)
    assert results.attempted > 0 and results.failed == 0
