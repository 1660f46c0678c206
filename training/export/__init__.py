"""Export trained models as ONNX into the Triton-layout ``model_repo/`` (spec → config.pbtxt)."""
