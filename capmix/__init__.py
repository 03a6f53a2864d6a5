"""capmix: CAPMix time-series anomaly detection (CutAddPaste + DTW label revision + dual-space mixup)."""

__version__ = "0.1.0"

from capmix.config import DetectorConfig, detector_config, load_params  # noqa: E402
from capmix.detectors.capmix.detector import CAPMixDetector  # noqa: E402

__all__ = ["CAPMixDetector", "DetectorConfig", "detector_config", "load_params", "__version__"]
