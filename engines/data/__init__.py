"""The engine's image and sample types: decoding an image file to the pixels the viewer shows, and the
record of one image with its ids, split, labels, boxes and report (what the lab's readers produce)."""

from engines.data.images import ImageDecodeError, load_image_array, to_uint8
from engines.data.sample import Box, Sample

__all__ = ["Box", "ImageDecodeError", "Sample", "load_image_array", "to_uint8"]
