#!/usr/bin/env bash
# The quarter-protocol reproduction behind docs/results.md, resumable: finished runs are read back
# from docs/results/quarter/runs.jsonl, an interrupted fine-tune resumes from its checkpoint under
# docs/results/quarter/finetunes/, trained warm-ups are reused from docs/results/quarter/warmups/.
# Two runs at once (one torch thread each) on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=docs/results/quarter
for experiment in haystack reversed_addition components; do
    procgen train reproduce --experiment "$experiment" --seeds 3 --budget quarter --jobs 2 --out "$out"
done
# re-render one page with every experiment (no training: every run is in runs.jsonl)
procgen train reproduce --experiment haystack,reversed_addition,components --seeds 3 --budget quarter \
    --out "$out" --quiet
