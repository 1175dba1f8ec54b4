"""The one-filter fast path: a Conv2D layer computed for one output channel per image.

Activation maximization needs one filter's map per image, yet a full layer computes all F of them. A
`ChannelHead` runs the network up to the target's input and convolves each image with its own filter's kernel
only; `models.feature_extractor` attaches one where the layer allows it and the engine (`ascent`) uses it when
its objective needs only each image's own filter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .quiet import keras

from .graphs import layer_calls

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

__all__ = ["ChannelHead", "channel_head"]


@dataclass(frozen=True)
class ChannelHead:
    """The target Conv2D layer computed for one output channel per image: image i gets only channel `filters[i]`.

    Activation maximization needs one filter's map per image, yet a full layer computes all F of them. This
    head runs the network up to the target's input (`trunk`), then convolves each image with its own
    filter's kernel only (one depthwise convolution over the batch), saving the target layer's other F-1
    channels in the forward and the backward pass. It reads the layer's live weights, so it needs no sync.
    """

    trunk: keras.Model
    layer: keras.layers.Conv2D
    pre_activation: bool

    def maps(self, inputs: "tf.Tensor", filters: "tf.Tensor") -> "tf.Tensor":
        """[N,h,w] float32: each image's own filter map, from the trunk's output `inputs` [N,H,W,C]."""
        import tensorflow as tf

        conv = self.layer
        x = tf.cast(inputs, tf.float32)
        n, c = tf.shape(x)[0], x.shape[-1]
        kh, kw = conv.kernel_size
        kernel = tf.gather(tf.cast(conv.kernel, tf.float32), filters, axis=3)  # [kh,kw,C,N]
        kernel = tf.reshape(tf.transpose(kernel, [0, 1, 3, 2]), [kh, kw, -1, 1])  # [kh,kw,N*C,1]
        # the batch becomes channels of one image: [1,H,W,N*C]
        stacked = tf.transpose(x, [1, 2, 0, 3])
        stacked = tf.reshape(stacked, tf.concat([[1], tf.shape(stacked)[:2], [n * c]], 0))
        sy, sx = conv.strides
        out = tf.nn.depthwise_conv2d(
            stacked, kernel, [1, sy, sx, 1], conv.padding.upper(), dilations=conv.dilation_rate
        )  # [1,h,w,N*C]
        hw = tf.shape(out)[1:3]
        out = tf.reduce_sum(tf.reshape(out, tf.concat([hw, [n, c]], 0)), axis=3)  # [h,w,N]
        out = tf.transpose(out, [2, 0, 1])
        if conv.use_bias:
            out = out + tf.gather(tf.cast(conv.bias, tf.float32), filters)[:, None, None]
        if not self.pre_activation and conv.activation is not None:
            out = tf.cast(conv.activation(out[..., None]), tf.float32)[..., 0]
        return out


def channel_head(net: keras.Model, layer: str, pre_activation: bool = True) -> ChannelHead | None:
    """A ChannelHead for `layer` when it is a plain Conv2D (channels last, one group, one input), else None."""
    target = net.get_layer(layer)
    if type(target) is not keras.layers.Conv2D or getattr(target, "groups", 1) != 1:
        return None
    if target.data_format != "channels_last" or layer_calls(net, layer) != 1:
        return None
    sy, sx = target.strides
    dy, dx = target.dilation_rate
    if sy != sx or (max(sy, sx) > 1 and max(dy, dx) > 1):  # what depthwise_conv2d cannot express
        return None
    inputs = net.inputs[0] if len(net.inputs) == 1 else net.inputs
    return ChannelHead(keras.Model(inputs, target.input), target, pre_activation)
