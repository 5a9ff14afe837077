"""Rationale data for distilling step-by-step (ref §8): one row format, the chain-of-thought
parser and the converters from each source into that format.

Row format (one JSON object per line; `tools/import_rationales.py` and
`tools/generate_rationales.py` write it, the DSS processing tool reads it):

  instruction       str  the task, as in every instruction file of the project
  input             str  its context ("" when none)
  output            str  the label task's target text (whose label: `label_source`)
  rationale         str  the rationale task's target text; "" when the row has none
  answer            str  the canonical short answer of `output`, for accuracy: numbers as plain
                         decimal strings ("42", "2.5"; see metrics.format_number), other answers
                         as text; "" for open-ended rows
  gold_answer       str  the dataset's own answer, equal to `answer` when label_source is
                         "gold"; accuracy is always scored against it
  category          str  task family ("arithmetic", "commonsense_qa", ...)
  source            str  dataset name: "synthetic", "raw", "gsm8k", "cqa", "svamp", or the file a
                         generated row came from
  id                str  unique within the source and split
  rationale_source  str  "dataset" (human-written), "palm-540b" (the DSS release) or the path
                         of the model that generated it; "" when the row has no rationale
  label_source      str  "gold" or "teacher"

Rows written by the generation tool also keep the input's `gold_output`.

Per source (label task target in `output`, as in the DSS paper):
  synthetic  instruction rows carrying `rationale` and `answer` (the embedded default's;
  / raw      "raw": your RAW_DIR's, `category` optional). A reasoning row's gold output is
             chain of thought ("The zebra is large. The frog is tiny. So the answer is zebra."):
             its rationale is the part before the conclusion, its label task's target the
             answer stated alone ("The answer is zebra.",
             minillm.data.templates.ANSWER_SENTENCE); open-ended rows keep their output, with
             rationale "" and answer "".
  gsm8k      output = answer = the final number after "####" (commas removed: "1,000" ->
             "1000"); rationale = the worked solution before it with the `<<48/2=24>>`
             calculator annotations REMOVED: the visible text already states every result, and
             a student cannot call a calculator, so the annotation would only teach it to
             write each equation twice.
  cqa        instruction = the question, input = the five choices ("(a) park" lines); gold
             output = answer = the correct choice's text; the PaLM label "(d) math problem" is
             reduced to its text "math problem".
  svamp      instruction = the problem; output = the equation (gold: the dataset's
             "( 84.0 / 2.0 )", teacher: PaLM's "(84 / 2)"); answer = its value ("42"),
             computed with the safe evaluator arithmetic.evaluate_expression.

PaLM outputs that do not parse (no answer marker before the hallucinated next question, empty
rationale or label, a CQA label that is not one choice, an SVAMP label that is not an
equation) are never blanked silently. Training rows whose output failed are DROPPED, under gold
and teacher labels alike, so every variant of the comparison trains on the same questions;
evaluation rows are KEPT, with rationale "" (they are scored against gold answers only). Each
failure is counted by reason in a ParseStats.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minillm.arithmetic import evaluate_expression
from minillm.data.templates import ANSWER_SENTENCE, build_prompt
from minillm.metrics import (
    ANSWER_MARKERS,
    answer_correct,
    clean_label,
    extract_answer,
    find_answer_marker,
    format_number,
    is_numeric_answer,
    parse_number,
    predicted_number,
)

ROW_FIELDS: tuple[str, ...] = ("instruction", "input", "output", "rationale", "answer", "gold_answer",
                               "category", "source", "id", "rationale_source", "label_source")
LABEL_CHOICES: tuple[str, ...] = ("gold", "teacher")
PALM = "palm-540b"

# Why a model output yields no (rationale, label) pair.
EMPTY_OUTPUT = "empty_output"
NO_MARKER = "no_marker"
MARKER_ONLY_IN_NEXT_QUESTION = "marker_only_in_next_question"  # the answer belongs to a hallucinated question
EMPTY_RATIONALE = "empty_rationale"
EMPTY_LABEL = "empty_label"
LABEL_NOT_A_CHOICE = "label_not_a_choice"  # CQA: "either (b) couch or (e) bed", "one of these four"
LABEL_NOT_AN_EXPRESSION = "label_not_an_expression"  # SVAMP: "(x - 9)"

# Few-shot continuations go on with a hallucinated next question: a line starting with "Q:",
# or a last line that is a bare "Q" (the generation stopped mid-word).
_NEXT_QUESTION_LINE = re.compile(r"(?:^|\n)[ \t]*Q(?::|[ \t]*$)")
_CHOICE_LABEL = re.compile(r"\(([a-z])\)\s*(.+)", re.IGNORECASE | re.DOTALL)
_CHOICE_LETTER_ANYWHERE = re.compile(r"\([a-z]\)", re.IGNORECASE)
_GSM8K_ANNOTATION = re.compile(r"<<[^<>]*>>")
_GSM8K_FINAL_ANSWER = re.compile(r"\n?####[ \t]*(.*?)\s*$")
_EXAMPLE_TEXT_LIMIT = 300


class FieldError(ValueError):
    """A bad or missing field in one input record; tools add the file and line."""

    def __init__(self, field_name: str, message: str) -> None:
        self.field = field_name
        self.message = message
        super().__init__(f"field '{field_name}': {message}")


def require_string(record: dict[str, Any], name: str) -> str:
    if name not in record:
        raise FieldError(name, "missing")
    value = record[name]
    if not isinstance(value, str):
        raise FieldError(name, f"expected a string, got {type(value).__name__}")
    return value


def optional_string(record: dict[str, Any], name: str) -> str:
    """A string field that may be absent (""), like `input`."""
    return require_string(record, name) if name in record else ""


def require_string_list(record: dict[str, Any], name: str) -> list[str]:
    if name not in record:
        raise FieldError(name, "missing")
    value = record[name]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise FieldError(name, "expected a list of strings")
    return value


def sidecar_path(out: str | Path, kind: str) -> Path:
    """The file written beside a row file: rows.jsonl -> rows.{kind}.json ("stats", "meta")."""
    out = Path(out)
    stem = out.name[:-len(".jsonl")] if out.name.endswith(".jsonl") else out.name
    return out.with_name(f"{stem}.{kind}.json")


# ---------------------------------------------------------------- chain-of-thought parsing

@dataclass(frozen=True)
class ParsedChainOfThought:
    """`rationale` and `label` of a model output; both "" when `failure` names why not."""
    rationale: str
    label: str
    failure: str | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


def _failed(reason: str) -> ParsedChainOfThought:
    return ParsedChainOfThought("", "", reason)


def parse_chain_of_thought(text: str, markers: tuple[str, ...] = ANSWER_MARKERS) -> ParsedChainOfThought:
    """Split a chain-of-thought continuation at its first answer marker (case-insensitive;
    several markers: the earliest wins). The rationale is the text before it, stripped; the
    label the text after it up to the end of its line or a hallucinated "Q:", without one final
    period ("So the answer is (d) math problem.\\n\\nQ: ..." -> "(d) math problem"). Only the text
    before the first hallucinated next question counts: a marker that appears only in that
    invented question's answer is a failure, not this question's answer."""
    if not text.strip():
        return _failed(EMPTY_OUTPUT)
    next_question = _NEXT_QUESTION_LINE.search(text)
    own_answer = text[:next_question.start()] if next_question else text
    marker = find_answer_marker(own_answer, markers)
    if marker is None:
        later = next_question is not None and find_answer_marker(text[next_question.start():], markers)
        return _failed(MARKER_ONLY_IN_NEXT_QUESTION if later else NO_MARKER)
    rationale = own_answer[:marker[0]].strip()
    label = clean_label(own_answer[marker[1]:])
    if not rationale:
        return _failed(EMPTY_RATIONALE)
    if not label:
        return _failed(EMPTY_LABEL)
    return ParsedChainOfThought(rationale, label)


@dataclass
class ParseStats:
    """How many model outputs were parsed and why the others failed; with gold answers, how
    often the parsed teacher labels are right. `to_json()` is what the tools write."""
    max_examples: int = 5
    total: int = 0
    failures: Counter = field(default_factory=Counter)
    examples: list[dict[str, str]] = field(default_factory=list)
    teacher_scored: int = 0
    teacher_correct: int = 0

    def record(self, row_id: str, text: str, failure: str | None, teacher_correct: bool | None = None) -> None:
        """Count one output; `teacher_correct` is None when its label cannot be scored."""
        self.total += 1
        if failure is not None:
            self.failures[failure] += 1
            if len(self.examples) < self.max_examples:
                shown = text if len(text) <= _EXAMPLE_TEXT_LIMIT else text[:_EXAMPLE_TEXT_LIMIT] + "..."
                self.examples.append({"id": row_id, "reason": failure, "text": shown})
        if teacher_correct is not None:
            self.teacher_scored += 1
            self.teacher_correct += int(teacher_correct)

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    @property
    def failure_rate(self) -> float:
        """Failed / total, a fraction (0 when nothing was parsed)."""
        return self.failed / self.total if self.total else 0.0

    def summary(self) -> str:
        """One line for the console: 'failure rate 1.50% (12 of 800 outputs): no_marker 9, empty_label 3'."""
        reasons = ", ".join(f"{reason} {count}" for reason, count in self.failures.most_common())
        return (f"failure rate {100 * self.failure_rate:.2f}% ({self.failed} of {self.total} outputs)"
                + (f": {reasons}" if reasons else ""))

    def to_json(self) -> dict[str, Any]:
        accuracy = (round(100.0 * self.teacher_correct / self.teacher_scored, 4)
                    if self.teacher_scored else None)
        return {"total": self.total, "parsed": self.total - self.failed, "failed": self.failed,
                "failure_rate": round(self.failure_rate, 6), "failures": dict(self.failures.most_common()),
                "examples": list(self.examples), "teacher_scored": self.teacher_scored,
                "teacher_label_accuracy": accuracy}


# ---------------------------------------------------------------- converters

@dataclass(frozen=True)
class Conversion:
    """A converted row (None = dropped) and the parse failure of its model output, if any;
    `teacher_correct` says whether the teacher's parsed label matches the gold answer."""
    row: dict[str, Any] | None
    failure: str | None = None
    teacher_correct: bool | None = None


def make_row(*, instruction: str, input: str, output: str, rationale: str, answer: str, gold_answer: str,
             category: str, source: str, row_id: str, rationale_source: str, label_source: str) -> dict[str, Any]:
    """A row in the documented field order; `rationale_source` is "" when there is no rationale."""
    return {"instruction": instruction, "input": input, "output": output, "rationale": rationale,
            "answer": answer, "gold_answer": gold_answer, "category": category, "source": source, "id": row_id,
            "rationale_source": rationale_source if rationale else "", "label_source": label_source}


def convert_raw_row(record: dict[str, Any], row_id: str, source: str = "raw") -> dict[str, Any]:
    """An instruction row that carries its own `rationale` and `answer` (raw.jsonl / valid.jsonl
    of tools/make_tiny_default.py, or of your RAW_DIR; `category` optional); a multi-answer test
    row (a list of outputs) keeps its first."""
    answer, rationale = require_string(record, "answer"), require_string(record, "rationale")
    output = record.get("output")
    if isinstance(output, list) and output and all(isinstance(item, str) for item in output):
        output = output[0]
    elif not isinstance(output, str):
        raise FieldError("output", "expected a string or a list of strings")
    if rationale:  # the label task states the answer alone; the reasoning is the rationale task's
        output = ANSWER_SENTENCE.format(answer=answer)
    return make_row(instruction=require_string(record, "instruction"), input=optional_string(record, "input"),
                    output=output, rationale=rationale, answer=answer, gold_answer=answer,
                    category=optional_string(record, "category"), source=source, row_id=row_id,
                    rationale_source="dataset", label_source="gold")


def carries_rationales(records: list[dict[str, Any]]) -> bool:
    """Whether instruction rows carry their own step-by-step data: every row has string
    `rationale` and `answer` fields and some rationale is not empty (then the step-by-step rows
    are derived from these very rows, and share their split)."""
    return bool(records) and all(isinstance(record.get("rationale"), str) and isinstance(record.get("answer"), str)
                                 for record in records) and any(record["rationale"] for record in records)


def question_key(record: dict[str, Any]) -> str:
    """A row's question, whitespace-normalised: its instruction and its input."""
    return " ".join(f"{record.get('instruction', '')}\n{record.get('input', '') or ''}".split())


def question_mismatch(reference: list[tuple[str, int, dict[str, Any]]], rows: list[tuple[str, int, dict[str, Any]]],
                      keep: int | None = None) -> str | None:
    """Why `rows` (file, line, record) do not hold `reference`'s questions in `reference`'s order,
    over the first `keep` rows of each (None: all); None when they do. Both files' first DEV_NUM
    rows are their validation split and the rest their training rows, so a step-by-step row must
    sit where its instruction-following row sits."""
    reference, rows = reference[:keep], rows[:keep]
    for index, ((ref_file, ref_line, ref), (file, line, row)) in enumerate(zip(reference, rows)):
        if question_key(ref) != question_key(row):
            return (f"row {index + 1} differs: {file}:{line} asks {question_key(row)[:80]!r}, {ref_file}:{ref_line} "
                    f"asks {question_key(ref)[:80]!r}")
    if len(reference) != len(rows):
        names = [located[0][0] if located else "the other file" for located in (rows, reference)]
        return f"{names[0]} gives {len(rows)} rows, {names[1]} {len(reference)}"
    return None


def canonical_number(text: str, field_name: str) -> str:
    """'1,000' -> '1000', '2.50' -> '2.5'; FieldError when `text` is not one number."""
    value = parse_number(text)
    if value is None:
        raise FieldError(field_name, f"expected a number, got {text!r}")
    return format_number(value)


def split_gsm8k_solution(solution: str) -> tuple[str, str]:
    """(rationale, answer) of a GSM8K worked solution: the text before the final "#### n" line
    with the <<...>> calculator annotations removed, and n as a canonical number."""
    if solution.count("####") != 1:
        raise FieldError("answer", f"expected exactly one '#### <number>' line, found {solution.count('####')}")
    final = _GSM8K_FINAL_ANSWER.search(solution)
    if final is None or not final.group(1):
        raise FieldError("answer", "the final '#### <number>' line is missing its number")
    answer = canonical_number(final.group(1), "answer")
    worked = solution[:final.start()]
    unclosed = _GSM8K_ANNOTATION.sub("", worked)
    if "<<" in unclosed or ">>" in unclosed:
        raise FieldError("answer", "a '<<...>>' calculator annotation is not closed")
    rationale = "\n".join(line.strip() for line in unclosed.strip().splitlines())
    return rationale, answer


def convert_gsm8k_row(record: dict[str, Any], row_id: str) -> dict[str, Any]:
    rationale, answer = split_gsm8k_solution(require_string(record, "answer"))
    return make_row(instruction=require_string(record, "question").strip(), input="", output=answer,
                    rationale=rationale, answer=answer, gold_answer=answer, category="math_word_problem",
                    source="gsm8k", row_id=row_id, rationale_source="dataset", label_source="gold")


def _check_labels(labels: str, keep_failed: bool) -> None:
    if labels not in LABEL_CHOICES:
        raise ValueError(f"labels must be one of {LABEL_CHOICES}, got {labels!r}")
    if keep_failed and labels == "teacher":
        raise ValueError("a row whose teacher output failed to parse has no teacher label: "
                         "keeping failed rows needs gold labels")


def cqa_prompt_fields(question: str, choices: list[str]) -> tuple[str, str]:
    """(instruction, input): the question, and one "(a) choice" line per choice."""
    lines = [f"({chr(ord('a') + index)}) {choice}" for index, choice in enumerate(choices)]
    return question.strip(), "\n".join(lines)


def cqa_teacher_choice(label: str) -> str | None:
    """The choice text of a PaLM CQA label "(d) math problem"; None unless it names exactly one
    lettered choice."""
    match = _CHOICE_LABEL.fullmatch(label)
    if match is None or _CHOICE_LETTER_ANYWHERE.search(match.group(2)):
        return None
    return match.group(2).strip() or None


def convert_cqa_row(record: dict[str, Any], llm_output: str, labels: str = "gold",
                    keep_failed: bool = False) -> Conversion:
    """A CommonsenseQA row of the DSS release with its PaLM continuation. `labels` picks the
    label task's target (the gold answer or PaLM's choice); a failed output drops the row
    unless `keep_failed` (evaluation rows; gold labels only)."""
    _check_labels(labels, keep_failed)
    choices = require_string_list(record, "choices")
    instruction, input_text = cqa_prompt_fields(require_string(record, "question"), choices)
    gold = require_string(record, "answer").strip()
    row_id = require_string(record, "id")
    parsed = parse_chain_of_thought(llm_output)
    teacher = cqa_teacher_choice(parsed.label) if parsed.ok else None
    failure = parsed.failure or (LABEL_NOT_A_CHOICE if teacher is None else None)
    if failure is not None and not keep_failed:
        return Conversion(None, failure)
    label = teacher if labels == "teacher" else gold
    row = make_row(instruction=instruction, input=input_text, output=label,
                   rationale=parsed.rationale if failure is None else "", answer=label, gold_answer=gold,
                   category="commonsense_qa", source="cqa", row_id=row_id, rationale_source=PALM,
                   label_source=labels)
    return Conversion(row, failure, None if teacher is None else answer_correct(teacher, gold))


def svamp_answer(equation: str, field_name: str) -> str:
    """The canonical value of an SVAMP equation; FieldError when it does not evaluate."""
    try:
        return format_number(evaluate_expression(equation))
    except ValueError as error:
        raise FieldError(field_name, str(error)) from None


def convert_svamp_row(record: dict[str, Any], row_id: str, llm_output: str, labels: str = "gold",
                      keep_failed: bool = False) -> Conversion:
    """An SVAMP row of the DSS release with its PaLM continuation; see `convert_cqa_row`. The
    label task's target is the equation, its value the answer."""
    _check_labels(labels, keep_failed)
    gold_equation = require_string(record, "label").strip()
    gold = svamp_answer(gold_equation, "label")
    parsed = parse_chain_of_thought(llm_output)
    teacher_value = None
    if parsed.ok:
        try:
            teacher_value = format_number(evaluate_expression(parsed.label))
        except ValueError:
            teacher_value = None
    failure = parsed.failure or (LABEL_NOT_AN_EXPRESSION if teacher_value is None else None)
    if failure is not None and not keep_failed:
        return Conversion(None, failure)
    output, answer = (parsed.label, teacher_value) if labels == "teacher" else (gold_equation, gold)
    row = make_row(instruction=require_string(record, "input").strip(), input="", output=output,
                   rationale=parsed.rationale if failure is None else "", answer=answer, gold_answer=gold,
                   category="arithmetic", source="svamp", row_id=row_id, rationale_source=PALM,
                   label_source=labels)
    return Conversion(row, failure, None if teacher_value is None else answer_correct(teacher_value, gold))


# ---------------------------------------------------------------- generated rationales

PLACEHOLDERS: tuple[str, ...] = ("{prompt}", "{instruction}", "{input}")


def check_template(template: str) -> None:
    """A template must contain a placeholder, or every prompt would be the same text."""
    if not any(placeholder in template for placeholder in PLACEHOLDERS):
        raise ValueError(f"the template has none of the placeholders {', '.join(PLACEHOLDERS)}")


def fill_template(template: str, instruction: str, input: str) -> str:
    """A prompt from a template file (prompts/rationales/README.md): {prompt} becomes the
    Alpaca prompt of build_prompt, {instruction} and {input} the fields; a line holding only
    {input} disappears when the input is empty. Other braces are left alone, so examples may
    contain any text."""
    if not any(placeholder in template for placeholder in PLACEHOLDERS):
        raise ValueError(f"the template has none of the placeholders {', '.join(PLACEHOLDERS)}")
    if not input:
        template = re.sub(r"(?m)^[ \t]*\{input\}[ \t]*\n", "", template)
    text = template.replace("{prompt}", build_prompt(instruction, input)) if "{prompt}" in template else template
    # Substitute in one pass so that braces inside the instruction are never expanded again.
    values = {"{instruction}": instruction, "{input}": input}
    return re.sub(r"\{instruction\}|\{input\}", lambda match: values[match.group(0)], text)


def as_rationale_row(record: dict[str, Any], source: str, row_id: str) -> dict[str, Any]:
    """An instruction record (instruction, input, output, maybe more) in the row format: the
    fields it lacks get defaults (gold label, no rationale), the ones it has are kept."""
    answer = record.get("answer", "")
    defaults = {"rationale": "", "answer": answer, "gold_answer": answer, "category": "", "source": source,
                "id": row_id, "rationale_source": "", "label_source": "gold"}
    return {**{name: record[name] for name in ("instruction", "input", "output")}, **defaults,
            **{name: value for name, value in record.items() if name not in ("instruction", "input", "output")}}


def teacher_answer(label: str, gold_answer: str) -> str:
    """The canonical answer a teacher's label states, in the gold answer's kind: a number when
    the gold answer is one ("" if the label states none), text otherwise; "" for open-ended
    rows, which have no gold answer."""
    if not gold_answer:
        return ""
    if is_numeric_answer(gold_answer):
        value = predicted_number(label)
        return "" if value is None else format_number(value)
    return extract_answer(label)


def teacher_row(row: dict[str, Any], rationale: str, label: str, model: str) -> dict[str, Any]:
    """`row` (row format) relabelled by a teacher: its output becomes `gold_output`, its gold
    answer stays in `gold_answer`, `answer` is the teacher's."""
    gold_answer = row.get("gold_answer", row["answer"])
    return {**row, "output": label, "rationale": rationale, "answer": teacher_answer(label, gold_answer),
            "gold_answer": gold_answer, "rationale_source": model, "label_source": "teacher",
            "gold_output": row.get("gold_output", row["output"])}


def parse_teacher_outputs(rationale_text: str, label_text: str | None) -> ParsedChainOfThought:
    """One generated example: with a separate label generation (a two-task DSS teacher), the
    whole first continuation is the rationale and the second the label (an empty one is a
    failure); without it, the first continuation is chain-of-thought text to parse."""
    if label_text is None:
        return parse_chain_of_thought(rationale_text)
    rationale, label = rationale_text.strip(), label_text.strip()
    if not rationale:
        return _failed(EMPTY_RATIONALE)
    if not label:
        return _failed(EMPTY_LABEL)
    return ParsedChainOfThought(rationale, label)
