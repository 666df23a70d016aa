#!/bin/bash
# tessera bench t5 on the golden tiny T5: prints its three report lines; bad usage exits 2,
# a missing file exits 1 with the path in the message.
set -u
bin=$1
model=${TESSERA_SHARED:-../shared}/golden/t5_encoder/model.safetensors
[ -f "$model" ] || exit 77
fail=0
check() { if ! eval "$1"; then echo "FAIL: $1"; fail=1; fi; }

out=$("$bin" bench t5 --model "$model" --tokens 40 --threads 1)
check '[ $? -eq 0 ]'
check 'grep -q "T5 encoder, 2 blocks, d_model 64, 4 heads, d_ff 96, F32 weights" <<<"$out"'
check 'grep -q "^run      40 tokens, 1 threads: " <<<"$out"'
check 'grep -q "^memory   peak RSS [0-9]* MB" <<<"$out"'

"$bin" bench t5 --tokens 0 --model "$model" 2>/dev/null; check '[ $? -eq 2 ]'
"$bin" bench t5 --model 2>/dev/null; check '[ $? -eq 2 ]'
"$bin" bench nosuch --model "$model" 2>/dev/null; check '[ $? -eq 2 ]'
err=$("$bin" bench t5 --model /nonexistent/t5.safetensors 2>&1); rc=$?
check '[ $rc -eq 1 ] && grep -q "tessera bench: /nonexistent/t5.safetensors" <<<"$err"'
err=$("$bin" bench t5 --model "${TESSERA_SHARED:-../shared}/golden/clip_text_l/model.safetensors" 2>&1); rc=$?
check '[ $rc -eq 1 ] && grep -q "no T5 encoder" <<<"$err"'
exit $fail
