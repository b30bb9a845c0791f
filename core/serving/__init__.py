"""What a served model promises, one module per task: the tensors' names and shapes, the config.pbtxt Triton serves
it with, how an image becomes its input and how its outputs are read. The trainer exports models that keep it, the
gateway (through Triton or ONNX Runtime) and the tests call them through it.

- `classification`: `images` in, one probability a tag out.
- `detection`: `images` in, boxes, scores and classes out (decoding and suppression inside the model).
- `model_config`: what both share: the input's name, the config.pbtxt template, the parameter that tells them apart.
"""
