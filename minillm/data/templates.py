"""The Alpaca-style prompt templates MiniLLM uses for all instruction-following data.

The text must match MiniLLM's exactly: token ids, prompt lengths and the `prompt` field of the
processed `.jsonl` files all depend on it.
"""

PROMPT_NO_INPUT = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:\n"
)

PROMPT_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)


def build_prompt(instruction: str, input: str) -> str:
    """Fill the template; an empty input selects the template without an input section."""
    if not input:
        return PROMPT_NO_INPUT.format(instruction=instruction)
    return PROMPT_WITH_INPUT.format(instruction=instruction, input=input)


# Step-by-step distillation (ref §8): the same prompt, preceded by a task prefix, asks for the
# label or for the rationale. The paper writes `[label]` / `[rationale]`.
TASK_PREFIXES = {"label": "[label] ", "rationale": "[rationale] "}


def build_task_prompt(prefix: str, instruction: str, input: str) -> str:
    """The prompt of one task stream: `prefix` + the template (an empty prefix = plain prompt)."""
    return prefix + build_prompt(instruction, input)

# The answer formats of step-by-step data: a label states the answer alone; chain of thought
# (a teacher's one-pass rationale) ends with its conclusion. Both carry an answer marker of
# minillm.metrics.ANSWER_MARKERS, so strict answer extraction reads them.
ANSWER_SENTENCE = "The answer is {answer}."
CHAIN_OF_THOUGHT_CONCLUSION = "So the answer is {answer}."
