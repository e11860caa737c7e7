"""The answer should not move with the camera: a consistency term between two copies of one photo.

``training.train --consistency L`` (with ``--camera-aug``) fills each batch with half as many photos,
each followed, in the second half, by a copy of itself camera-augmented anew (at least one family of
``training.augment``); the augmentation layers then turn, mirror and colour-jitter the two copies
independently. :class:`PairedConsistencyLoss` is the label's cross-entropy on the photo plus ``L``
times the Jensen-Shannon divergence between the two predictions, as AugMix does (Hendrycks et al.,
ICLR 2020): the photo keeps its label, and the dim, darker, blurred or turned copy is taught to
agree with it rather than learning a label of its own, which had made darker photos read benign
(``runs/bf2``, ``runs/rt160``: melanomas on a darker photo told "low").

Importing this module registers the loss with Keras, so a run saved with it loads again.

    >>> import numpy as np                                    # doctest: +SKIP
    >>> p = np.array([[0.9, 0.1], [0.5, 0.5]], np.float32)     # doctest: +SKIP
    >>> np.round(np.asarray(jensen_shannon(p, p[::-1])), 4)   # doctest: +SKIP
    array([0.1017, 0.1017], dtype=float32)
"""

from __future__ import annotations

import keras
from keras import ops

_EPSILON = 1e-7


def jensen_shannon(p, q):
    """Per row, the Jensen-Shannon divergence (natural log) between two batches of class probabilities."""
    p = ops.clip(p, _EPSILON, 1.0)
    q = ops.clip(q, _EPSILON, 1.0)
    m = (p + q) / 2.0
    return 0.5 * ops.sum(p * ops.log(p / m), axis=-1) + 0.5 * ops.sum(q * ops.log(q / m), axis=-1)


@keras.saving.register_keras_serializable(package="training")
class PairedConsistencyLoss(keras.losses.Loss):  # type: ignore[misc]  # keras ships no types
    """Cross-entropy on the photos (the first half) plus ``weight`` x JSD between each row and its partner.

    The batch must hold N photos and then the same N photos again, changed, in the same order
    (``training.train.shuffled_batches(paired=True)``). As in AugMix, only the photo is scored against
    its label; each row's loss carries its pair's divergence, so the pair's class weights weigh it too.
    """

    def __init__(self, weight: float = 1.0, label_smoothing: float = 0.0, name: str = "paired_consistency", **kwargs):
        super().__init__(name=name, **kwargs)
        self.weight = float(weight)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        cross_entropy = keras.losses.categorical_crossentropy(y_true, y_pred, label_smoothing=self.label_smoothing)
        rows = ops.shape(y_pred)[0]
        half = rows // 2
        # The label on the photos only, twice over so that the batch mean is their mean: the changed copy
        # learns from agreeing with its photo, not from a label of its own.
        on_photo = ops.cast(ops.arange(rows) < half, cross_entropy.dtype) * 2.0
        partner = ops.roll(y_pred, shift=half, axis=0)
        return on_photo * cross_entropy + self.weight * jensen_shannon(y_pred, partner)

    def get_config(self) -> dict:
        return {**super().get_config(), "weight": self.weight, "label_smoothing": self.label_smoothing}
