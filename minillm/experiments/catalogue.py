"""The methods the report knows: each one's label, family, training data by source, and its role
(the baseline, a control arm, a reference row); the metrics it reads and the order of rows."""
from __future__ import annotations

import re
from dataclasses import dataclass

# Where the tokens a method trains on come from.
SOURCES = ("gold", "teacher-written", "rollout", "pretraining")
GOLD_LABELS = (("label", "gold"),)


@dataclass(frozen=True)
class Method:
    label: str
    family: str
    init: str
    objective: str
    data: str  # who wrote what the method learns from
    streams: tuple[tuple[str, str], ...] = ()  # (training stream, its source in SOURCES)
    init_method: str | None = None  # the method whose student this one continues


def _kd(divergence: str, label: str) -> Method:
    return Method(f"KD ({label})", "white-box", "random init",
                  f"(1 − r)·CE on gold responses + r·token-level {label} to the teacher's distribution",
                  "gold labels + the teacher's token distribution", GOLD_LABELS)


_PRETRAINING = (("pretraining", "pretraining"),)
_MINILLM_STREAMS = (("rollout", "rollout"),) + _PRETRAINING
_GOLD_AND_OWN_SAMPLES = GOLD_LABELS + _MINILLM_STREAMS  # GKD, DistiLLM
_DSS_TEACHER_STREAMS = (("label", "teacher-written"), ("rationale", "teacher-written"))

# Report rows follow this order; unknown keys come after, labelled by their key.
METHODS: dict[str, Method] = {
    "teacher": Method("Teacher", "teacher", "the preset's teacher checkpoint",
                      "cross-entropy on the gold responses (the model every student distils from)",
                      "gold labels", GOLD_LABELS),
    "dss-teacher": Method("DSS teacher", "teacher", "the SFT teacher",
                          "cross-entropy on rationale + answer targets: writes the rationales and labels "
                          "the step-by-step students learn from",
                          "gold labels + gold rationales (two tasks)", (("label", "gold"), ("rationale", "gold"))),
    "untrained": Method("Untrained student", "reference", "random init (the first training seed's student init)",
                        "nothing: the students' common starting point", "none"),
    "sft": Method("SFT", "baseline", "random init", "cross-entropy on the gold responses", "gold labels",
                  GOLD_LABELS),
    "kd-forward_kl": _kd("forward_kl", "forward KL"),
    "kd-reverse_kl": _kd("reverse_kl", "reverse KL"),
    "kd-symmetric_kl": _kd("symmetric_kl", "symmetric KL"),
    "kd-js_divergence": _kd("js_divergence", "JS divergence"),
    "kd-total_variation": _kd("total_variation", "total variation"),
    "kd-skew_forward_kl": _kd("skew_forward_kl", "skew forward KL"),
    "kd-skew_reverse_kl": _kd("skew_reverse_kl", "skew reverse KL"),
    "kd-adaptive_kl": _kd("adaptive_kl", "adaptive KL"),
    "seqkd": Method("SeqKD", "black-box", "random init", "cross-entropy on the teacher's sampled responses",
                    "labels written by the SFT teacher", (("label", "teacher-written"),)),
    "sft-continued": Method("SFT (continued)", "control arm", "the SFT student",
                            "cross-entropy on the gold responses + MiniLLM's pretraining term on the same chunks, "
                            "for exactly the steps MiniLLM adds",
                            "gold labels (the SFT data again) + the pretraining corpus",
                            GOLD_LABELS + _PRETRAINING, "sft"),
    "minillm": Method("MiniLLM", "white-box", "the SFT student",
                      "reverse KL to the teacher at the sequence level (policy gradient on its own samples) "
                      "+ a pretraining language-modelling loss",
                      "its own rollouts scored by the SFT teacher + the pretraining corpus", _MINILLM_STREAMS, "sft"),
    "minillm-lmops": Method("MiniLLM (LMOps whitening)", "white-box", "the SFT student",
                            "MiniLLM with LMOps' advantage whitening (--whiten reference: per mini-batch, over every "
                            "response slot, padding included)",
                            "its own rollouts scored by the SFT teacher + the pretraining corpus", _MINILLM_STREAMS, "sft"),
    "opd": Method("On-policy distillation", "white-box", "the SFT student",
                  "policy gradient on its own samples with per-token advantage log p − log q (γ 0, no clipping, "
                  "one step per collection) + MiniLLM's pretraining term",
                  "its own rollouts scored by the SFT teacher + the pretraining corpus", _MINILLM_STREAMS, "sft"),
    "gkd": Method("GKD", "white-box", "the SFT student",
                  "generalised JSD (β 0.5) to the teacher's distribution, on its own samples in half of the steps "
                  "(λ 0.5) and on the gold responses in the others + MiniLLM's pretraining term",
                  "gold labels + its own samples, scored by the SFT teacher's distribution + the pretraining corpus",
                  _GOLD_AND_OWN_SAMPLES, "sft"),
    "distillm": Method("DistiLLM", "white-box", "the SFT student",
                       "skew forward KL (α 0.1) to the teacher's distribution, on the gold responses and, with a "
                       "probability raised whenever the validation loss rises, on its own samples through a replay "
                       "buffer + MiniLLM's pretraining term",
                       "gold labels + its own samples, scored by the SFT teacher's distribution + the pretraining "
                       "corpus", _GOLD_AND_OWN_SAMPLES, "sft"),
    "dss": Method("DSS", "step-by-step, black-box", "random init",
                  "cross-entropy on the teacher's labels + α · cross-entropy on its rationales "
                  "(two task-prefixed streams)",
                  "labels and rationales written by the DSS teacher in one pass", _DSS_TEACHER_STREAMS),
    "dss-gold": Method("DSS (gold labels)", "step-by-step, black-box", "random init",
                       "the DSS streams with gold labels instead of the teacher's (the paper's third arm)",
                       "gold labels + rationales written by the DSS teacher",
                       (("label", "gold"), ("rationale", "teacher-written"))),
    "dss-kd": Method("DSS-KD", "step-by-step × white-box", "random init",
                     "the DSS streams with the token-level KD loss to the DSS teacher's distribution",
                     "gold labels + gold rationales + the DSS teacher's token distribution",
                     (("label", "gold"), ("rationale", "gold"))),
    "dss-continued": Method("DSS (continued)", "control arm", "the DSS student",
                            "the DSS objective + DSS-MiniLLM's pretraining term on the same chunks, for exactly "
                            "the steps DSS-MiniLLM adds",
                            "the DSS data again (labels and rationales written by the DSS teacher) + the "
                            "pretraining corpus", _DSS_TEACHER_STREAMS + _PRETRAINING, "dss"),
    "dss-minillm": Method("DSS-MiniLLM", "step-by-step × white-box", "the DSS student",
                          "MiniLLM's sequence-level reverse KL, starting from the DSS student",
                          "its own rollouts on both tasks' prompts scored by the DSS teacher + the pretraining "
                          "corpus", _MINILLM_STREAMS, "dss"),
}
BASELINE = "sft"
# (method, its control arm): the control trains the same init for the same extra steps.
CONTROLS = {"minillm": "sft-continued", "minillm-lmops": "sft-continued", "opd": "sft-continued", "gkd": "sft-continued",
            "distillm": "sft-continued", "dss-minillm": "dss-continued"}
REFERENCE_FAMILIES = ("teacher", "reference")  # rows that are not students under test
MAJORITY_LABEL = "Majority answer"
# evaluate.py's per-set (and per-family) metrics; "accuracy" is the sampled accuracy of old summaries.
METRICS = ("rougeL", "exact_match", "accuracy_strict", "accuracy_flexible", "distinct_per_prompt", "coverage",
           "accuracy")
METRIC_LABELS = {"rougeL": "Rouge-L", "exact_match": "Exact match", "accuracy_strict": "Accuracy strict",
                 "accuracy_flexible": "Accuracy flexible", "distinct_per_prompt": "Distinct answers per prompt",
                 "coverage": "Coverage", "accuracy": "Accuracy (sampled, old summary)"}
# A metric that is one value per run, not one per generation seed: where that value comes from.
SINGLE_VALUE_SOURCE = {"accuracy_strict": "greedy", "accuracy_flexible": "greedy",
                       "distinct_per_prompt": "over generation seeds", "coverage": "over generation seeds"}
COMPARED_METRICS = ("rougeL", "accuracy_strict")
TEACHER_ACCURACY_TARGET = 80.0


def method_info(key: str) -> Method:
    return METHODS.get(key) or Method(key, "unknown", "unknown", "not in minillm.experiments.catalogue.METHODS", "unknown")


def training_set(key: str) -> str | None:
    """Which of the driver's data sources (driver.json "data_sources") a method trains on: the
    step-by-step rows for the DSS teacher and arms, the instruction data for the others."""
    if key not in METHODS or key == "untrained":
        return None
    return "step-by-step" if key.startswith("dss") else "instruction"


def method_order(keys) -> list[str]:
    known = [key for key in METHODS if key in keys]
    return known + sorted(set(keys) - set(METHODS))


def run_order(runs) -> list[str]:
    """"init" first, then training seeds by number ("seed2" before "seed10"), then anything else."""
    def sort_key(run: str):
        match = re.fullmatch(r"seed(\d+)", run)
        return (0, 0, "") if run == "init" else (1, int(match.group(1)), "") if match else (2, 0, run)
    return sorted(runs, key=sort_key)


def is_training_seed(run: str) -> bool:
    return re.fullmatch(r"seed\d+", run) is not None
