"""The ``zoo`` commands, one module each. ``COMMANDS`` is the one table of them: ``zoo.cli`` looks a command up
here and ``zoo --help`` lists it from here. A command is ``"module:function"``, the function taking the words
after the command's name; a new one is a module and a row.

Nothing is imported here: a command's module (and its extra's libraries) load only when it runs.
"""

from __future__ import annotations

from typing import NamedTuple

#: the commands LightningCLI runs (the rest are the zoo's own)
SUBCOMMANDS = ("fit", "validate", "test", "predict")


class Command(NamedTuple):
    target: str  # "module:function"
    summary: str  # `zoo --help`: what it does (and, on the lines after, an example)


COMMANDS: dict[str, Command] = {
    "fit": Command("zoo.commands.lightning:fit", "Train a model on a DataModule; logs, config.yaml, best.ckpt and "
                   "last.ckpt go to lightning_logs/<Model>-<Data>/version_N/."),
    "validate": Command("zoo.commands.lightning:validate",
                        "Evaluate a checkpoint on the validation split; the metrics go to validate_metrics.json."),
    "test": Command("zoo.commands.lightning:test",
                    "Evaluate a checkpoint on the test set; the metrics go to test_metrics.json."),
    "predict": Command("zoo.commands.lightning:predict", "Classify images (or the test set) with a checkpoint; the "
                       "results go to a new predictions.csv (--output FILE, --top_k K)."),
    "list": Command("zoo.commands.listing:main", "List the models and DataModules, one line each."),
    "weights": Command("zoo.commands.weights:main", "List the trained weights (--model.weights NAME); "
                       "`zoo weights MODEL NAME` prints one's card."),
    "reproduce": Command("zoo.commands.reproduce:main", "Retrain a trained weights file from its recipe and compare "
                         "it with its card:\nzoo reproduce MODEL NAME --data.root DIR"),
    "tune": Command("zoo.commands.tune.command:main", "Search hyperparameters (Optuna), each trial a zoo fit run:\n"
                    "zoo tune -c configs/mlp_fashion_mnist.yaml -c configs/search/lr_momentum.yaml --n_trials 8 "
                    "--trainer.max_epochs 3"),
    "export": Command("zoo.commands.export.command:main", "A checkpoint or trained weights as one ONNX or pt2 file, "
                      "checked against the eager model:\nzoo export --ckpt_path best --format onnx --data.root DIR"),
    "analyze": Command("zoo.commands.analyze.command:main", "What to do next about a trained model: bias, variance and "
                       "mismatch from its errors, the errors themselves, a review sheet, likely label errors "
                       "(pip install -e '.[analyze]'):\nzoo analyze --ckpt_path best --split val"),
    "serve": Command("zoo.commands.serve.command:main", "An HTTP server for a checkpoint, trained weights or an "
                     "exported file (pip install -e '.[serve]'):\nzoo serve --exported model.onnx; then curl -F "
                     "image=@photo.jpg http://127.0.0.1:8000/predict"),
}
