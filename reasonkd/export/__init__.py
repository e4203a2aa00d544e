"""Deployment: ONNX Runtime / OpenVINO export, parity checks, speed benchmarks.

Importing this package lets `reasonkd.models.load_model` open export folders
(reasonkd.export.runtime registers its loader).
"""

from reasonkd.export import runtime  # noqa: F401 - registers the export folder loader
