"""``zoo serve``: an HTTP server (LitServe) for a checkpoint, catalogue weights or an exported file."""
