"""``zoo serve``: an HTTP server (LitServe) for a checkpoint, catalogue weights or an exported file."""

#: the default pixel budget: a 40-megapixel photo (phones and most cameras) and more than a thousand times the
#: 224 x 224 input of the largest model; a 9000 x 9000 PNG (81 MP) takes 20 s and 1.6 GB to decode
MAX_MEGAPIXELS = 40.0
