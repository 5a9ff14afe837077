"""The embedded default's data: seeded synthetic instruction rows in the dolly/MiniLLM format.

Everything the tiny end-to-end pipeline needs is generated offline from one seed, so the whole
project runs without a download. Rows are small enough for a ~1M-parameter GPT-2 to learn in a
few hundred CPU steps, yet leave a clear gap between model sizes: the open-ended families need
memorised facts (animal attributes) or copying from the prompt, the reasoning families need
multi-step reasoning whose answer can be checked exactly (for step-by-step distillation).

Each family is a function `(rng) -> row` registered in `FAMILIES`. A row has the keys
`instruction`, `input`, `output`, `category`, `rationale`, `answer`; the last two are "" for the
open-ended families.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path

from minillm.data.templates import build_prompt
from minillm.fileio import atomic_write_jsonl, atomic_write_text

Row = dict[str, str]
PromptKey = tuple[str, str]
Item = tuple[str, str]  # (singular, plural)

NAMES: tuple[tuple[str, str], ...] = (
    ("Mia", "she"), ("Tom", "he"), ("Ana", "she"), ("Leo", "he"), ("Zoe", "she"), ("Sam", "he"),
    ("Eva", "she"), ("Max", "he"), ("Lily", "she"), ("Ben", "he"), ("Nora", "she"), ("Jack", "he"),
)
COUNTABLE_ITEMS: tuple[str, ...] = (
    "pens", "apples", "stickers", "marbles", "books", "cards", "shells", "coins", "cookies",
    "balloons", "stamps", "pencils",
)
# (question phrase, rationale phrase) for the two steps of a word problem.
GAINS: tuple[tuple[str, str], ...] = (
    ("buys {n} more", "buying {n}"), ("finds {n} more", "finding {n}"),
    ("gets {n} more from a friend", "getting {n} from a friend"),
)
LOSSES: tuple[tuple[str, str], ...] = (
    ("gives {n} away", "giving {n} away"), ("loses {n}", "losing {n}"), ("sells {n}", "selling {n}"),
)

# name -> (size, habitat, food, feature): the facts the open-ended families ask the model to recall.
ANIMALS: dict[str, tuple[str, str, str, str]] = {
    "fox": ("small", "forest", "rabbits", "red fur"),
    "wolf": ("large", "forest", "deer", "grey fur"),
    "bear": ("large", "mountains", "berries", "thick brown fur"),
    "rabbit": ("small", "meadow", "grass", "long ears"),
    "owl": ("small", "forest", "mice", "big round eyes"),
    "eagle": ("large", "mountains", "fish", "sharp claws"),
    "camel": ("large", "desert", "dry plants", "a hump on its back"),
    "lizard": ("tiny", "desert", "insects", "scaly skin"),
    "frog": ("tiny", "pond", "insects", "a sticky tongue"),
    "duck": ("small", "pond", "seeds", "webbed feet"),
    "otter": ("small", "river", "fish", "waterproof fur"),
    "beaver": ("medium-sized", "river", "bark", "a flat tail"),
    "shark": ("huge", "sea", "fish", "sharp teeth"),
    "whale": ("huge", "sea", "krill", "a blowhole"),
    "crab": ("small", "beach", "small animals", "a hard shell"),
    "tiger": ("large", "jungle", "deer", "orange stripes"),
    "monkey": ("medium-sized", "jungle", "fruit", "a long tail"),
    "parrot": ("small", "jungle", "seeds", "bright feathers"),
    "elephant": ("huge", "grassland", "grass", "a long trunk"),
    "zebra": ("large", "grassland", "grass", "black and white stripes"),
    "giraffe": ("huge", "grassland", "leaves", "a long neck"),
    "hedgehog": ("small", "garden", "insects", "sharp spines"),
    "snail": ("tiny", "garden", "leaves", "a spiral shell"),
    "bat": ("small", "cave", "insects", "thin wings"),
}
# Aspect of an animal, in ANIMALS' column order -> (noun used in the instruction, sentence
# variants). {S} is the subject
# ("The fox" or "It"), {P} its possessive ("The fox's" or "Its").
ASPECTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "size": ("size", ("{S} is a {size} animal.", "{S} is {size} in size.")),
    "habitat": ("home", ("{S} lives in the {habitat}.", "{P} home is the {habitat}.")),
    "food": ("diet", ("{S} eats {food}.", "{S} feeds on {food}.")),
    "feature": ("appearance", ("{S} has {feature}.", "{S} is easy to recognise because it has {feature}.")),
}

# category (plural) -> (singular category, items).
CATEGORIES: dict[str, tuple[str, tuple[Item, ...]]] = {
    "fruits": ("fruit", (
        ("apple", "apples"), ("banana", "bananas"), ("cherry", "cherries"), ("grape", "grapes"),
        ("lemon", "lemons"), ("mango", "mangoes"), ("pear", "pears"), ("peach", "peaches"),
        ("plum", "plums"),
    )),
    "animals": ("animal", (
        ("cat", "cats"), ("dog", "dogs"), ("horse", "horses"), ("goat", "goats"), ("sheep", "sheep"),
        ("cow", "cows"), ("pig", "pigs"), ("mouse", "mice"),
    )),
    "tools": ("tool", (
        ("hammer", "hammers"), ("saw", "saws"), ("drill", "drills"), ("wrench", "wrenches"),
        ("shovel", "shovels"), ("rake", "rakes"), ("ladder", "ladders"),
    )),
    "vehicles": ("vehicle", (
        ("car", "cars"), ("bus", "buses"), ("truck", "trucks"), ("bicycle", "bicycles"),
        ("train", "trains"), ("boat", "boats"), ("tractor", "tractors"), ("van", "vans"),
    )),
    "musical instruments": ("musical instrument", (
        ("piano", "pianos"), ("drum", "drums"), ("guitar", "guitars"), ("violin", "violins"),
        ("flute", "flutes"), ("trumpet", "trumpets"), ("harp", "harps"),
    )),
}
STORY_TEMPLATES: tuple[str, ...] = (
    "On the way to school, {name} saw {items}.",
    "In the old shop, {name} found {items}.",
    "{name} drew a picture with {items}.",
    "At the fair there were {items}.",
)


def _join(words: Sequence[str]) -> str:
    """English list: 'a', 'a and b', 'a, b and c'."""
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _with_article(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def _row(family: str, instruction: str, output: str, input_text: str = "",
         rationale: str = "", answer: str = "") -> Row:
    return {"instruction": instruction, "input": input_text, "output": output,
            "category": family, "rationale": rationale, "answer": answer}


# ---------------------------------------------------------------- reasoning (exactly checkable)

def word_arithmetic(rng: random.Random) -> Row:
    """Two-step word problem (a gain and a loss in random order); answer = final count."""
    name, pronoun = rng.choice(NAMES)
    items = rng.choice(COUNTABLE_ITEMS)
    start = total = rng.randint(5, 40)
    steps = [(rng.choice(GAINS), "+"), (rng.choice(LOSSES), "-")]
    rng.shuffle(steps)
    question_parts, reasoning = [], [f"{name} starts with {start} {items}."]
    for (question_phrase, rationale_phrase), sign in steps:
        n = rng.randint(2, 20) if sign == "+" else rng.randint(1, min(20, total - 1))
        new_total = total + n if sign == "+" else total - n
        question_parts.append(question_phrase.format(n=n))
        reasoning.append(f"After {rationale_phrase.format(n=n)} {pronoun} has {total} {sign} {n} = {new_total}.")
        total = new_total
    instruction = (f"{name} has {start} {items}. {pronoun.capitalize()} "
                   f"{question_parts[0]} and then {question_parts[1]}. "
                   f"How many {items} does {name} have now?")
    return _row("arithmetic", instruction, f"{name} has {total} {items} now.",
                rationale=" ".join(reasoning), answer=str(total))


def number_sequence(rng: random.Random) -> Row:
    """Next term of an increasing or decreasing arithmetic sequence."""
    step, length = rng.randint(1, 9), rng.randint(4, 5)
    increasing = rng.random() < 0.5
    start = rng.randint(1, 30) if increasing else rng.randint(step * length, step * length + 30)
    delta = step if increasing else -step
    terms = [start + i * delta for i in range(length)]
    following = terms[-1] + delta
    shown = ", ".join(map(str, terms))
    instruction = rng.choice((f"What number comes next: {shown}?", f"Continue the sequence: {shown}, ..."))
    direction, sign = ("more", "+") if increasing else ("less", "-")
    rationale = (f"Each number is {step} {direction} than the one before. "
                 f"So the next number is {terms[-1]} {sign} {step} = {following}.")
    return _row("sequence", instruction, f"The next number is {following}.",
                rationale=rationale, answer=str(following))


def _mixed_items(rng: random.Random, category: str, n_targets: int, n_others: int) -> tuple[list[Item], list[Item]]:
    """Targets from `category` and distractors from the other categories, shuffled together."""
    targets = rng.sample(CATEGORIES[category][1], n_targets)
    others = [item for name, (_, items) in CATEGORIES.items() if name != category for item in items]
    mixed = targets + rng.sample(others, n_others)
    rng.shuffle(mixed)
    return mixed, [item for item in mixed if item in targets]


def count_in_list(rng: random.Random) -> Row:
    """Count the members of a category in a comma-separated input list."""
    category = rng.choice(list(CATEGORIES))
    mixed, targets = _mixed_items(rng, category, rng.randint(2, 5), rng.randint(2, 4))
    names = [singular for singular, _ in targets]
    rationale = f"The {category} in the list are {_join(names)}. That makes {len(names)} {category}."
    return _row("counting", f"How many {category} are in the list?",
                f"There are {len(names)} {category} in the list.",
                input_text=", ".join(singular for singular, _ in mixed),
                rationale=rationale, answer=str(len(names)))


# ---------------------------------------------------------------- open-ended (scored by Rouge-L)

def describe_animal(rng: random.Random) -> Row:
    """Recall 2-4 memorised facts about an animal, each in one of two phrasings."""
    animal = rng.choice(list(ANIMALS))
    facts = dict(zip(ASPECTS, ANIMALS[animal]))
    aspects = rng.sample(list(ASPECTS), rng.randint(2, 4))
    if len(aspects) == 4:
        instruction = rng.choice((f"Describe the {animal}.", f"Tell me about the {animal}."))
    else:
        nouns = _join([ASPECTS[aspect][0] for aspect in aspects])
        instruction = rng.choice((f"Describe the {animal}'s {nouns}.", f"Tell me about the {animal}'s {nouns}."))
    sentences = []
    for i, aspect in enumerate(aspects):
        subject, possessive = (f"The {animal}", f"The {animal}'s") if i == 0 else ("It", "Its")
        sentences.append(rng.choice(ASPECTS[aspect][1]).format(S=subject, P=possessive, **facts))
    return _row("describe", instruction, " ".join(sentences))


def extract_category(rng: random.Random) -> Row:
    """List the members of a category mentioned in a short input story (copying from context)."""
    category = rng.choice(list(CATEGORIES))
    mixed, targets = _mixed_items(rng, category, rng.randint(1, 3), rng.randint(1, 3))
    story = rng.choice(STORY_TEMPLATES).format(name=rng.choice(NAMES)[0], items=_join([plural for _, plural in mixed]))
    if len(targets) == 1:
        output = f"Only one {CATEGORIES[category][0]} is mentioned: {targets[0][1]}."
    else:
        output = f"The {category} mentioned are {_join([plural for _, plural in targets])}."
    return _row("extract", f"List the {category} mentioned in the text.", output, input_text=story)


def compare_animals(rng: random.Random) -> Row:
    """Short explanation of how two animals differ, from memorised facts."""
    first, second = rng.sample(list(ANIMALS), 2)
    a_first, a_second = _with_article(first), _with_article(second)
    instruction = rng.choice((f"What is the difference between {a_first} and {a_second}?",
                              f"How is {a_first} different from {a_second}?"))
    (size1, home1, food1, feature1), (size2, home2, food2, feature2) = ANIMALS[first], ANIMALS[second]
    if rng.random() < 0.5:
        output = (f"{a_first.capitalize()} is a {size1} animal that lives in the {home1}, "
                  f"while {a_second} is a {size2} animal that lives in the {home2}.")
    else:
        output = (f"{a_first.capitalize()} eats {food1} and has {feature1}. "
                  f"{a_second.capitalize()} eats {food2} and has {feature2}.")
    return _row("compare", instruction, output)


FAMILIES: dict[str, Callable[[random.Random], Row]] = {
    "arithmetic": word_arithmetic,
    "sequence": number_sequence,
    "counting": count_in_list,
    "describe": describe_animal,
    "extract": extract_category,
    "compare": compare_animals,
}
REASONING_FAMILIES: tuple[str, ...] = ("arithmetic", "sequence", "counting")


def prompt_key(row: Row) -> PromptKey:
    """What makes two rows the same question."""
    return row["instruction"], row["input"]


def _draw(rng: random.Random, n: int, families: Sequence[str], distinct_from: set[PromptKey] | None) -> list[Row]:
    """n rows, families taken in turn (balanced splits); with `distinct_from`, new, pairwise-distinct prompts."""
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        raise ValueError(f"unknown families {unknown}; known: {sorted(FAMILIES)}")
    seen = None if distinct_from is None else set(distinct_from)
    rows: list[Row] = []
    for _ in range(100 * n + 1000):
        if len(rows) == n:
            break
        row = FAMILIES[families[len(rows) % len(families)]](rng)
        if seen is not None:
            if prompt_key(row) in seen:
                continue
            seen.add(prompt_key(row))
        rows.append(row)
    if len(rows) < n:
        raise ValueError(f"could only draw {len(rows)} of {n} distinct rows from families {list(families)}")
    return rows


def generate_rows(n: int, seed: int, families: Sequence[str] | None = None,
                  distinct_from: set[PromptKey] | None = None) -> list[Row]:
    """n seeded rows; `distinct_from` (prompt keys, not modified) makes them new and pairwise distinct."""
    return _draw(random.Random(seed), n, list(families or FAMILIES), distinct_from)


def pretrain_document(row: Row) -> str:
    """A row as plain text without the template, for the pretraining-corpus loss."""
    return " ".join(part for part in (row["instruction"], row["input"], row["rationale"], row["output"]) if part)


def write_default_dataset(out_dir: Path, seed: int = 0, n_train: int = 3000, n_dev: int = 200,
                          n_test: int = 300, n_pretrain: int = 2000) -> dict[str, Path]:
    """Write raw.jsonl (dev rows first, then train), valid.jsonl (test, with prompts), pretrain.txt.

    Dev and test prompts are distinct from each other and from every train prompt; pretraining
    documents are distinct and never contain a dev or test question.
    """
    rng, families = random.Random(seed), list(FAMILIES)
    train = _draw(rng, n_train, families, None)
    train_keys = {prompt_key(row) for row in train}
    dev = _draw(rng, n_dev, families, train_keys)
    test = _draw(rng, n_test, families, train_keys | {prompt_key(row) for row in dev})
    held_out = {prompt_key(row) for row in dev + test}
    pretrain = _draw(rng, n_pretrain, families, held_out)
    paths = {"raw": out_dir / "raw.jsonl", "valid": out_dir / "valid.jsonl", "pretrain": out_dir / "pretrain.txt"}
    atomic_write_jsonl(paths["raw"], dev + train)
    atomic_write_jsonl(paths["valid"], [{**row, "prompt": build_prompt(row["instruction"], row["input"])}
                                        for row in test])
    atomic_write_text(paths["pretrain"], "".join(pretrain_document(row) + "\n" for row in pretrain))
    return paths
