"""MiniLLM policy-gradient distillation: PPO-style losses on student rollouts."""
