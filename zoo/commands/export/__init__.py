"""A trained model out of the zoo: one file (ONNX or torch.export's pt2) that takes uint8 images and carries its
preprocessing, with its class names and input contract beside it, checked against the eager model."""
