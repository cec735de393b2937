"""Building blocks below everything else: activations and pooling by name, the book's initialisation, input-size
checks (``blocks``), BatchNorm written from scratch (``batchnorm``) and its form synced across processes
(``batchnorm_sync``). Imports nothing of the zoo but ``zoo_common``."""
