"""The ``zoo`` command's own parts: name checks, finding earlier runs, writing predictions."""
