"""The training core: the LightningModules every network builds on, fine-tuning, callbacks, checkpoint IO."""
