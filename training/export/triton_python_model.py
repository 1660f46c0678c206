"""Triton Python-backend model that runs a version's ``model.onnx`` with ONNX Runtime.

Copied as ``<model>/<version>/model.py`` into the TEST repository (``python_backend.py``):
the ``tritonserver`` inside nvidia-pytriton has only the Python backend, so this file lets it
serve the very ONNX files that production serves with Triton's ONNX Runtime backend. It is
not importable outside Triton's stub (``triton_python_backend_utils`` lives there).

Triton's dynamic batcher hands ``execute`` several requests at once; their token tensors
may have different widths, so they are zero-padded to the widest (exactly what client-side
tokenisation does within one request: padding tokens have attention 0) and run as one
ONNX Runtime call, then split back per request.
"""

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


def _pad_to(array: np.ndarray, width: int) -> np.ndarray:
    if array.ndim < 2 or array.shape[1] == width:
        return array
    padded = np.zeros((array.shape[0], width, *array.shape[2:]), dtype=array.dtype)
    padded[:, : array.shape[1]] = array
    return padded


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        version_dir = Path(args["model_repository"]) / args["model_version"]
        threads = int(config.get("parameters", {}).get("intra_op_thread_count", {}).get("string_value", "1"))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(version_dir / "model.onnx"), options,
                                            providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o["name"] for o in config["output"]]

    def execute(self, requests):
        per_request = [
            {name: pb_utils.get_input_tensor_by_name(request, name).as_numpy() for name in self.input_names}
            for request in requests
        ]
        rows = [len(feed[self.input_names[0]]) for feed in per_request]
        width = max((feed[name].shape[1] for feed in per_request for name in self.input_names
                     if feed[name].ndim >= 2), default=0)
        merged = {
            name: np.concatenate([_pad_to(feed[name], width) for feed in per_request]) for name in self.input_names
        }
        outputs = dict(zip([o.name for o in self.session.get_outputs()], self.session.run(None, merged)))
        responses, start = [], 0
        for count in rows:
            tensors = [pb_utils.Tensor(name, np.ascontiguousarray(outputs[name][start : start + count]))
                       for name in self.output_names]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start += count
        return responses

    def finalize(self):
        self.session = None
