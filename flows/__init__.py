"""Prefect flows, the MLflow registry and the full ``capmix`` command around the capmix library.

Importing this package switches usage telemetry off (:mod:`capmix.telemetry`) before any flow
module imports MLflow or Prefect.
"""

from capmix.telemetry import switch_off

switch_off()
