"""How much of what the judge sees survives the VQ round trip: a ceiling on edit success in decoded images.

The model's own what-if image is decoded from image tokens, outside the edited region too. When the finding
classifier cannot tell a finding in the original's reconstruction (encode, decode, nothing resampled), no edit
of the tokens can show it added or removed to that classifier in a decoded image, whatever the sampler does.
(The app shows the original plus the model's change, engines.counterfactual.composite, which keeps what the
decoder loses outside the change; this ceiling is about the change itself.) So the evaluation reports,
per finding, the classifier's val AUROC on the original images next to its AUROC on their reconstructions,
and the mean probability it gives the positives in each.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def reconstruction_ceiling(pipeline, classifier, samples: Sequence) -> dict[str, dict[str, float]]:
    """Per classifier finding with positives and negatives among `samples` (load_image() and findings):
    {"auroc_original", "auroc_reconstruction", "p_original", "p_reconstruction"} (p: mean over positives)."""
    from sklearn.metrics import roc_auc_score

    from engines.pipeline import prepare_image

    if not samples:
        raise ValueError("no images to measure the reconstruction ceiling on")
    originals, recons = [], []
    for s in samples:
        im = prepare_image(np.asarray(s.load_image()), pipeline.image_size)  # as run_whatif prepares its image
        originals.append(im)
        recons.append(pipeline.decode_tokens(pipeline.encode_image(im)))
    p_orig, p_rec = classifier.predict(originals), classifier.predict(recons)
    out: dict[str, dict[str, float]] = {}
    for j, f in enumerate(classifier.findings):
        y = np.array([1 if s.findings.get(f) == 1 else 0 for s in samples])
        if not 0 < y.sum() < len(y):
            continue
        out[f] = {"auroc_original": float(roc_auc_score(y, p_orig[:, j])),
                  "auroc_reconstruction": float(roc_auc_score(y, p_rec[:, j])),
                  "p_original": float(p_orig[y == 1, j].mean()), "p_reconstruction": float(p_rec[y == 1, j].mean())}
    return out


def markdown(ceiling: dict[str, dict[str, float]]) -> str:
    lines = ["| finding | judge AUROC, originals | judge AUROC, VQ reconstructions | mean p of positives, originals "
             "-> reconstructions |", "|---|---:|---:|---|"]
    for f, c in ceiling.items():
        lines.append(f"| {f} | {c['auroc_original']:.3f} | {c['auroc_reconstruction']:.3f} | "
                     f"{c['p_original']:.3f} -> {c['p_reconstruction']:.3f} |")
    return "\n".join(lines)
