"""Bias, variance and mismatch from the errors, read the way the course teaches it.

The gaps, in points of error: avoidable bias = training - reference (human-level, standing in for the Bayes
error); variance = train-dev - training (the train-dev set: held out of the training distribution, which the
validation split is when it is carved out of the training data); mismatch = dev - train-dev (a dev set of its
own, e.g. an image folder's val/); overfitting to the dev set = test - dev. A gap is *large* when it is at least
``min_gap`` points and at least a quarter of the largest gap: 1 % / 11 % is variance, 15 % / 16 % bias,
15 % / 30 % both. Bias is fixed first.
"""

from __future__ import annotations

#: the course's recipe for each large gap, with the zoo options that carry it out
RECIPES = {
    "avoidable bias": [
        "a bigger network (more layers or units: e.g. --model.hidden_sizes [512,256] for the MLP, or a deeper model)",
        "train longer (--trainer.max_epochs) or with a better optimizer (momentum, Adam: --optimizer)",
        "a better architecture (LeNet -> ResNet18; `zoo list`)",
        "less regularisation (--optimizer.weight_decay, --model.dropout, lighter augmentation)",
    ],
    "variance": [
        "more training data, or data augmentation (--data.hflip, --data.crop_padding, color jitter)",
        "regularisation: weight decay (--optimizer.weight_decay), dropout (--model.dropout)",
        "early stopping on the validation loss; a better architecture",
    ],
    "data mismatch": [
        "error analysis on the dev set against the train-dev set: what makes the dev images different?",
        "make the training data more like the dev data: collect more like it, or synthesise it (augmentation "
        "that imitates the difference: blur, colour, crops)",
    ],
    "overfitting to the dev set": ["a bigger dev set: the dev error was chosen on, and flatters"],
}

ORDER = ("avoidable bias", "variance", "data mismatch", "overfitting to the dev set")


def gaps(errors: dict[str, float], reference: float) -> dict[str, float]:
    """The gaps (points) that the errors present allow: errors by set name, in per cent."""
    train, out = errors["train"], {}
    out["avoidable bias"] = train - reference
    train_dev = errors.get("train_dev")
    if train_dev is not None:
        out["variance"] = train_dev - train
    dev = errors.get("dev")
    if dev is not None:
        if train_dev is not None:
            out["data mismatch"] = dev - train_dev
        else:  # no train-dev set: variance and mismatch cannot be told apart
            out["variance + data mismatch"] = dev - train
    test = errors.get("test")
    if test is not None and dev is not None:
        out["overfitting to the dev set"] = test - dev
    elif test is not None and train_dev is not None:  # no dev set of its own: the test set is the other distribution
        out["data mismatch"] = test - train_dev
    return out


def diagnose(errors: dict[str, float], reference: float = 0.0, min_gap: float = 0.5) -> dict:
    """The diagnosis: the gaps, which are large, one line, and the recipe's next steps (bias first)."""
    found = gaps(errors, reference)
    largest = max(found.values())
    large = [k for k, v in found.items() if v >= min_gap and v >= 0.25 * largest]
    if "variance + data mismatch" in large:
        large = [k for k in large if k != "variance + data mismatch"] + ["variance", "data mismatch"]
    large = [k for k in ORDER if k in large]
    if not large:
        line = (f"No large gap: every gap is under {min_gap} points; look at the errors themselves (error analysis, "
                "label issues).")
    elif large == ["avoidable bias"]:
        line = "High bias (underfitting): the training error is far above the reference error."
    elif large == ["variance"]:
        line = "High variance (overfitting): the held-out error is far above the training error."
    elif large[:2] == ["avoidable bias", "variance"]:
        line = "High bias and high variance: fix the bias first, then the variance."
    else:
        line = "Large: " + ", ".join(large) + (" (fix the bias first)" if large[0] == "avoidable bias" else "") + "."
    if "variance + data mismatch" in found:
        line += " The dev set may differ from the training data: hold out a train-dev set (--data.train_dev_size)."
    steps = [{"problem": k, "try": RECIPES[k]} for k in large]
    return {"errors": errors, "reference_error": reference, "gaps": found, "large": large, "diagnosis": line,
            "next_steps": steps}


def table(result: dict, names: dict[str, str]) -> str:
    """The short form for the screen: errors, gaps, the line and the first steps."""
    lines = ["error (%)".ljust(34) + "points"]
    lines += [f"  {names.get(k, k):<32}{v:6.2f}" for k, v in result["errors"].items() if v is not None]
    lines.append(f"  {'reference (human-level)':<32}{result['reference_error']:6.2f}")
    lines.append("gaps (points)")
    lines += [f"  {k:<32}{v:6.2f}" + ("  <- large" if k in result["large"] else "") for k, v in result["gaps"].items()]
    lines.append(result["diagnosis"])
    for step in result["next_steps"]:
        lines.append(f"Next, for {step['problem']}: " + "; ".join(step["try"][:2]))
    return "\n".join(lines)
