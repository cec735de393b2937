"""``zoo analyze``: the diagnosis, the errors, the manual review and the likely label errors of a trained model."""
