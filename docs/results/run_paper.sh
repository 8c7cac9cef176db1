#!/usr/bin/env bash
# The paper-budget haystack rows behind docs/results.md (10 000 steps x 1000 rows, the official
# fine-tune), resumable across sessions: finished runs are read back from
# docs/results/paper/runs.jsonl and an interrupted fine-tune resumes from its checkpoint under
# docs/results/paper/finetunes/. Two runs at once, one torch thread each.
set -euo pipefail
cd "$(dirname "$0")/../.."
procgen train reproduce --experiment haystack_decisive --seeds 3 --budget paper --jobs 2 --out docs/results/paper
