"""The proof that an exported file answers as the model it came from: both run on the same real images, the
largest logit difference and both accuracies reported, and the file refused beyond the tolerance."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from zoo_common import ZooError

TOLERANCE = 1e-3  # on logits: float32 reorderings stay near 1e-5; a wrong transform or layer is far above


class ParityError(ZooError, RuntimeError):
    """The exported model disagrees with the eager one beyond the tolerance."""

    exit_code = 2


@dataclass
class Parity:
    inputs: int
    source: str
    max_abs_diff: float
    tolerance: float
    top1_agreement: float | None = None
    eager_accuracy: float | None = None
    exported_accuracy: float | None = None
    eager_mse: float | None = None
    exported_mse: float | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def line(self, fmt: str) -> str:
        text = f"{self.inputs} {self.source}: max |Δ{'logit' if self.top1_agreement is not None else ''}| eager vs {fmt} {self.max_abs_diff:.2e} (tolerance {self.tolerance:g})"
        if self.top1_agreement is not None:
            text += f", same top class for {self.top1_agreement:.2%}"
        if self.eager_accuracy is not None:
            text += f"; accuracy eager {self.eager_accuracy:.4f}, {fmt} {self.exported_accuracy:.4f}"
        if self.eager_mse is not None:
            text += f"; MSE eager {self.eager_mse:.6f}, {fmt} {self.exported_mse:.6f}"
        return text


def outputs_of(run, inputs: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """The first output of ``run`` on ``inputs``, batch by batch (the last batch smaller: the batch is dynamic)."""
    parts = [first(run(inputs[i : i + batch_size])) for i in range(0, len(inputs), batch_size)]
    return torch.cat(parts).float()


def first(output) -> torch.Tensor:
    return output[0] if isinstance(output, (tuple, list)) else output


def compare(eager, exported, inputs: torch.Tensor, labels: torch.Tensor | None, source: str,
            tolerance: float = TOLERANCE, classifier: bool = True) -> Parity:
    with torch.no_grad():
        ours = outputs_of(eager, inputs)
    theirs = outputs_of(exported, inputs)
    if ours.shape != theirs.shape:
        raise ParityError(f"the exported model gives outputs of shape {tuple(theirs.shape)}, the eager one "
                          f"{tuple(ours.shape)}")
    diff = float((ours - theirs).abs().max()) if len(ours) else 0.0
    if not torch.isfinite(theirs).all():
        diff = float("inf")
    report = Parity(inputs=len(inputs), source=source, max_abs_diff=diff, tolerance=tolerance)
    if classifier:
        report.top1_agreement = float((ours.argmax(1) == theirs.argmax(1)).float().mean())
        if labels is not None:
            report.eager_accuracy = float((ours.argmax(1) == labels).float().mean())
            report.exported_accuracy = float((theirs.argmax(1) == labels).float().mean())
    elif labels is not None:
        report.eager_mse = float(((ours.view(-1) - labels) ** 2).mean())
        report.exported_mse = float(((theirs.view(-1) - labels) ** 2).mean())
    return report


def check(report: Parity, fmt: str) -> None:
    if not report.max_abs_diff <= report.tolerance:  # also NaN
        raise ParityError(f"the {fmt} file disagrees with the eager model: {report.line(fmt)}; nothing was written. "
                          "Report it with the command, or raise --tolerance if the difference is acceptable")
