"""The embedded default's data: seeded synthetic instruction rows in the dolly/MiniLLM format.

Everything the tiny end-to-end pipeline needs is generated offline from one seed, so the whole
project runs without a download. The testbed is built so that a comparison of distillation
methods means something at ~1M parameters:
  - the teacher can do every task: a reasoning question composes facts about 24 animals (size,
    home, food, look, legs; memorised from the open-ended families and the reasoning rows
    themselves) with one easy comparison (which of three is the biggest, which of two has more
    legs), and its gold
    answer is chain of thought: the recalled facts, then "So the answer is X." — each step easy
    for a 4-layer GPT-2, so the teacher's greedy answers are right (README: ≥ 80% per family);
  - a small student trained from scratch cannot memorise everything the teacher does, so
    distillation has a gap to close;
  - one family ("name") has several equally valid answers per prompt, so mode-covering and
    mode-seeking students differ (its test rows list every valid answer as references);
  - every reasoning answer follows an answer marker, so strict answer extraction applies to
    every model.

Each family is a function `(rng) -> row` registered in `FAMILIES`. A row has the keys
`instruction`, `input`, `output`, `category`, `rationale`, `answer`; the last two are "" for the
open-ended families, and a reasoning row's output is its rationale followed by
CHAIN_OF_THOUGHT_CONCLUSION. Rows of a multi-answer family also carry `valid_outputs` (every
valid output; `write_default_dataset` writes them as the test references).

MiniLLM's pretraining corpus (`pretrain.txt`) is generic text in the same vocabulary — names,
objects, animals, places, numbers — and holds no task question, rationale, answer or animal fact:
the pretraining term must not smuggle in extra supervision.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path

from minillm.data.templates import CHAIN_OF_THOUGHT_CONCLUSION, build_prompt
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
# Habitats of two or more animals: the multi-answer questions ("Name an animal that lives in the ...").
SHARED_HABITATS: tuple[str, ...] = tuple(sorted(
    {facts[1] for facts in ANIMALS.values() if sum(other[1] == facts[1] for other in ANIMALS.values()) > 1}))
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



def _reasoning_row(family: str, instruction: str, answer: str, rationale: str, input_text: str = "") -> Row:
    return _row(family, instruction, rationale + " " + CHAIN_OF_THOUGHT_CONCLUSION.format(answer=answer),
                input_text=input_text, rationale=rationale, answer=answer)


SIZE_ORDER: tuple[str, ...] = ("tiny", "small", "medium-sized", "large", "huge")
# Legs per animal: a fact only the "more_legs" reasoning rows state.
LEGS: dict[str, int] = {
    "fox": 4, "wolf": 4, "bear": 4, "rabbit": 4, "owl": 2, "eagle": 2, "camel": 4, "lizard": 4, "frog": 4,
    "duck": 2, "otter": 4, "beaver": 4, "shark": 0, "whale": 0, "crab": 10, "tiger": 4, "monkey": 4,
    "parrot": 2, "elephant": 4, "zebra": 4, "giraffe": 4, "hedgehog": 4, "snail": 0, "bat": 2,
}


def _rank_animals(rng: random.Random, family: str, count: int, rank: Callable[[str], int],
                  questions: tuple[str, ...], fact: Callable[[str], str]) -> Row:
    """Which of `count` animals (all of different rank) ranks highest: their recalled facts, then
    one comparison. The answer depends on the whole set, so no single remembered association
    gives it away (a question naming one food or place would: the model answers from memory)."""
    animals = rng.sample(list(ANIMALS), count)
    while len({rank(animal) for animal in animals}) < count:
        animals = rng.sample(list(ANIMALS), count)
    names = {f"a{i}": _with_article(animal) for i, animal in enumerate(animals)}
    instruction = rng.choice(questions).format(*animals, **names)
    rationale = " ".join(fact(animal) for animal in animals)
    return _reasoning_row(family, instruction, max(animals, key=rank), rationale)


def _size_rank(animal: str) -> int:
    return SIZE_ORDER.index(ANIMALS[animal][0])


def _size_fact(animal: str) -> str:
    return f"The {animal} is {ANIMALS[animal][0]}."


def biggest_animal(rng: random.Random) -> Row:
    """Which of three animals of different sizes is the biggest."""
    return _rank_animals(rng, "biggest", 3, _size_rank,
                         ("Which is the biggest: the {0}, the {1} or the {2}?",
                          "Which of these animals is the largest: the {0}, the {1} or the {2}?"), _size_fact)


def more_legs(rng: random.Random) -> Row:
    """Which of two animals has more legs."""
    return _rank_animals(rng, "more_legs", 2, LEGS.__getitem__,
                         ("Which has more legs, {a0} or {a1}?", "Which animal has more legs: the {0} or the {1}?"),
                         lambda animal: f"The {animal} has {LEGS[animal]} legs.")


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


def _mixed_items(rng: random.Random, category: str, n_targets: int, n_others: int) -> tuple[list[Item], list[Item]]:
    """Targets from `category` and distractors from the other categories, shuffled together."""
    targets = rng.sample(CATEGORIES[category][1], n_targets)
    others = [item for name, (_, items) in CATEGORIES.items() if name != category for item in items]
    mixed = targets + rng.sample(others, n_others)
    rng.shuffle(mixed)
    return mixed, [item for item in mixed if item in targets]


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


def name_an_example(rng: random.Random) -> Row:
    """Several equally valid answers: an animal of a habitat, or a member of a category. The
    training output is one of them, drawn uniformly; `valid_outputs` lists them all."""
    if rng.random() < 0.5:
        habitat = rng.choice(SHARED_HABITATS)
        instruction = rng.choice((f"Name an animal that lives in the {habitat}.",
                                  f"Give an example of an animal that lives in the {habitat}."))
        valid = [f"The {animal} lives in the {habitat}." for animal, facts in ANIMALS.items() if facts[1] == habitat]
    else:
        category = rng.choice(list(CATEGORIES))
        singular, items = CATEGORIES[category]
        instruction = rng.choice((f"Name {_with_article(singular)}.", f"Give an example of {_with_article(singular)}."))
        valid = [f"{_with_article(item).capitalize()} is {_with_article(singular)}." for item, _ in items]
    row = _row("name", instruction, rng.choice(valid))
    row["valid_outputs"] = valid
    return row


FAMILIES: dict[str, Callable[[random.Random], Row]] = {
    "biggest": biggest_animal,
    "more_legs": more_legs,
    "describe": describe_animal,
    "extract": extract_category,
    "compare": compare_animals,
    "name": name_an_example,
}
REASONING_FAMILIES: tuple[str, ...] = ("biggest", "more_legs")
# Families whose prompts recur by design (a few dozen questions, many valid answers each): their
# dev/test rows may repeat a training prompt, since what is tested is the set of answers.
MULTI_ANSWER_FAMILIES: tuple[str, ...] = ("name",)


def prompt_key(row: Row) -> PromptKey:
    """What makes two rows the same question."""
    return row["instruction"], row["input"]


def _draw(rng: random.Random, n: int, families: Sequence[str], distinct_from: set[PromptKey] | None) -> list[Row]:
    """n rows, families taken in turn (balanced splits); with `distinct_from`, new, pairwise-distinct
    prompts (except in MULTI_ANSWER_FAMILIES, whose few prompts recur by design)."""
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        raise ValueError(f"unknown families {unknown}; known: {sorted(FAMILIES)}")
    seen = None if distinct_from is None else set(distinct_from)
    rows: list[Row] = []
    for _ in range(100 * n + 1000):
        if len(rows) == n:
            break
        family = families[len(rows) % len(families)]
        row = FAMILIES[family](rng)
        if seen is not None and family not in MULTI_ANSWER_FAMILIES:
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


# ---------------------------------------------------------------- the pretraining corpus

PLACES: tuple[str, ...] = ("school", "park", "market", "library", "kitchen", "station", "museum", "harbour",
                           "village", "bakery")
COLOURS: tuple[str, ...] = ("red", "blue", "green", "yellow", "white", "brown")
TIMES: tuple[str, ...] = ("in the morning", "after lunch", "in the evening", "on Sunday", "before dinner")
# Generic sentences: the domain's words, but no question, count, answer or animal fact of a task.
GENERIC_SENTENCES: tuple[str, ...] = (
    "{name} walked to the {place} with {name2} {time}.",
    "There was a {colour} box on the table in the {place}.",
    "{name} drew a {animal} on a big sheet of paper.",
    "{name} and {name2} read a story about a {animal} {time}.",
    "{name} wrote the numbers {a}, {b} and {c} on the board.",
    "The {place} was quiet, so {name} sat down and rested.",
    "{name} put the {items} back in the {colour} bag.",
    "{name2} painted the door of the {place} {colour}.",
    "A picture of a {animal} hung on the wall of the {place}.",
    "{name} sang a song about {items} {time}.",
    "{name} and {name2} met at the {place} and talked for a while.",
    "Page {a} of the book showed a {colour} {animal}.",
)


def pretrain_document(rng: random.Random) -> str:
    """One line of the pretraining corpus: three to five generic sentences."""
    sentences = []
    for _ in range(rng.randint(3, 5)):
        (name, _), (name2, _) = rng.sample(NAMES, 2)
        a, b, c = rng.sample(range(1, 100), 3)
        sentences.append(rng.choice(GENERIC_SENTENCES).format(
            name=name, name2=name2, place=rng.choice(PLACES), time=rng.choice(TIMES), colour=rng.choice(COLOURS),
            animal=rng.choice(list(ANIMALS)), items=rng.choice(COUNTABLE_ITEMS), a=a, b=b, c=c))
    return " ".join(sentences)


def write_default_dataset(out_dir: Path, seed: int = 0, n_train: int = 3000, n_dev: int = 200,
                          n_test: int = 300, n_pretrain: int = 2000) -> dict[str, Path]:
    """Write raw.jsonl (dev rows first, then train), valid.jsonl (test, with prompts), pretrain.txt.

    Dev and test prompts are distinct from each other and from every train prompt (but for the
    multi-answer family, whose test rows list every valid answer as `output`); the pretraining
    corpus is generic text (`pretrain_document`).
    """
    rng, families = random.Random(seed), list(FAMILIES)
    train = _draw(rng, n_train, families, None)
    train_keys = {prompt_key(row) for row in train}
    dev = _draw(rng, n_dev, families, train_keys)
    test = _draw(rng, n_test, families, train_keys | {prompt_key(row) for row in dev})
    pretrain = [pretrain_document(rng) for _ in range(n_pretrain)]
    paths = {"raw": out_dir / "raw.jsonl", "valid": out_dir / "valid.jsonl", "pretrain": out_dir / "pretrain.txt"}
    atomic_write_jsonl(paths["raw"], [_without_valid_outputs(row) for row in dev + train])
    atomic_write_jsonl(paths["valid"], [{**_without_valid_outputs(row), "output": row.get("valid_outputs", row["output"]),
                                         "prompt": build_prompt(row["instruction"], row["input"])} for row in test])
    atomic_write_text(paths["pretrain"], "".join(document + "\n" for document in pretrain))
    return paths


def _without_valid_outputs(row: Row) -> Row:
    return {key: value for key, value in row.items() if key != "valid_outputs"}
