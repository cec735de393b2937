"""``zoo SUBCOMMAND --help``: what can be chosen and the zoo's own options, in the zoo's words.

The full listing (every Trainer option, from Lightning's signatures) stays one word away: ``--help all``.
"""

from __future__ import annotations

from zoo_common import get_datamodule, get_model, list_datamodules, list_models

TEXT = """usage: zoo {sub} [-c CONFIG.yaml] [--model NAME] [--data NAME] [--OPTION VALUE ...]

{what}

Choose (short class names; `zoo list` describes each):
  --model NAME              {models}
  --data NAME               {datamodules}
  -c, --config FILE         a YAML config (configs/*.yaml); the command line overrides it, in any order

The zoo's options:
  --ckpt_path PATH|best|last
                            a checkpoint to {ckpt}; `best` / `last` find the newest best.ckpt / last.ckpt
                            of the chosen model on the chosen data under lightning_logs/ (with none chosen:
                            the newest run). A checkpoint names its model and DataModule with their options,
                            so nothing else is needed.{only}
  --optimizer NAME          any torch.optim optimizer (default SGD, --optimizer.lr 0.1)
  --lr_scheduler NAME       any torch.optim.lr_scheduler scheduler (default none)
  --seed_everything N       the run's seed (default 0; true for a random one)
  --print_config            print the full resolved config and stop

More:
  --model.help NAME         one model's options (--model.OPTION VALUE)
  --data.help NAME          one DataModule's options (--data.OPTION VALUE)
  --trainer.OPTION VALUE    any Lightning Trainer option, e.g. --trainer.max_epochs 10,
                            -c configs/trainer/gpu.yaml or ddp.yaml or ddp_cpu.yaml (the presets)
  zoo {sub} --help all{pad}every option, the Trainer's included (long)
"""

WHAT = {
    "fit": "Train a model on a DataModule; logs, config.yaml, best.ckpt and last.ckpt go to lightning_logs/<Model>-<Data>/version_N/.",
    "validate": "Evaluate a checkpoint on the validation split; the metrics go to validate_metrics.json.",
    "test": "Evaluate a checkpoint on the test set; the metrics go to test_metrics.json.",
    "predict": "Classify images (or the test set) with a checkpoint; the results go to a new predictions.csv (--output FILE, --top_k K).",
}

ONLY = {
    "fit": """
  --checkpoint_every_n_steps N
                            also write last.ckpt every N training steps, so a killed run loses at most
                            N steps (default 0: at the end of each epoch only)""",
    "predict": """
  --data.predict_path PATH  an image file or a folder of images to classify (PNG, JPEG, any size); one
                            CSV row per file. Without it the test set is classified.""",
}


def short_help(subcommand: str) -> str:
    return TEXT.format(
        sub=subcommand, what=WHAT[subcommand], models=", ".join(list_models()), datamodules=", ".join(list_datamodules()),
        ckpt={"fit": "resume from", "predict": "predict with"}.get(subcommand, "evaluate"), only=ONLY.get(subcommand, ""),
        pad=" " * (26 - len(f"  zoo {subcommand} --help all")),
    )


def catalogue() -> str:
    """``zoo list``: every model and DataModule with the first line of its docstring."""
    parts = []
    for title, names, get in (("Models (--model)", list_models(), get_model),
                              ("DataModules (--data)", list_datamodules(), get_datamodule)):
        width = max(map(len, names))
        parts += [title] + [f"  {n:<{width}}  {((get(n).__doc__ or '').strip().splitlines() or [''])[0]}" for n in names]
    return "\n".join(parts)
