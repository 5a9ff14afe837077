# Word-level KD on top of scripts/lib/train_token.sh: sets ENTRYPOINT=train_kd.py and its flags.
# loss = (1 - KD_RATIO)·CE + KD_RATIO·D(teacher ‖ student); D = KD_LOSS, any of minillm/losses.py:
# forward_kl reverse_kl symmetric_kl js_divergence total_variation skew_forward_kl
# skew_reverse_kl adaptive_kl alpha_beta; their parameters go in KD_ARGS (e.g. "--skew-alpha 0.1").
TEACHER_PATH=${TEACHER_PATH:-$BASE_PATH/results/gpt2/train/sft/gpt2-xlarge}  # run folder: best by Rouge-L
KD_RATIO=${KD_RATIO:-$PAPER_KD_KD_RATIO}
KD_LOSS=${KD_LOSS:-forward_kl}
KD_ARGS=${KD_ARGS:-}
ENTRYPOINT=train_kd.py
# shellcheck disable=SC2206  # KD_ARGS is a list of flags
METHOD_ARGS=(--teacher-model-path "$TEACHER_PATH" --kd-ratio "$KD_RATIO" --kd-loss "$KD_LOSS" $KD_ARGS)
