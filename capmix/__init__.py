"""capmix: CAPMix time-series anomaly detection (CutAddPaste + DTW label revision + dual-space mixup).

``build_detector(name, **overrides)`` builds any detector of ``detector_names()``;
``load_detector(path)`` loads any saved one.
"""

__version__ = "0.1.0"

from capmix.config import DetectorConfig, detector_config, load_params  # noqa: E402
from capmix.detectors.capmix.detector import CAPMixDetector  # noqa: E402
from capmix.detectors.registry import build_detector, detector_names, load_detector  # noqa: E402

__all__ = ["CAPMixDetector", "DetectorConfig", "build_detector", "detector_config", "detector_names",
           "load_detector", "load_params", "__version__"]
