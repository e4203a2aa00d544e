"""Deployment: ONNX Runtime / OpenVINO export, parity checks, speed benchmarks."""
