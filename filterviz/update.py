"""One step of the compiled loop's optimizer, per image, in place on tf.Variables (traceable, no host calls).

`normalized` divides each image's gradient by its own norm (the Keras example's algorithm); `adam` is Adam
with the usual constants. Both ascend: the objective is maximized.
"""

from __future__ import annotations

import math

from .quiet import tf

__all__ = ["learning_rate", "ascend"]


def learning_rate(schedule: str, step: tf.Tensor, lr: tf.Tensor, steps: int) -> tf.Tensor:
    """The step size at `step`: constant, or cosine (falls to 5% of `lr` by the last step)."""
    if schedule == "cosine":
        t = tf.cast(step, tf.float32) / float(steps)
        return lr * (0.05 + 0.95 * 0.5 * (1.0 + tf.cos(math.pi * tf.minimum(t, 1.0))))
    return lr


def ascend(
    optimizer: str, p: tf.Variable, m: tf.Variable, v: tf.Variable, g: tf.Tensor, step: tf.Tensor, lr: tf.Tensor,
    clip: bool = False,
) -> None:
    """Move the parameters `p` [N, ...] up the gradient `g`; `m` and `v` are Adam's moments (unused otherwise).
    With `clip` the result is kept in 0..1 in the same write (raw pixels shown as rendered)."""
    if optimizer == "adam":
        t = tf.cast(step + 1, tf.float32)
        m.assign(0.9 * m + 0.1 * g)
        v.assign(0.999 * v + 0.001 * tf.square(g))
        m_hat = m / (1.0 - tf.pow(0.9, t))
        v_hat = v / (1.0 - tf.pow(0.999, t))
        move = lr * m_hat / (tf.sqrt(v_hat) + 1e-8)
    else:
        axes = list(range(1, len(p.shape)))
        norm = tf.sqrt(tf.reduce_sum(tf.square(g), axis=axes, keepdims=True))
        move = lr * g / (norm + 1e-8)
    if clip:
        p.assign(tf.clip_by_value(p + move, 0.0, 1.0))
    else:
        p.assign_add(move)
