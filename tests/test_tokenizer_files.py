"""minillm/tokenizer_files.py: one fast tokenizer from whichever files a family releases, checked
against the reference implementations (SentencePiece itself, the official tokenizer.json files);
tools/make_random_model.py building models from such folders and marking them random-init.

SentencePiece models are trained here (a fraction of a second each), so the conversion is
checked without ../shared/data; the real Mistral, Qwen2 and GPT-2 files are checked when present."""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
import sentencepiece
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast, Qwen2Tokenizer

from minillm.modeling import check_same_tokenizer, load_tokenizer
from minillm.random_init import is_random_init
from minillm.tokenizer_files import CHECK_TEXT, _checked, read_tokenizer
from world import REPO, SHARED_DATA, load_tool

TOKENIZERS = SHARED_DATA / "tokenizers"
needs = {name: pytest.mark.skipif(not (TOKENIZERS / name).is_dir(), reason=f"../shared/data/tokenizers/{name} absent")
         for name in ("mistral", "qwen2", "gpt2")}
ALPHABET = "abcdefghijklmnopqrstuvwxyz    ,.'!?\n\t0123456789éü€日😀"


def random_texts(count: int, seed: int = 0) -> list[str]:
    generator = random.Random(seed)
    texts = ["".join(generator.choice(ALPHABET) for _ in range(generator.randint(0, 50))) for _ in range(count)]
    return texts + [CHECK_TEXT, " leading", "  two  spaces  ", "trailing ", "\n\nQ: x", ""]


def train_sentencepiece(folder: Path, **options) -> Path:
    """A small SentencePiece model as Llama's are made (BPE, byte fallback, identity normalisation)."""
    generator = random.Random(1)
    words = ["apple", "answer", "the", "is", "So", "The", "zebra", "café", "12", "3", "eaten", "Q:"]
    corpus = [" ".join(generator.choice(words) for _ in range(generator.randint(3, 12))) + "." for _ in range(1500)]
    folder.mkdir(parents=True)
    settings = {"model_type": "bpe", "vocab_size": 360, "byte_fallback": True, "normalization_rule_name": "identity",
                "remove_extra_whitespaces": False, "add_dummy_prefix": True, "character_coverage": 1.0,
                "hard_vocab_limit": False, "minloglevel": 2, **options}
    sentencepiece.SentencePieceTrainer.train(sentence_iterator=iter(corpus), model_prefix=str(folder / "tokenizer"),
                                             **settings)
    (folder / "tokenizer.vocab").unlink()
    return folder


@pytest.mark.parametrize("options", [{}, {"remove_extra_whitespaces": True}, {"add_dummy_prefix": False},
                                     {"normalization_rule_name": "nmt_nfkc"}],
                         ids=["llama-style", "extra-whitespace-removed", "no-dummy-prefix", "nfkc"])
def test_a_sentencepiece_folder_encodes_and_decodes_as_sentencepiece_does(tmp_path, options):
    folder = train_sentencepiece(tmp_path / "sp", **options)
    reference = sentencepiece.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
    if options.get("normalization_rule_name") == "nmt_nfkc":  # it turns newlines into spaces: refused by the check
        with pytest.raises(ValueError, match="does not give text back"):
            read_tokenizer(folder)
        from minillm.tokenizer_files import _sentencepiece
        tokenizer = _sentencepiece(folder / "tokenizer.model")[0]
    else:
        loaded = read_tokenizer(folder)
        tokenizer = loaded.tokenizer
        assert loaded.built and "SentencePiece BPE" in loaded.built_from
    assert len(tokenizer) == reference.get_piece_size()
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (
        reference.bos_id(), reference.eos_id(), reference.unk_id())
    for text in random_texts(300):
        ids = tokenizer.encode(text, add_special_tokens=False)
        assert ids == reference.encode(text), text
        assert tokenizer.decode(ids) == reference.decode(ids), text
    assert tokenizer.encode("the")[0] == reference.bos_id()  # BOS first, as Llama's


def test_sentencepiece_models_it_cannot_reproduce_are_refused_by_name(tmp_path):
    folder = train_sentencepiece(tmp_path / "unigram", model_type="unigram")
    with pytest.raises(ValueError, match="a SentencePiece Unigram model; only BPE models"):
        read_tokenizer(folder)
    folder = train_sentencepiece(tmp_path / "user", user_defined_symbols=["<sep>"])
    with pytest.raises(ValueError, match=r"user-defined pieces \(<sep>\)"):
        read_tokenizer(folder)
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "tokenizer.model").write_bytes(b"\xff\xfenot a model")
    with pytest.raises(ValueError, match="not a SentencePiece model"):
        read_tokenizer(tmp_path / "garbage")


def test_a_folder_without_tokenizer_files_names_what_it_holds(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"holds no tokenizer: expected tokenizer.json, or vocab.json \+ "
                                                r"merges.txt .* it holds: config.json"):
        load_tokenizer(tmp_path)
    (tmp_path / "vocab.json").write_text('{"a": 0}')
    (tmp_path / "merges.txt").write_text("#version: 0.2\na b c\n")
    with pytest.raises(ValueError, match=r"merges.txt:2: expected two tokens"):
        load_tokenizer(tmp_path)


def test_a_tokenizer_that_lost_its_vocabulary_is_refused():
    """transformers 5 takes vocab= / merges= keywords: a transformers-4-style call silently gives a
    tokenizer of a few tokens; the check after every build catches it."""
    with pytest.raises(ValueError, match=r"has 1 tokens, fewer than the 50 of its vocabulary file"):
        _checked(Qwen2Tokenizer(), "vocab.json + merges.txt", 50, Path("somewhere"))


@needs["mistral"]
def test_mistral_sentencepiece_only_matches_sentencepiece_and_the_official_tokenizer_json(tmp_path):
    shutil.copy(TOKENIZERS / "mistral" / "tokenizer.model", tmp_path / "tokenizer.model")
    tokenizer = load_tokenizer(tmp_path)
    reference = sentencepiece.SentencePieceProcessor(model_file=str(tmp_path / "tokenizer.model"))
    official = PreTrainedTokenizerFast(tokenizer_file=str(TOKENIZERS / "mistral" / "tokenizer.json"))
    assert len(tokenizer) == 32000 and (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == (
        "<s>", "</s>", "</s>")
    for text in random_texts(100):
        assert tokenizer.encode(text, add_special_tokens=False) == reference.encode(text), text
        assert tokenizer.encode(text) == official.encode(text), text
    # the official folder as it is shipped here (tokenizer.json + tokenizer.model, no config): roles from the model
    shipped = load_tokenizer(TOKENIZERS / "mistral")
    assert (shipped.bos_token_id, shipped.eos_token_id) == (1, 2)


@needs["gpt2"]
def test_gpt2_vocab_and_merges_alone_give_the_official_gpt2_tokenizer(tmp_path):
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(TOKENIZERS / "gpt2" / name, tmp_path / name)
    loaded = read_tokenizer(tmp_path)
    official = load_tokenizer(TOKENIZERS / "gpt2")
    assert "GPT-2 style" in loaded.built_from and len(loaded.tokenizer) == len(official) == 50257
    assert loaded.tokenizer.encode("Hello world!") == [15496, 995, 0]
    assert loaded.tokenizer.eos_token_id == official.eos_token_id == 50256
    for text in random_texts(100):
        assert loaded.tokenizer.encode(text) == official.encode(text), text
    # the official folder declares no tokenizer class (its config.json's model_type does): a Llama
    # model made from it gets the tokenizer saved with its class, so it still reads as GPT-2's
    config = {**json.loads((REPO / "configs/models/llama-toy.json").read_text()), "hidden_size": 8, "head_dim": 4,
              "num_hidden_layers": 1, "intermediate_size": 16}
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert load_tool("make_random_model").main(["--config", str(tmp_path / "config.json"), "--tokenizer",
                                                str(TOKENIZERS / "gpt2"), "--out", str(tmp_path / "llama")]) == 0
    inside = load_tokenizer(tmp_path / "llama")
    assert inside.eos_token_id == 50256 and inside.encode("Hello world! 12345") == official.encode("Hello world! 12345")


@needs["qwen2"]
@pytest.mark.slow
def test_a_llama_model_from_qwen2_vocab_and_merges_carries_the_built_tokenizer(tmp_path, capsys):
    """The issue's case: tools/make_random_model.py on ../shared/data/tokenizers/qwen2 (vocab.json +
    merges.txt only) gives a loadable Llama whose saved tokenizer is Qwen2's, special tokens at
    Qwen2's ids, built once (tokenizer.json beside the model)."""
    make = load_tool("make_random_model")
    config = {**json.loads((REPO / "configs/models/llama-toy.json").read_text()), "hidden_size": 8, "head_dim": 4,
              "num_hidden_layers": 1, "intermediate_size": 16}  # the 151,646 × 64 embedding would take seconds to write
    (tmp_path / "config.json").write_text(json.dumps(config))
    out = tmp_path / "llama"
    assert make.main(["--config", str(tmp_path / "config.json"), "--tokenizer", str(TOKENIZERS / "qwen2"),
                      "--seed", "3", "--out", str(out)]) == 0
    log = capsys.readouterr().out
    assert "Qwen2 style" in log and "151646 tokens; BOS none, EOS <|endoftext|> (151643)" in log
    assert (out / "tokenizer.json").is_file() and not (out / "vocab.json").exists() and is_random_init(out)
    tokenizer = load_tokenizer(out)
    assert len(tokenizer) == 151643 + 3  # vocab.json's tokens, then the three special tokens
    assert tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]) == [151643, 151644, 151645]
    assert tokenizer.encode("Hello world!") == [9707, 1879, 0]  # Qwen2's ids for it
    assert tokenizer.tokenize("12345") == ["1", "2", "3", "4", "5"]  # Qwen2's pre-tokenizer: one digit each
    for text in random_texts(50):
        assert tokenizer.decode(tokenizer.encode(text)) == text
    # the driver's check: the model folder and TOKENIZER=the vocab + merges folder share one tokenizer
    assert check_same_tokenizer(tokenizer, load_tokenizer(TOKENIZERS / "qwen2")) == 151646
    model = AutoModelForCausalLM.from_pretrained(out)
    assert type(model).__name__ == "LlamaForCausalLM" and model.get_input_embeddings().weight.shape[0] == 151646
    assert model.config.eos_token_id == model.config.bos_token_id == 151643


def test_make_random_model_from_a_sentencepiece_folder_and_from_a_model_folder(tmp_path, world, capsys):
    """A SentencePiece tokenizer saved inside a Qwen2 model folder stays SentencePiece's (transformers
    5's AutoTokenizer would rebuild it as Qwen2's); a model folder given as the tokenizer gives its
    tokenizer files only, never its weights; every folder made is marked random-init."""
    make = load_tool("make_random_model")
    folder = train_sentencepiece(tmp_path / "sp")
    reference = sentencepiece.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
    qwen = tmp_path / "qwen"
    assert make.main(["--config", str(REPO / "configs/models/qwen2-toy.json"), "--tokenizer", str(folder),
                      "--out", str(qwen)]) == 0
    assert "SentencePiece BPE" in capsys.readouterr().out
    tokenizer = load_tokenizer(qwen)
    assert len(tokenizer) == reference.get_piece_size() and is_random_init(qwen)
    for text in random_texts(50):
        assert tokenizer.encode(text, add_special_tokens=False) == reference.encode(text), text
    config = json.loads((qwen / "config.json").read_text())
    assert (config["bos_token_id"], config["eos_token_id"], config["vocab_size"]) == (1, 2, len(tokenizer))

    # a GPT-2-style tokenizer inside a Qwen2 model folder stays GPT-2's (AutoTokenizer would rebuild it as Qwen2's)
    assert make.main(["--config", str(REPO / "configs/models/qwen2-toy.json"), "--tokenizer", str(world.tokenizer),
                      "--out", str(tmp_path / "qwen-gpt2")]) == 0
    inside, own = load_tokenizer(tmp_path / "qwen-gpt2"), load_tokenizer(world.tokenizer)
    assert type(inside) is type(own) and all(inside.encode(text) == own.encode(text) for text in random_texts(50))

    seeded = tmp_path / "seeded"
    assert make.main(["--config", str(world.student), "--tokenizer", str(world.student), "--seed", "5",
                      "--out", str(seeded)]) == 0
    drawn = AutoModelForCausalLM.from_pretrained(seeded).transformer.wte.weight
    assert not drawn.equal(AutoModelForCausalLM.from_pretrained(world.student).transformer.wte.weight)
    assert load_tokenizer(seeded).get_vocab() == load_tokenizer(world.student).get_vocab()
    assert is_random_init(seeded) and not is_random_init(world.student)
    assert json.loads((seeded / "random_init.json").read_text())["seed"] == 5
