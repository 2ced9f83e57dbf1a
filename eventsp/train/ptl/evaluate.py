"""Test-set measurements of PTL networks and the classic conversion baseline.

- ``snn_metrics(model, x, y)``: accuracy of the fully spiking network (the exact simulation
  the runtime reproduces), spike-driven synaptic operations per image and the input layer's
  multiply-accumulates.
- ``ann_accuracy(model, x, y)``: the ANN (every layer ReLU, batch norm) on the same images.
- ``classic_conversion(ann, calib_x, T)``: the same ANN converted the classic way: batch norm
  folded, every threshold set at once from the ANN's activations (99.9th percentile,
  data-based normalisation), rate coding over ``T`` steps, no tandem fine-tuning.
- ``synops_ratio_at_equal_accuracy(snn, classic)``: the synops of the first classic run that
  reaches the SNN's accuracy, over the SNN's.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from eventsp.train.ptl.network import TandemNet
from eventsp.train.ptl.trainer import calibrate, psnr, to_float


@dataclass(frozen=True)
class SNNMetrics:
    accuracy: float
    synops_per_image: float  # spikes x nonzero fan-out, summed over layers and steps
    input_macs_per_image: float  # the analog first layer (T x its dense MACs)
    spikes_per_image: float
    T: int

    def as_dict(self) -> dict[str, float]:
        return {
            "accuracy": self.accuracy,
            "synops_per_image": self.synops_per_image,
            "input_macs_per_image": self.input_macs_per_image,
            "spikes_per_image": self.spikes_per_image,
            "T": self.T,
        }


@torch.no_grad()
def snn_metrics(model: TandemNet, x: np.ndarray, y: np.ndarray, batch: int = 500) -> SNNMetrics:
    """Run the exact spiking simulation on uint8 images ``x`` (N, C, H, W)."""
    model.eval()
    correct, synops, spikes, macs = 0, 0.0, 0.0, 0.0
    for i in range(0, len(x), batch):
        rec = model.simulate(to_float(torch.from_numpy(x[i : i + batch])))
        correct += int((rec.logits.argmax(1).numpy() == y[i : i + batch]).sum())
        synops += float(rec.synops.sum())
        spikes += float(sum(c.sum() for c in rec.counts))
        macs = rec.input_macs
    n = len(x)
    return SNNMetrics(correct / n, synops / n, macs, spikes / n, model.T)


@torch.no_grad()
def reconstruction_psnr(model: TandemNet, x: np.ndarray, batch: int = 500) -> dict[str, float]:
    """PSNR (dB) of an autoencoder's reconstructions: its ANN pass if no layer is converted,
    else the exact spiking simulation (readout = mean current over T)."""
    model.eval()
    spiking = any(bool(layer.spiking) for layer in model.layers)
    se, synops = 0.0, 0.0
    for i in range(0, len(x), batch):
        xb = to_float(torch.from_numpy(x[i : i + batch]))
        if spiking:
            rec = model.simulate(xb)
            out = rec.logits * rec.output_scale
            synops += float(rec.synops.sum())
        else:
            out = model(xb)
        se += float(((out - xb.flatten(1)) ** 2).mean(1).sum())
    return {"psnr_db": psnr(se / len(x)), "synops_per_image": synops / len(x)}


@torch.no_grad()
def ann_accuracy(model: TandemNet, x: np.ndarray, y: np.ndarray, batch: int = 500) -> float:
    """Accuracy of ``model`` as an ANN (it must not have converted layers)."""
    if any(bool(layer.spiking) for layer in model.layers):
        raise ValueError("ann_accuracy needs the ANN (ann.pt), not a converted network")
    model.eval()
    correct = 0
    for i in range(0, len(x), batch):
        logits = model(to_float(torch.from_numpy(x[i : i + batch])))
        correct += int((logits.argmax(1).numpy() == y[i : i + batch]).sum())
    return correct / len(x)


def classic_conversion(ann: TandemNet, calib_x: np.ndarray, T: int) -> TandemNet:
    """A copy of the ANN converted without tandem learning, simulated for ``T`` steps."""
    snn = copy.deepcopy(ann)
    snn.T = int(T)
    hidden = [layer for layer in snn.layers if not layer.readout]
    for layer in hidden:
        layer.fold_batch_norm()
    thresholds = [calibrate(snn, k, calib_x) for k in range(len(hidden))]
    for layer, thr in zip(hidden, thresholds, strict=True):
        layer.threshold.fill_(thr)
        layer.spiking.fill_(True)
        layer.frozen.fill_(True)
    return snn


def synops_ratio_at_equal_accuracy(
    snn: dict[str, float], classic: list[dict[str, float]]
) -> dict[str, float] | None:
    """Classic conversion against the PTL network at equal accuracy: the classic run with the
    fewest time steps whose accuracy reaches the SNN's, and its synops (spikes x nonzero
    fan-out, the analog input layer excluded) over the SNN's. None if no classic run reaches
    the SNN's accuracy. ``ratio_with_input`` also counts the input layer's T x dense MACs."""
    reached = [c for c in classic if c["accuracy"] >= snn["accuracy"]]
    if not reached:
        return None
    c = min(reached, key=lambda r: r["T"])
    with_input = (c["synops_per_image"] + c["input_macs_per_image"]) / (
        snn["synops_per_image"] + snn["input_macs_per_image"]
    )
    return {
        "classic_T": c["T"],
        "classic_accuracy": c["accuracy"],
        "ratio": c["synops_per_image"] / snn["synops_per_image"],
        "ratio_with_input": with_input,
    }
