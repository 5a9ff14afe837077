"""On-policy distillation across tokenizers: the teacher's per-position terms for finished rollouts.

Each rollout (the student's prompt and sampled response, in its tokens) becomes text with the
student's tokenizer, is encoded as one text by the teacher's (minillm.data.cross_tokenizer
.TextCodec) and read by the teacher in one forward pass. The teacher's log-probabilities of its own
tokens are summed over the spans that both tokenizations cut alike (`shared_spans`) and placed at
each span's last student token, so that the per-token reward log p − log q of MiniLLM and on-policy
distillation, summed over a span, is the exact log-ratio of that span's text; where the two cut
alike token by token (most positions for two BPEs trained on similar text), it is the
same-tokenizer reward. Student tokens outside every span (after the student's EOS, after bytes that
are not UTF-8, before a teacher token that spans the prompt boundary, after the last shared cut) get
no teacher term and are left out of the rollout (`scored` 0).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from minillm.data.cross_tokenizer import ResponseTokens, TextCodec, shared_spans


@dataclass(frozen=True)
class RolloutTeacherTerms:
    teacher_logprobs: torch.Tensor  # [N, T] the teacher's log-probability of each span, at its last student token
    scored: torch.Tensor  # [N, T] 1.0 on the student tokens inside a span


class CrossTokenizerRolloutScorer:
    """Scores finished rollouts with a teacher that has another tokenizer (see the module docstring)."""

    def __init__(self, teacher: torch.nn.Module, student: TextCodec, teacher_codec: TextCodec, max_length: int,
                 batch_size: int = 32):
        self.teacher, self.student, self.teacher_codec = teacher.eval(), student, teacher_codec
        self.max_length, self.batch_size = max_length, batch_size

    @torch.no_grad()
    def __call__(self, prompts: list[np.ndarray], responses: torch.Tensor, lengths: torch.Tensor) -> RolloutTeacherTerms:
        """prompts: N prompt token arrays; responses [N, T] (the sampler's tokens, pad after EOS);
        lengths [N] (tokens per response, EOS included)."""
        device = next(self.teacher.parameters()).device
        values = torch.zeros(responses.shape, dtype=torch.float32)
        scored = torch.zeros(responses.shape, dtype=torch.float32)
        for start in range(0, len(prompts), self.batch_size):
            rows = range(start, min(start + self.batch_size, len(prompts)))
            encoded = []
            for row in rows:
                response_ids = responses[row, :int(lengths[row])].tolist()
                prompt_text, text, student_tokens = self.student.split_text(prompts[row], response_ids)
                ids, teacher_tokens = self.teacher_codec.encode_continuation(prompt_text, text)
                keep = (teacher_tokens.positions >= 1) & (teacher_tokens.positions < self.max_length)
                teacher_tokens = ResponseTokens(teacher_tokens.positions[keep], teacher_tokens.starts[keep])
                encoded.append((ids[:self.max_length], student_tokens, teacher_tokens, response_ids))
            width = max(len(ids) for ids, *_ in encoded)
            input_ids = torch.full((len(encoded), width), self.teacher_codec.tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.zeros_like(input_ids)
            for k, (ids, *_) in enumerate(encoded):
                input_ids[k, :len(ids)], mask[k, :len(ids)] = torch.tensor(ids), 1
            log_probs = self.teacher(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                                     position_ids=torch.arange(width, device=device).expand(len(encoded), width)
                                     ).logits.float().log_softmax(-1)
            for k, (ids, student_tokens, teacher_tokens, response_ids) in enumerate(encoded):
                positions = torch.as_tensor(teacher_tokens.positions, device=device)
                token_values = log_probs[k, positions - 1, input_ids[k, positions.cpu()].to(device)].cpu().numpy()
                span_values, covered = shared_spans(
                    student_tokens, self.student.lengths[np.asarray(response_ids, dtype=np.int64)[student_tokens.positions]],
                    teacher_tokens, self.teacher_codec.lengths[np.asarray(ids)[teacher_tokens.positions]], token_values)
                row = rows[k]
                values[row, student_tokens.positions] = torch.from_numpy(span_values).float()
                scored[row, student_tokens.positions] = torch.from_numpy(covered).float()
        return RolloutTeacherTerms(values, scored)
