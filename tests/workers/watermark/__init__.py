"""Tests of the watermark methods, mirroring ``workers/watermark/{schemes,attacks}``."""

from faultlab.spec import ModelSpec

#: A digits CNN trained for a few epochs: enough for the methods to show their effect.
FAST = ModelSpec.model_validate({"name": "digits_cnn", "options": {"epochs": 5}})
