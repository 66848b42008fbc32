"""After training: export a student to ONNX, and compare it with its teacher (size, latency, return)."""
