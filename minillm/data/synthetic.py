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
import re
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from minillm.data.templates import ANSWER_SENTENCE, CHAIN_OF_THOUGHT_CONCLUSION, build_prompt
from minillm.fileio import atomic_write_jsonl, atomic_write_text

Row = dict[str, Any]  # strings, but for the generator-side fields `valid_outputs` and `facts`
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

class Animal(NamedTuple):
    """One animal's facts: what the open-ended families ask the model to recall and the reasoning
    families compose."""

    size: str
    habitat: str
    food: str
    feature: str
    legs: int


# 50 animals: enough that a reasoning test question can name a set of animals no training row of
# its family names (969 pairs of different leg counts, thousands of triples of different sizes),
# while every animal's facts occur in training (describe rows and other questions about it).
# No food or feature names an animal or contains a size word, so a stated fact reads unambiguously.
ANIMALS: dict[str, Animal] = {name: Animal(*facts) for name, facts in {
    # no legs
    "shark": ("huge", "sea", "fish", "sharp teeth", 0),
    "whale": ("huge", "sea", "krill", "a blowhole", 0),
    "dolphin": ("large", "sea", "squid", "a curved fin", 0),
    "jellyfish": ("small", "sea", "plankton", "long tentacles", 0),
    "salmon": ("medium-sized", "river", "insects", "silver scales", 0),
    "snake": ("medium-sized", "desert", "mice", "smooth scales", 0),
    "snail": ("tiny", "garden", "leaves", "a spiral shell", 0),
    "worm": ("tiny", "meadow", "soil", "a soft pink body", 0),
    # two legs
    "owl": ("small", "forest", "mice", "big round eyes", 2),
    "eagle": ("large", "mountains", "fish", "sharp claws", 2),
    "duck": ("small", "pond", "seeds", "webbed feet", 2),
    "swan": ("large", "pond", "water plants", "a curved neck", 2),
    "parrot": ("small", "jungle", "seeds", "bright feathers", 2),
    "toucan": ("small", "jungle", "fruit", "a colourful beak", 2),
    "bat": ("small", "cave", "insects", "thin wings", 2),
    "penguin": ("medium-sized", "ice", "fish", "a white belly", 2),
    "ostrich": ("large", "grassland", "seeds", "fluffy feathers", 2),
    "robin": ("tiny", "garden", "worms", "a red chest", 2),
    # four legs
    "fox": ("small", "forest", "rabbits", "red fur", 4),
    "wolf": ("large", "forest", "deer", "grey fur", 4),
    "squirrel": ("small", "forest", "nuts", "a bushy tail", 4),
    "bear": ("large", "mountains", "berries", "thick brown fur", 4),
    "rabbit": ("small", "meadow", "grass", "long ears", 4),
    "camel": ("large", "desert", "dry plants", "a hump on its back", 4),
    "lizard": ("tiny", "desert", "insects", "scaly skin", 4),
    "frog": ("tiny", "pond", "insects", "a sticky tongue", 4),
    "otter": ("small", "river", "fish", "waterproof fur", 4),
    "beaver": ("medium-sized", "river", "bark", "a flat tail", 4),
    "crocodile": ("huge", "river", "fish", "a long snout", 4),
    "tiger": ("large", "jungle", "deer", "orange stripes", 4),
    "monkey": ("medium-sized", "jungle", "fruit", "a long tail", 4),
    "elephant": ("huge", "grassland", "grass", "a long trunk", 4),
    "zebra": ("large", "grassland", "grass", "black and white stripes", 4),
    "giraffe": ("huge", "grassland", "leaves", "a long neck", 4),
    "lion": ("large", "grassland", "meat", "a thick mane", 4),
    "hedgehog": ("small", "garden", "insects", "sharp spines", 4),
    # six legs
    "bee": ("tiny", "meadow", "nectar", "a striped body", 6),
    "butterfly": ("tiny", "meadow", "nectar", "colourful wings", 6),
    "grasshopper": ("tiny", "meadow", "grass", "long antennae", 6),
    "ant": ("tiny", "forest", "seeds", "strong jaws", 6),
    "beetle": ("tiny", "forest", "dead wood", "a shiny shell", 6),
    "ladybird": ("tiny", "garden", "aphids", "red wings with black spots", 6),
    "dragonfly": ("small", "pond", "mosquitoes", "four clear wings", 6),
    # eight legs
    "spider": ("tiny", "cave", "flies", "eight eyes", 8),
    "scorpion": ("small", "desert", "insects", "a curled tail", 8),
    "tarantula": ("small", "jungle", "insects", "a hairy body", 8),
    # ten legs
    "crab": ("small", "beach", "small animals", "a hard shell", 10),
    "lobster": ("medium-sized", "sea", "clams", "big claws", 10),
    "shrimp": ("tiny", "sea", "plankton", "a thin shell", 10),
    "crayfish": ("small", "river", "snails", "a pair of pincers", 10),
}.items()}
LEGS: dict[str, int] = {name: animal.legs for name, animal in ANIMALS.items()}
# Habitats of two or more animals: the multi-answer questions ("Name an animal that lives in the ...").
SHARED_HABITATS: tuple[str, ...] = tuple(sorted(
    {animal.habitat for animal in ANIMALS.values()
     if sum(other.habitat == animal.habitat for other in ANIMALS.values()) > 1}))
# Aspect of an animal (an Animal field) -> (noun used in the instruction, sentence variants). {S}
# is the subject ("The fox" or "It"), {P} its possessive ("The fox's" or "Its").
ASPECTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "size": ("size", ("{S} is a {size} animal.", "{S} is {size} in size.")),
    "habitat": ("home", ("{S} lives in the {habitat}.", "{P} home is the {habitat}.")),
    "food": ("diet", ("{S} eats {food}.", "{S} feeds on {food}.")),
    "feature": ("appearance", ("{S} has {feature}.", "{S} is easy to recognise because it has {feature}.")),
    "legs": ("legs", ("{S} has {legs} legs.", "{P} body has {legs} legs.")),
}


def fact_phrase(aspect: str, value: str | int) -> str:
    """How a fact's value is written in every sentence that states it (a leg count: "4 legs")."""
    return f"{value} legs" if aspect == "legs" else str(value)


def animal_facts(animal: str) -> list[str]:
    """Every fact phrase true of `animal` (what a stated fact about it is checked against)."""
    return [fact_phrase(aspect, value) for aspect, value in ANIMALS[animal]._asdict().items()]


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


def _with_facts(row: Row, facts: list[tuple[str, str]]) -> Row:
    """The row with `facts`: the (subject, fact phrase) pairs its output states."""
    return {**row, "facts": [list(fact) for fact in facts]}


# ---------------------------------------------------------------- reasoning (exactly checkable)



def _reasoning_row(family: str, instruction: str, answer: str, rationale: str, input_text: str = "") -> Row:
    return _row(family, instruction, rationale + " " + CHAIN_OF_THOUGHT_CONCLUSION.format(answer=answer),
                input_text=input_text, rationale=rationale, answer=answer)


SIZE_ORDER: tuple[str, ...] = ("tiny", "small", "medium-sized", "large", "huge")

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
    return SIZE_ORDER.index(ANIMALS[animal].size)


def _size_fact(animal: str) -> str:
    return f"The {animal} is {ANIMALS[animal].size}."


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
    """Recall 2-5 memorised facts about an animal, each in one of two phrasings."""
    animal = rng.choice(list(ANIMALS))
    facts = ANIMALS[animal]._asdict()
    aspects = rng.sample(list(ASPECTS), rng.randint(2, len(ASPECTS)))
    if len(aspects) == len(ASPECTS):
        instruction = rng.choice((f"Describe the {animal}.", f"Tell me about the {animal}."))
    else:
        nouns = _join([ASPECTS[aspect][0] for aspect in aspects])
        instruction = rng.choice((f"Describe the {animal}'s {nouns}.", f"Tell me about the {animal}'s {nouns}."))
    sentences = []
    for i, aspect in enumerate(aspects):
        subject, possessive = (f"The {animal}", f"The {animal}'s") if i == 0 else ("It", "Its")
        sentences.append(rng.choice(ASPECTS[aspect][1]).format(S=subject, P=possessive, **facts))
    return _with_facts(_row("describe", instruction, " ".join(sentences)),
                       [(animal, fact_phrase(aspect, facts[aspect])) for aspect in aspects])


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
    return _with_facts(_row("extract", f"List the {category} mentioned in the text.", output, input_text=story),
                       [(category, plural) for _, plural in targets])


# The aspects a `compare` answer contrasts: either pair answers the question.
COMPARED_ASPECTS: tuple[tuple[str, str], ...] = (("size", "habitat"), ("food", "feature"))


def _compared_facts(animals: Sequence[str], aspects: tuple[str, str]) -> list[tuple[str, str]]:
    return [(animal, fact_phrase(aspect, getattr(ANIMALS[animal], aspect))) for animal in animals for aspect in aspects]


def compare_animals(rng: random.Random) -> Row:
    """Short explanation of how two animals differ, from memorised facts."""
    first, second = rng.sample(list(ANIMALS), 2)
    a_first, a_second = _with_article(first), _with_article(second)
    instruction = rng.choice((f"What is the difference between {a_first} and {a_second}?",
                              f"How is {a_first} different from {a_second}?"))
    one, two = ANIMALS[first], ANIMALS[second]
    if rng.random() < 0.5:
        aspects = COMPARED_ASPECTS[0]
        output = (f"{a_first.capitalize()} is a {one.size} animal that lives in the {one.habitat}, "
                  f"while {a_second} is a {two.size} animal that lives in the {two.habitat}.")
    else:
        aspects = COMPARED_ASPECTS[1]
        output = (f"{a_first.capitalize()} eats {one.food} and has {one.feature}. "
                  f"{a_second.capitalize()} eats {two.food} and has {two.feature}.")
    return _with_facts(_row("compare", instruction, output), _compared_facts((first, second), aspects))


def name_an_example(rng: random.Random) -> Row:
    """Several equally valid answers: an animal of a habitat, or a member of a category. The
    training output is one of them, drawn uniformly; `valid_outputs` lists them all."""
    if rng.random() < 0.5:
        habitat = rng.choice(SHARED_HABITATS)
        instruction = rng.choice((f"Name an animal that lives in the {habitat}.",
                                  f"Give an example of an animal that lives in the {habitat}."))
        valid = [f"The {animal} lives in the {habitat}." for animal, facts in ANIMALS.items() if facts.habitat == habitat]
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


def named_animals(row: Row) -> list[str]:
    """The animals a row's question names, in order (a reasoning row's answer options)."""
    return [word for word in re.findall(r"[a-z]+", row["instruction"].lower()) if word in ANIMALS]


def composition_key(row: Row) -> Hashable:
    """What a held-out row must not share with a training row: for a reasoning family, the SET of
    animals its question names (in any order and wording), so a test question is a composition
    never seen in training and its answer must be computed from the animals' facts; for the
    other families, the question itself."""
    if row["category"] in REASONING_FAMILIES:
        return row["category"], frozenset(named_animals(row))
    return prompt_key(row)


def _draw(rng: random.Random, n: int, families: Sequence[str], distinct_from: set[Hashable] | None) -> list[Row]:
    """n rows, families taken in turn from `families` (a cycle: a family listed twice gets twice the
    rows); with `distinct_from` (composition keys), rows whose compositions are new and pairwise
    distinct (except in MULTI_ANSWER_FAMILIES, whose few prompts recur by design)."""
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
            if composition_key(row) in seen:
                continue
            seen.add(composition_key(row))
        rows.append(row)
    if len(rows) < n:
        raise ValueError(f"could only draw {len(rows)} of {n} distinct rows from families {list(families)}")
    return rows


def generate_rows(n: int, seed: int, families: Sequence[str] | None = None,
                  distinct_from: set[Hashable] | None = None) -> list[Row]:
    """n seeded rows; `distinct_from` (composition keys, not modified) makes them new and pairwise distinct."""
    return _draw(random.Random(seed), n, list(families or FAMILIES), distinct_from)


# The test split's family cycle: 5 rows of each reasoning family per row of each open-ended family,
# so that accuracy, the measure of reasoning, rests on many rows (700 test rows: 250 + 250 reasoning
# and 50 per open-ended family), with every family early in the file (MAX_EVAL_ROWS keeps the first).
TEST_FAMILY_CYCLE: tuple[str, ...] = (
    "biggest", "more_legs", "name", "biggest", "more_legs", "describe", "biggest", "more_legs", "extract",
    "biggest", "more_legs", "compare", "biggest", "more_legs")

# What a stated fact is read from (minillm.metrics.stated_facts): the phrases of every animal fact
# and of every item a story can mention.
ANIMAL_FACT_PHRASES: tuple[str, ...] = tuple(sorted({phrase for animal in ANIMALS for phrase in animal_facts(animal)}))
ITEM_PHRASES: tuple[str, ...] = tuple(sorted({plural for _, items in CATEGORIES.values() for _, plural in items}))


def fact_check(row: Row) -> dict[str, Any]:
    """How an answer to a fact-stating row (describe, compare, extract) is checked against the world,
    for evaluation without the generator (minillm.metrics.fact_scores): `reference`, the (subject,
    fact) pairs the gold output states; `true`, every fact the world holds of the row's subjects
    (describe, compare: all of each animal's facts; extract: the category's items the story
    mentions); `subjects` and `facts`, the phrases a stated fact is read from; `subject`, whom a
    fact stated before any subject is named is about; for `compare`, whose question leaves open
    which aspects to contrast, `allowed`: every set of facts that answers it in full."""
    reference = row["facts"]
    subjects_of_row = list(dict.fromkeys(subject for subject, _ in reference))
    if row["category"] == "extract":
        return {"reference": reference, "true": {subjects_of_row[0]: [fact for _, fact in reference]},
                "subjects": [], "facts": list(ITEM_PHRASES), "subject": subjects_of_row[0]}
    check = {"reference": reference, "true": {animal: animal_facts(animal) for animal in subjects_of_row},
             "subjects": list(ANIMALS), "facts": list(ANIMAL_FACT_PHRASES),
             "subject": subjects_of_row[0] if row["category"] == "describe" else None}
    if row["category"] == "compare":
        check["allowed"] = [[list(fact) for fact in _compared_facts(subjects_of_row, aspects)]
                            for aspects in COMPARED_ASPECTS]
    return check


def eval_row(row: Row) -> dict[str, Any]:
    """A test row as valid.jsonl holds it: the training row's fields, `output` the list of every
    valid output for a multi-answer family, `prompt`, and what evaluation needs to score answers
    without the generator: `label_output` (the step-by-step label task's reference: "The answer
    is X." for a reasoning row, else the output), `choices` (a reasoning row's answer options, for
    chance accuracy) and `facts` (`fact_check`, for the fact-stating families)."""
    output = row.get("valid_outputs", row["output"])
    entry = {**_training_fields(row), "output": output, "prompt": build_prompt(row["instruction"], row["input"]),
             "label_output": ANSWER_SENTENCE.format(answer=row["answer"]) if row["answer"] else output}
    if row["category"] in REASONING_FAMILIES:
        entry["choices"] = named_animals(row)
    if "facts" in row:
        entry["facts"] = fact_check(row)
    return entry


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
                          n_test: int = 700, n_pretrain: int = 2000) -> dict[str, Path]:
    """Write raw.jsonl (dev rows first, then train), valid.jsonl (test, `eval_row`), pretrain.txt.

    Dev and test compositions (`composition_key`) are distinct from each other and from every
    train row's (but for the multi-answer family, whose test rows list every valid answer as
    `output`); the test split follows TEST_FAMILY_CYCLE; the pretraining corpus is generic text
    (`pretrain_document`).
    """
    rng, families = random.Random(seed), list(FAMILIES)
    train = _draw(rng, n_train, families, None)
    train_keys = {composition_key(row) for row in train}
    dev = _draw(rng, n_dev, families, train_keys)
    test = _draw(rng, n_test, TEST_FAMILY_CYCLE, train_keys | {composition_key(row) for row in dev})
    pretrain = [pretrain_document(rng) for _ in range(n_pretrain)]
    paths = {"raw": out_dir / "raw.jsonl", "valid": out_dir / "valid.jsonl", "pretrain": out_dir / "pretrain.txt"}
    atomic_write_jsonl(paths["raw"], [_training_fields(row) for row in dev + train])
    atomic_write_jsonl(paths["valid"], [eval_row(row) for row in test])
    atomic_write_text(paths["pretrain"], "".join(document + "\n" for document in pretrain))
    return paths


def _training_fields(row: Row) -> Row:
    """The row as raw.jsonl holds it: MiniLLM's fields plus rationale and answer, without the
    generator's `valid_outputs` and `facts`."""
    return {key: value for key, value in row.items() if key not in ("valid_outputs", "facts")}
