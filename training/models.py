"""The two architectures: the seed paper's CNN (baseline) and a compact mobile net.

Both take RGB images with values 0..255 (float) and end in a 2-way softmax
(benign, malignant); the scaling to the network's range is inside the model, so
the int8 model's input is the plain uint8 image the kiosk's preprocess() makes.
"""

from __future__ import annotations

import keras
from keras import layers


def paper_cnn(size: int = 224) -> keras.Model:
    """Araneta (2025): 4 x (Conv 3x3 ReLU, Dropout, MaxPool 2x2), Flatten, Dense 512, Dense 2.

    At 224x224 this has exactly 19,264,322 parameters, as the paper reports.
    """
    inputs = keras.Input((size, size, 3), name="image")
    x = layers.Rescaling(1 / 255.0)(inputs)
    for filters in (32, 64, 128, 256):
        x = layers.Conv2D(filters, 3, activation="relu")(x)
        x = layers.Dropout(0.2)(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(512, activation="relu")(x)
    outputs = layers.Dense(2, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="paper_cnn")


def mobile_net(size: int = 160, *, alpha: float = 0.35, dropout: float = 0.2) -> keras.Model:
    """MobileNetV2 (depthwise-separable inverted residuals) trained from scratch."""
    inputs = keras.Input((size, size, 3), name="image")
    x = layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    backbone = keras.applications.MobileNetV2(
        input_shape=(size, size, 3), alpha=alpha, include_top=False, weights=None, pooling="avg"
    )
    for layer in backbone.layers:
        if isinstance(layer, layers.BatchNormalization):
            # Keras' default 0.999 needs thousands of steps before the inference-time
            # statistics are usable; with ~130 steps an epoch validation would be noise.
            layer.momentum = 0.99
    x = backbone(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(2, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=f"mobilenetv2_{alpha}_{size}")


def lite_net(size: int = 160, *, alpha: float = 0.5, dropout: float = 0.2) -> keras.Model:
    """EfficientNet-Lite0 narrowed to ``alpha`` of its channels (``training.lite``); random weights here.

    Its ImageNet start comes through ``training.train --init`` from ``python -m training.lite``, whose
    narrowed model has these same layers and shapes.
    """
    from .lite import lite0

    return lite0(width=alpha, size=size, state=None, dropout=dropout)


def build_model(arch: str, size: int, alpha: float) -> keras.Model:
    """The untrained network ``training.train --arch ARCH`` starts from."""
    if arch == "paper":
        return paper_cnn(size)
    if arch == "lite":
        return lite_net(size, alpha=alpha)
    return mobile_net(size, alpha=alpha)
