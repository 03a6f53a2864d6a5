"""Prefect flows, the MLflow registry and the full ``capmix`` command around the capmix library.

Importing this package switches usage telemetry off (:mod:`capmix.telemetry`) before any flow
module imports MLflow or Prefect.
"""

from capmix.telemetry import switch_off

switch_off()

import warnings

# Prefect builds a pydantic model of each flow's parameters, and the training flow's `register`
# flag shadows BaseModel.register: harmless, and the name is part of the deployments' parameters
warnings.filterwarnings("ignore", message=r'Field name "register" in "Training_FlowModel"', category=UserWarning)
