"""The pixel pipeline: DICOM pixel data to display images and model input tensors.

Shared by serving and training; numpy, pydicom and Pillow only, deterministic.
"""

from inference.pixels.decode import MIN_SIDE, read_dataset
from inference.pixels.display import DisplayImage, ImageInfo, display_array, to_grey
from inference.pixels.geometry import Letterbox, letterbox
from inference.pixels.lut import PERCENTILE_WINDOW, VoiSource, VoiWindow
from inference.pixels.pipeline import Prepared, prepare, prepare_display
from inference.pixels.spec import MIN_INPUT_SIZE, InputSpec, Interpolation

__all__ = [
    "MIN_INPUT_SIZE",
    "MIN_SIDE",
    "PERCENTILE_WINDOW",
    "DisplayImage",
    "ImageInfo",
    "InputSpec",
    "Interpolation",
    "Letterbox",
    "Prepared",
    "VoiSource",
    "VoiWindow",
    "display_array",
    "letterbox",
    "prepare",
    "prepare_display",
    "read_dataset",
    "to_grey",
]
