"""Knowledge distillation of language models: SFT, word-level KD, SeqKD, MiniLLM, step-by-step."""
