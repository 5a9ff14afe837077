"""The method registry: every arm of the comparison, declared once.

The driver (`plan.py`: which stages an arm needs and how each is launched), its checks
(`preflight.py`: the names METHODS may hold, the teacher an arm needs), the report (`comparison`,
`rendering`: labels, families, data by source, control arms) and the README's methods table
(`python -m minillm.experiments.methods --markdown`) all read `METHODS`. Adding an arm is one
entry here (+ its objective or step component, its launcher script and tests).

An arm's stage is built from its entry: a fresh student init per training seed or the student of
the arm it `continues`; a `recipe` (the optimizer budget it shares with others: `student` = the
token-level students' epochs and learning rate, `continued` = the on-policy arms' steps, batch,
learning rate and corpus term through train_kd.py, `on-policy` = the same through
train_minillm.py); the `teacher` it reads; the processed data it `trains_on`; and its own stage
variables (`variables`) and flags (`extra_args`).
"""
from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from minillm.recipes import DISTILLM, GKD, REFERENCE_RECIPES

# Where the tokens a method trains on come from.
SOURCES = ("gold", "teacher-written", "rollout", "pretraining")
GOLD_LABELS = (("label", "gold"),)
_PRETRAINING = (("pretraining", "pretraining"),)
_ROLLOUTS = (("rollout", "rollout"),)
_MINILLM_STREAMS = _ROLLOUTS + _PRETRAINING
_GOLD_AND_OWN_SAMPLES = GOLD_LABELS + _MINILLM_STREAMS  # GKD, DistiLLM
_DSS_TEACHER_STREAMS = (("label", "teacher-written"), ("rationale", "teacher-written"))

# What an arm's stage reads, by name (plan.py turns each into processed folders).
TRAINING_DATA = ("instruction", "seqkd", "prompts", "dss", "dss-black-box", "dss-gold", "dss-prompts")
RECIPES = ("student", "continued", "on-policy")
# The divergences of word-level KD (minillm/losses.py DIVERGENCES), each one KD arm: "kd-<divergence>".
KD_DIVERGENCES = {"forward_kl": "forward KL", "reverse_kl": "reverse KL", "symmetric_kl": "symmetric KL",
                  "js_divergence": "JS divergence", "total_variation": "total variation",
                  "skew_forward_kl": "skew forward KL", "skew_reverse_kl": "skew reverse KL",
                  "adaptive_kl": "adaptive KL", "alpha_beta": "α-β divergence"}
PRIMARY_KD_DIVERGENCE = "forward_kl"  # KD's primary arm; the other divergences are exploratory


@dataclass(frozen=True)
class Method:
    label: str
    family: str
    init: str  # in words, for the report
    objective: str
    data: str  # who wrote what the method learns from
    streams: tuple[tuple[str, str], ...] = ()  # (training stream, its source in SOURCES)
    continues: str | None = None  # the arm whose student this one trains further (None: a fresh init)
    control: str | None = None  # its matched control arm: the same init and budget without what it adds
    also_compared_with: tuple[str, ...] = ()  # further control arms, compared as exploratory
    launcher: str | None = None  # the stage script (None: not one of the driver's per-seed arms)
    entrypoint: str | None = None  # the Python program the launcher runs
    recipe: str = "student"
    teacher: str | None = None  # "teacher" or "dss-teacher": the model it distils from
    trains_on: str = "instruction"
    label_only: bool = False  # step-by-step data: the label task alone, without the rationale stream
    token_matched: bool = False  # label_only, for as many tokens as the label and rationale tasks (more steps)
    cross_tokenizer: str | None = None  # "uld" / "aligned": its teacher terms read the text in the teacher's tokenizer
    corpus_term: bool = False  # the pretraining term of its recipe (on-policy and continued recipes)
    variables: Callable[..., dict[str, object]] | None = None  # settings → its own stage variables
    extra_args: tuple[str, ...] = ()  # entrypoint flags beside the launcher's variables
    # A peer's reference recipe (minillm.recipes.REFERENCE_RECIPES): its flags come after the
    # launcher's, so the authors' values replace the controlled recipe's (scaled on the tiny preset).
    reference: str | None = None
    # (flag dest, value) pairs after the reference recipe's flags: a control arm that keeps the recipe and
    # drops what the method adds (e.g. kd_ratio 0: cross-entropy instead of the divergence).
    reference_changes: tuple[tuple[str, object], ...] = ()
    default: bool = True  # in the default METHODS
    group: str | None = None  # "kd": METHODS=kd selects the KD_LOSSES members
    training_set: str = "instruction"  # driver.json's data source: "instruction" or "step-by-step"
    # Its comparisons with SFT and with its control are in the declared primary family (Holm-adjusted,
    # minillm.experiments.comparison.declared_comparisons); False: exploratory (control arms, variants).
    primary: bool = True

    @property
    def init_method(self) -> str | None:
        return self.continues

    @property
    def needs_shared_tokenizer(self) -> bool:
        """It compares teacher and student token by token (a teacher's distribution, or the corpus
        term's KD to it): only with TEACHER_TOKENIZER = TOKENIZER."""
        return (self.teacher is not None or self.corpus_term) and self.cross_tokenizer is None


def _kd(divergence: str, label: str) -> Method:
    return Method(f"KD ({label})", "white-box", "random init",
                  f"(1 − r)·CE on gold responses + r·token-level {label} to the teacher's distribution",
                  "gold labels + the teacher's token distribution", GOLD_LABELS,
                  launcher="scripts/kd/kd_base.sh", entrypoint="train_kd.py", teacher="teacher", group="kd",
                  primary=divergence == PRIMARY_KD_DIVERGENCE,
                  variables=lambda s, d=divergence: {"KD_LOSS": d, "KD_RATIO": s.kd_ratio, "KD_ARGS": s.kd_args})


def _reference(key: str, objective: str, data: str, streams, launcher: str) -> Method:
    """A peer's reference recipe as an opt-in arm: it continues the SFT student, has no matched
    control (the authors' steps, batch and corpus term differ from MiniLLM's), so its rows are
    exploratory; the corpus term is on exactly when the authors have one."""
    recipe = REFERENCE_RECIPES[key]
    on_policy = recipe.entrypoint == "train_minillm.py"
    epoch_based = recipe.flags.get("epochs") is not None  # DistiLLM's and ABKD's: their own optimizer and epochs
    return Method(recipe.label, "white-box", "the SFT student", objective, data, streams, continues="sft",
                  control=REFERENCE_CONTROL if epoch_based else None,
                  launcher=launcher, entrypoint=recipe.entrypoint, recipe="on-policy" if on_policy else "continued",
                  teacher="teacher", trains_on="prompts" if on_policy else "instruction", corpus_term=recipe.uses_corpus,
                  default=False, primary=False, reference=key,
                  variables=lambda s, corpus=int(recipe.uses_corpus): {"PTX": corpus})


# The epoch-based reference recipes' control arm: ABKD's recipe with cross-entropy on the gold responses in
# place of the divergence, so a reference row's gain splits into the recipe's extra training and the
# distillation. It matches DistiLLM's recipe too where a preset scales both alike (tiny: the preset's rate,
# batch and epochs); at the authors' scale DistiLLM's batch is 128, ABKD's 32.
REFERENCE_CONTROL = "sft-continued-ref"


_ON_POLICY = {"launcher": "scripts/minillm/train_base_xl.sh", "entrypoint": "train_minillm.py", "recipe": "on-policy",
              "teacher": "teacher", "trains_on": "prompts", "corpus_term": True, "continues": "sft",
              "control": "sft-continued"}
_CONTINUED = {"entrypoint": "train_kd.py", "recipe": "continued", "teacher": "teacher", "corpus_term": True,
              "continues": "sft"}

_SFT_CONTINUED = Method("SFT (continued)", "control arm", "the SFT student",
                        "cross-entropy on the gold responses + MiniLLM's pretraining term on the same chunks, "
                        "for exactly the steps MiniLLM adds",
                        "gold labels (the SFT data again) + the pretraining corpus",
                        GOLD_LABELS + _PRETRAINING, launcher="scripts/sft/sft_continued.sh", **_CONTINUED,
                        primary=False)

_DSS_CONTINUED = Method("DSS (continued)", "control arm", "the DSS student",
                        "the DSS objective + DSS-MiniLLM's pretraining term on the same chunks, for exactly "
                        "the steps DSS-MiniLLM adds",
                        "the DSS data again (labels and rationales written by the DSS teacher) + the "
                        "pretraining corpus", _DSS_TEACHER_STREAMS + _PRETRAINING,
                        launcher="scripts/sft/sft_continued.sh",
                        **{**_CONTINUED, "teacher": "dss-teacher", "continues": "dss"},
                        trains_on="dss-black-box", training_set="step-by-step", primary=False)


def _at_students_rate(control: Method) -> Method:
    """A control arm at STUDENT_LR instead of the on-policy arm's rate, which may be too low for
    continued training by cross-entropy; opt-in, compared with its on-policy arm as exploratory."""
    return replace(control, label=f"{control.label[:-1]}, student LR)",
                   objective=f"{control.label} at the token-level students' learning rate", default=False,
                   variables=lambda s: {"LR": s.student_lr})


# Report rows follow this order; unknown keys come after, labelled by their key.
METHODS: dict[str, Method] = {
    "teacher": Method("Teacher", "teacher", "the preset's teacher checkpoint",
                      "cross-entropy on the gold responses (the model every student distils from)",
                      "gold labels", GOLD_LABELS),
    "dss-teacher": Method("DSS teacher", "teacher", "the SFT teacher",
                          "cross-entropy on rationale + answer targets: writes the rationales and labels "
                          "the step-by-step students learn from",
                          "gold labels + gold rationales (two tasks)", (("label", "gold"), ("rationale", "gold")),
                          training_set="step-by-step"),
    "untrained": Method("Untrained student", "reference", "random init (the first training seed's student init)",
                        "nothing: the students' common starting point", "none"),
    "sft": Method("SFT", "baseline", "random init", "cross-entropy on the gold responses", "gold labels",
                  GOLD_LABELS, launcher="scripts/gpt2/sft/sft_base.sh", entrypoint="train_sft.py"),
    **{f"kd-{divergence}": _kd(divergence, label) for divergence, label in KD_DIVERGENCES.items()},
    "seqkd": Method("SeqKD", "black-box", "random init", "cross-entropy on the teacher's sampled responses",
                    "labels written by the SFT teacher", (("label", "teacher-written"),),
                    launcher="scripts/seqkd/seqkd_base.sh", entrypoint="train_sft.py", trains_on="seqkd"),
    "sft-continued": _SFT_CONTINUED,
    "sft-continued-student-lr": _at_students_rate(_SFT_CONTINUED),
    "minillm": Method("MiniLLM", "white-box", "the SFT student",
                      "reverse KL to the teacher at the sequence level (policy gradient on its own samples) "
                      "+ a pretraining language-modelling loss",
                      "its own rollouts scored by the SFT teacher + the pretraining corpus", _MINILLM_STREAMS,
                      **_ON_POLICY, also_compared_with=("sft-continued-student-lr",)),
    "minillm-lmops": Method("MiniLLM (LMOps whitening)", "white-box", "the SFT student",
                            "MiniLLM with LMOps' advantage whitening (--whiten reference: per mini-batch, over every "
                            "response slot, padding included)",
                            "its own rollouts scored by the SFT teacher + the pretraining corpus", _MINILLM_STREAMS,
                            **_ON_POLICY, extra_args=("--whiten", "reference"), default=False, primary=False),
    "opd": Method("On-policy distillation", "white-box", "the SFT student",
                  "policy gradient on its own samples with per-token advantage log p − log q (γ 0, no clipping, "
                  "one step per collection) + MiniLLM's pretraining term",
                  "its own rollouts scored by the SFT teacher + the pretraining corpus", _MINILLM_STREAMS,
                  **{**_ON_POLICY, "launcher": "scripts/opd/opd_base.sh"}, default=False,
                  variables=lambda s: {"NUM_ROLLOUTS": s.mini_batch, "PPO_EPOCHS": 1, "TEACHER_MIX_ALPHA": 0}),
    "gkd": Method("GKD", "white-box", "the SFT student",
                  "generalised JSD (β 0.5) to the teacher's distribution, on its own samples in half of the steps "
                  "(λ 0.5) and on the gold responses in the others + MiniLLM's pretraining term",
                  "gold labels + its own samples, scored by the SFT teacher's distribution + the pretraining corpus",
                  _GOLD_AND_OWN_SAMPLES, launcher="scripts/gkd/gkd_base.sh", **_CONTINUED, control="sft-continued",
                  default=False, variables=lambda s: {"KD_RATIO": GKD["kd_ratio"], "GKD_LAMBDA": s.gkd_lambda,
                                                      "GKD_OFF_POLICY": s.gkd_off_policy}),
    "distillm": Method("DistiLLM", "white-box", "the SFT student",
                       "skew forward KL (α 0.1) to the teacher's distribution, on the gold responses and, with a "
                       "probability raised whenever the validation loss rises, on its own samples through a replay "
                       "buffer + MiniLLM's pretraining term",
                       "gold labels + its own samples, scored by the SFT teacher's distribution + the pretraining "
                       "corpus", _GOLD_AND_OWN_SAMPLES, launcher="scripts/distillm/distillm_base.sh", **_CONTINUED,
                       control="sft-continued", default=False,
                       variables=lambda s: {"KD_RATIO": DISTILLM["kd_ratio"], "SGO_LOSS_EPS": s.sgo_loss_eps,
                                            "SGO_CAPACITY": s.sgo_capacity}),
    REFERENCE_CONTROL: replace(
        _reference("abkd-ref", "cross-entropy on the gold responses with ABKD's reference recipe (lr, cosine, "
                   "epochs, batch, corpus CE; on tiny also DistiLLM's): their rows' control", "gold labels (the SFT data again) + "
                   "the pretraining corpus (CE)", GOLD_LABELS + _PRETRAINING, "scripts/sft/sft_continued.sh"),
        label="SFT (continued, reference recipe)", family="control arm", control=None,
        reference_changes=(("kd_ratio", 0.0),)),
    **{key: _reference(key, objective, data, streams, launcher) for key, objective, data, streams, launcher in (
        ("distillm-ref", "DistiLLM as its authors run it: skew forward KL (α 0.1) alone (kd_ratio 1), adaptive student "
         "outputs, lr 5e-4 cosine for 20 epochs (tiny: the students' 6), validation each epoch, corpus CE",
         "gold labels + its own samples, scored by the SFT teacher's distribution + the pretraining corpus (CE)",
         GOLD_LABELS + _ROLLOUTS + _PRETRAINING, "scripts/sft/sft_continued.sh"),
        ("gkd-ref", "GKD as TRL runs it: generalised JSD (β 0.5) alone, λ 0.5, samples at temperature 0.9 for 128 "
         "new tokens, no corpus term",
         "gold labels + its own samples, scored by the SFT teacher's distribution", GOLD_LABELS + _ROLLOUTS,
         "scripts/sft/sft_continued.sh"),
        ("opd-ref", "on-policy distillation as Tinker runs it: 4 samples per prompt, token-sum loss, no clipping, "
         "no corpus term", "its own rollouts (4 per prompt) scored by the SFT teacher", _ROLLOUTS,
         "scripts/opd/opd_base.sh"),
        ("abkd-ref", "ABKD as its authors run it: α-β divergence (α 0.2, β 0.7) alone from the SFT student, lr 5e-4 "
         "cosine for 20 epochs (tiny: the students' 6), corpus CE", "gold labels + the SFT teacher's token distribution + the pretraining "
         "corpus (CE)", GOLD_LABELS + _PRETRAINING, "scripts/sft/sft_continued.sh"))},
    # Across tokenizers (TEACHER_TOKENIZER ≠ TOKENIZER; docs/cross-tokenizer.md): the teacher reads the same text
    # in its own tokenizer. Off-policy, the KD recipe; on-policy, GKD's step on the student's own samples (λ 1).
    **{key: Method(label, "white-box, cross-tokenizer", "random init",
                   f"(1 − r)·CE on gold responses + r·{what} to the teacher, which reads the same text in its own "
                   f"tokenizer", "gold labels + the teacher's token distribution (any tokenizer)", GOLD_LABELS,
                   launcher="scripts/xtok/xtok_base.sh", entrypoint="train_kd.py", teacher="teacher",
                   cross_tokenizer=distance, default=False,
                   variables=lambda s, d=distance: {"CROSS_TOKENIZER": d, "KD_RATIO": s.kd_ratio})
       for key, label, distance, what in (
           ("uld", "ULD", "uld", "universal logit distance (L1 between the sorted probability vectors of the i-th "
                                 "response tokens)"),
           ("aligned-kd", "Aligned-token KD", "aligned", "forward KL over the vocabulary entries both tokenizers "
                                                         "spell alike, at tokens that start at the same byte, and "
                                                         "the universal logit distance over the rest"))},
    **{key: Method(label, "white-box, cross-tokenizer", "the SFT student",
                   f"{what} to the teacher (its own tokenizer) on the student's own samples in every step (GKD's "
                   f"step, λ 1) + the pretraining term as cross-entropy alone (its KD needs a shared tokenizer), for "
                   f"the on-policy arms' steps", "its own samples, scored by the teacher in its own tokenizer + the "
                   f"pretraining corpus (CE)", _ROLLOUTS + _PRETRAINING, launcher="scripts/xtok/xtok_base.sh",
                   entrypoint="train_kd.py", recipe="continued", teacher="teacher", corpus_term=True,
                   continues="sft", cross_tokenizer=distance, default=False, primary=False,
                   variables=lambda s, d=distance: {"CROSS_TOKENIZER": d, "KD_RATIO": 1, "GKD_LAMBDA": 1,
                                                    "PTX_KD_RATIO": 0})
       for key, label, distance, what in (
           ("uld-onpolicy", "ULD (on-policy)", "uld", "the universal logit distance"),
           ("aligned-onpolicy", "Aligned-token KD (on-policy)", "aligned", "aligned-token KD"))},
    # The DSS paper's baselines: its students' label task alone, on the same questions, init and epochs.
    "label-sft": Method("Label-only SFT", "control arm", "random init",
                        "cross-entropy on the gold labels of the step-by-step questions, no rationales (the DSS "
                        "paper's standard fine-tuning)", "gold labels (the label task)", (("label", "gold"),),
                        launcher="scripts/gpt2/sft/sft_base.sh", entrypoint="train_sft.py", trains_on="dss-gold",
                        label_only=True, training_set="step-by-step", default=False, primary=False),
    "label-distill": Method("Label-only distillation", "control arm", "random init",
                            "cross-entropy on the DSS teacher's labels, no rationales (the DSS paper's standard "
                            "distillation)", "labels written by the DSS teacher (the label task)",
                            (("label", "teacher-written"),), launcher="scripts/gpt2/sft/sft_base.sh",
                            entrypoint="train_sft.py", trains_on="dss-black-box", label_only=True,
                            training_set="step-by-step", default=False, primary=False),
    "label-distill-tokens": Method("Label-only distillation (token-matched)", "control arm", "random init",
                                   "cross-entropy on the DSS teacher's labels, no rationales, for as many tokens as "
                                   "DSS trains on (its steps × DSS's tokens ÷ the label task's)",
                                   "labels written by the DSS teacher (the label task)",
                                   (("label", "teacher-written"),), launcher="scripts/gpt2/sft/sft_base.sh",
                                   entrypoint="train_sft.py", trains_on="dss-black-box", label_only=True,
                                   token_matched=True, training_set="step-by-step", default=False, primary=False),
    "dss": Method("DSS", "step-by-step, black-box", "random init",
                  "cross-entropy on the teacher's labels + α · cross-entropy on its rationales "
                  "(two task-prefixed streams)",
                  "labels and rationales written by the DSS teacher in one pass", _DSS_TEACHER_STREAMS,
                  launcher="scripts/dss/dss_base.sh", entrypoint="train_sft.py", trains_on="dss-black-box",
                  control="label-distill", also_compared_with=("label-distill-tokens",),
                  training_set="step-by-step"),
    "dss-gold": Method("DSS (gold labels)", "step-by-step, black-box", "random init",
                       "the DSS streams with gold labels instead of the teacher's (the paper's third arm)",
                       "gold labels + rationales written by the DSS teacher",
                       (("label", "gold"), ("rationale", "teacher-written")), launcher="scripts/dss/dss_base.sh",
                       entrypoint="train_sft.py", trains_on="dss-gold", control="label-sft",
                       training_set="step-by-step"),
    "dss-kd": Method("DSS-KD", "step-by-step × white-box", "random init",
                     "the DSS streams with the token-level KD loss to the DSS teacher's distribution",
                     "gold labels + gold rationales + the DSS teacher's token distribution",
                     (("label", "gold"), ("rationale", "gold")), launcher="scripts/dss/dss_kd_base.sh",
                     entrypoint="train_kd.py", teacher="dss-teacher", trains_on="dss", training_set="step-by-step",
                     variables=lambda s: {"KD_LOSS": "forward_kl", "KD_RATIO": s.kd_ratio}),
    "dss-continued": _DSS_CONTINUED,
    "dss-continued-student-lr": _at_students_rate(_DSS_CONTINUED),
    "dss-minillm": Method("DSS-MiniLLM", "step-by-step × white-box", "the DSS student",
                          "MiniLLM's sequence-level reverse KL, starting from the DSS student",
                          "its own rollouts on both tasks' prompts scored by the DSS teacher + the pretraining "
                          "corpus", _MINILLM_STREAMS,
                          **{**_ON_POLICY, "launcher": "scripts/dss/dss_minillm_base.sh", "teacher": "dss-teacher",
                             "trains_on": "dss-prompts", "continues": "dss", "control": "dss-continued"},
                          also_compared_with=("dss-continued-student-lr",), training_set="step-by-step"),
}
BASELINE = "sft"
REFERENCE_FAMILIES = ("teacher", "reference")  # rows that are not students under test
SHARED_ROWS = ("teacher", "dss-teacher", "untrained")  # evaluated once per run, not per training seed


def controls() -> dict[str, str]:
    """(method → its control arm): the same init and budget without what the method adds (the
    on-policy arms' continued training on the task data; DSS's rationale stream)."""
    return {key: method.control for key, method in METHODS.items() if method.control}


def further_controls() -> list[tuple[str, str]]:
    """(method, control arm) of the exploratory controls (e.g. DSS against label-only distillation
    given DSS's tokens)."""
    return [(key, other) for key, method in METHODS.items() for other in method.also_compared_with]


def arms() -> list[str]:
    """The keys the driver trains once per training seed."""
    return [key for key, method in METHODS.items() if method.launcher]


def default_arms() -> list[str]:
    return [key for key in arms() if METHODS[key].default and METHODS[key].group is None] + ["kd"]


def choices() -> list[str]:
    """What METHODS may name: every arm, a group ("kd" = one per KD_LOSSES), "all" and "default"."""
    groups = sorted({METHODS[key].group for key in arms() if METHODS[key].group})
    return [key for key in arms() if METHODS[key].group is None] + groups + ["all", "default"]


class SelectionError(ValueError):
    pass


def select(names: Iterable[str], kd_losses: Iterable[str]) -> tuple[list[str], list[str]]:
    """The arms METHODS names, in registry order, each one's `continues` added (an arm trains on
    from another's student); returns (arms, what was added and why)."""
    names = list(names)
    unknown = [name for name in names if name not in choices()]
    if unknown:
        raise SelectionError(f"METHODS names {', '.join(map(repr, unknown))}; choose from: {' '.join(choices())}")
    wanted: set[str] = set()
    for name in names:
        if name == "all":
            wanted |= {key for key in arms() if METHODS[key].group is None} | {"kd"}
        elif name == "default":
            wanted |= set(default_arms())
        else:
            wanted.add(name)
    if "kd" in wanted:
        wanted.discard("kd")
        bad = [loss for loss in kd_losses if f"kd-{loss}" not in METHODS]
        if bad:
            raise SelectionError(f"KD_LOSSES names {', '.join(map(repr, bad))}; choose from: {' '.join(KD_DIVERGENCES)}")
        wanted |= {f"kd-{loss}" for loss in kd_losses}
    notes = []
    for key in [key for key in arms() if key in wanted]:
        init = METHODS[key].continues
        while init and init not in wanted:
            notes.append(f"METHODS: {key} starts from the {init} student, so {init} runs too")
            wanted.add(init)
            init = METHODS[init].continues
    return [key for key in arms() if key in wanted], notes


def method_info(key: str) -> Method:
    return METHODS.get(key) or Method(key, "unknown", "unknown", "not in minillm.experiments.methods.METHODS", "unknown")


def training_set(key: str) -> str | None:
    """Which of the driver's data sources (driver.json "data_sources") a method trains on."""
    if key not in METHODS or key == "untrained":
        return None
    return METHODS[key].training_set


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


def markdown_table() -> str:
    """The README's methods table: every arm the driver runs, with what it optimises."""
    rows = ["| `METHODS` key | method | family | starts from | control arm | what it optimises | default |",
            "|---|---|---|---|---|---|---|"]
    for key in arms():
        method = METHODS[key]
        name = f"`{key}`" + (f" (`{method.group}`)" if method.group else "")
        control = f"`{method.control}`" if method.control else "–"
        rows.append(f"| {name} | {method.label} | {method.family} | {method.init} | {control} | {method.objective} "
                    f"| {'yes' if method.default and not method.group else ('per KD_LOSSES' if method.group else 'no')} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    if sys.argv[1:] == ["--markdown"]:
        print(markdown_table(), end="")
    else:
        print("usage: python -m minillm.experiments.methods --markdown", file=sys.stderr)
        sys.exit(2)
