"""SFT with extra weight on each label's first token: the call-or-text decision (train.sft_decision_weight).

A label's first token decides what the reply is: `[` opens a call list (prompt mode), a text label's
opening (`I`, core/seeds) answers without one. Under trl's token-mean loss that decision is one token
among the 30-140 of a call label and the 15-25 of a refusal, so most of the gradient teaches argument
spelling and little teaches when to call. `sft_decision_weight = w` multiplies the loss of every label's
first token by w and leaves the divisor (the batch's label tokens) as it is: the decision's gradient grows
w-fold, every other token's stays trl's.

    DecisionWeightedSFTTrainer(..., decision_weight=w)   trl's SFTTrainer (its own loss when w == 1)
    first_label_positions(label_mask) -> bool mask of the first labelled position of each row

The subclass computes the loss from trl's fused LM head outputs (per-token log-probabilities of the
labels, `fused_lm_head=True`), the same outputs trl's own SFT loss uses; trl's entropy and token-accuracy
metrics are not logged in that mode.
"""
from __future__ import annotations

import torch
from trl import SFTTrainer


def first_label_positions(label_mask: torch.Tensor) -> torch.Tensor:
    """True where a row's labelled span starts: labelled, and the position before it is not (or it is
    the row's first position). One span per row in SFT rows (the completion), so one True per row."""
    before = torch.nn.functional.pad(label_mask[:, :-1], (1, 0), value=False)
    return label_mask & ~before


class DecisionWeightedSFTTrainer(SFTTrainer):
    """trl's SFTTrainer whose loss weighs each label's first token `decision_weight` times (1: trl's own)."""

    def __init__(self, *args, decision_weight: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.decision_weight = decision_weight

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.decision_weight == 1:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        inputs["use_cache"] = False
        outputs = model(**inputs, fused_lm_head=True)
        mask = outputs.label_mask
        weights = 1.0 + (self.decision_weight - 1.0) * first_label_positions(mask).to(outputs.log_probs.dtype)
        num_tokens = mask.sum() if num_items_in_batch is None else num_items_in_batch
        loss = (-outputs.log_probs * weights).sum() / torch.as_tensor(num_tokens).clamp(min=1)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes  # as trl: DDP averages the ranks' gradients
        return (loss, outputs) if return_outputs else loss
