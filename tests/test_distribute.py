"""tf.distribute.MirroredStrategy splits a layer's filters across devices and changes no picture."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import tensorflow as tf

from filterviz.ascent import LayerRenderer
from filterviz.settings import RenderSettings
from filterviz.models import feature_extractor

SMALL = RenderSettings(size=24, steps=8, lr=5.0, segment=4, chunk=3)


def test_one_device_mirrored_equals_plain(tiny_cnn):
    ex = feature_extractor(tiny_cnn, "conv2")
    plain = LayerRenderer(ex, SMALL).render(range(7))
    r = LayerRenderer(ex, SMALL, strategy=tf.distribute.MirroredStrategy(["/cpu:0"]))
    assert r.replicas == 1 and r.batch == 3
    out = r.render(range(7))
    np.testing.assert_allclose(out.images, plain.images, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(out.trace, plain.trace, rtol=1e-5, atol=1e-5)
    assert r.traces == 1


def test_settings_mirrored_uses_the_default_strategy(tiny_cnn):
    r = LayerRenderer(feature_extractor(tiny_cnn, "conv2"), SMALL.replace(mirrored=True))
    assert isinstance(r.strategy, tf.distribute.MirroredStrategy)
    out = r.render([0, 5])
    assert np.all(out.scores > out.trace[:, 0])


def test_two_devices_split_the_filters(tmp_path):
    """Two logical CPU devices (they must be made before TensorFlow starts, so in a fresh process)."""
    script = textwrap.dedent(
        """
        import sys, numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        sys.path.insert(0, sys.argv[1])
        from conftest import make_tiny_cnn
        from filterviz.ascent import LayerRenderer
        from filterviz.settings import RenderSettings
        from filterviz.models import feature_extractor
        settings = RenderSettings(size=24, steps=8, lr=5.0, segment=4, chunk=2, precision=sys.argv[2])
        ex = feature_extractor(make_tiny_cnn(), "conv2")
        plain = LayerRenderer(ex, settings).render(range(7))
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        r = LayerRenderer(ex, settings, strategy=strategy)
        out = r.render(range(7))
        assert (r.replicas, r.batch) == (2, 4), (r.replicas, r.batch)
        assert r.traces == 2, r.traces  # one trace of the loop, which builds each replica's copy
        r.render([3])
        assert r.traces == 2, r.traces
        np.testing.assert_allclose(out.images, plain.images, rtol=1e-4, atol=1e-2)
        np.testing.assert_allclose(out.trace, plain.trace, rtol=1e-4, atol=1e-3)
        print("ok")
        """
    )
    path = tmp_path / "two_devices.py"
    path.write_text(script)
    tests = os.path.dirname(__file__)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    for precision in ("float32",):
        run = subprocess.run([sys.executable, str(path), tests, precision], capture_output=True, text=True,
                             env=env, timeout=300)
        assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stderr[-3000:]
