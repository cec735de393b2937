"""The zoo's trained weights: the catalogue, the files, their cards, and how each is reproduced."""
